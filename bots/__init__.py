"""The Slack side of leadflow: the Bolt app, Block Kit messages, and the HTTP service assembly.

Depends on `engine`; the engine never imports from here. Nothing reads the environment at import.
"""
