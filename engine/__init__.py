"""leadflow engine: rule files -> durable_rules -> SQLite lead store.

The engine knows nothing about Slack; `bots/` builds on it.
"""

__version__ = "0.1.0"
