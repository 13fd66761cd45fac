"""The `leadflow` command: thin click wrappers over the library, one module per command group.

`main` is the shipped `leadflow` (console script and `python -m leadflow`): the group `leadflow_group`
makes, with the commands installed packages register (`leadflow.bots` adds `serve` and `worker`)."""
from ._app import leadflow_group, main
from ._shared import db_option, emit, interrupted, json_option, rules_option, settings

__all__ = ["db_option", "emit", "interrupted", "json_option", "leadflow_group", "main", "rules_option", "settings"]
