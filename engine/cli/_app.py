"""The one place the `leadflow` group is made and its commands are registered.

Command modules define plain click commands and never import the group, so there is no import circle.
Installed packages add commands under the `leadflow.commands` entry point: that is how the Slack side
(`leadflow.bots`) adds `serve` and `worker` without the engine importing it.
"""
from __future__ import annotations

import signal
import threading
from importlib.metadata import entry_points
from typing import Any

import click

from ._db import db
from ._dead_letters import dead_letters
from ._demo import bench, demo
from ._eval import eval_command
from ._export import export
from ._ingest import ingest
from ._init import init
from ._leads import leads
from ._outbox import outbox
from ._rules import rules
from ._shared import db_option, interrupted, rules_option
from ._sql import sql
from ._stats import stats

COMMANDS = (init, ingest, leads, demo, bench, eval_command, dead_letters, sql, outbox, rules, stats, export, db)


class _Commands(click.Group):
    """The `leadflow` group: Ctrl-C anywhere (parsing, the engine, a blocking read) is `interrupted`."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        catch = threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # an ignored Ctrl-C stays ignored
        previous = signal.signal(signal.SIGINT, interrupted) if catch else None
        try:
            return super().main(*args, **kwargs)
        finally:
            if catch:
                signal.signal(signal.SIGINT, previous)


def leadflow_group(*extra: click.Command) -> click.Group:
    """A fresh `leadflow` group holding the engine's commands and `extra` (the bots add serve and worker)."""

    @click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
    @db_option
    @rules_option
    @click.version_option(package_name="leadflow")
    @click.pass_context
    def main(ctx: click.Context, db_path: str, rules_dir: str) -> None:
        """Rules-as-code lead qualification."""
        ctx.obj = {"db": db_path, "rules": rules_dir}

    for command in (*COMMANDS, *extra):
        main.add_command(command)
    return main


def main(args: list[str] | None = None) -> Any:
    """The `leadflow` console script and `python -m leadflow`: the engine's commands and every command
    an installed package registers under the `leadflow.commands` entry point."""
    extra = [point.load() for point in sorted(entry_points(group="leadflow.commands"), key=lambda p: p.name)]
    return leadflow_group(*extra).main(args=args, prog_name="leadflow")
