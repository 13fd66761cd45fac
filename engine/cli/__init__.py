"""The `leadflow` command: thin click wrappers over the library, one module per command group.

`leadflow_group` makes the group; `bots.cli` adds `serve` and `worker` and ships it as `leadflow`."""
from ._app import leadflow_group
from ._shared import db_option, emit, interrupted, json_option, rules_option, settings

__all__ = ["db_option", "emit", "interrupted", "json_option", "leadflow_group", "rules_option", "settings"]
