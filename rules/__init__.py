"""The bundled rule set, installed as package data of `leadflow.bundled_rules`: what `leadflow demo`
runs when there is no ./rules, and what `leadflow init` starts a project from. Not code."""
