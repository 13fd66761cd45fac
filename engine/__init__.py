"""leadflow engine: rule files -> durable_rules -> a lead store, one package per step of the flow.

core < rules < runtime < intake < store < nurture < pipeline < desk < delivery < learning < reports
< service < demo < cli: each package imports only from the ones before it, and only their public
names (the README's "How it is built"; tests/test_architecture.py checks it). The engine knows
nothing about Slack; `bots/` builds on it.
"""

__version__ = "0.1.0"
