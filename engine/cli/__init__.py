"""The `leadflow` command: thin click wrappers over the library."""
from ._main import _settings, db_option, interrupted, main, rules_option

__all__ = ["_settings", "db_option", "interrupted", "main", "rules_option"]
