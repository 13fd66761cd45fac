"""`leadflow init [DIR]`: a starter project to keep in git, written from the bundled rules."""
from __future__ import annotations

import os
import shlex

import click

from ._shared import reports_problems


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=True, dir_okay=True))
@reports_problems
def init(directory: str) -> None:
    """Write a starter project into DIRECTORY (default: this folder): commented rule files, rule tests,
    e-mail templates, example events and a README. Never overwrites a file: when any exists, nothing
    is written and each one is named (exit 1)."""
    from leadflow.demo import init_project

    for path in init_project(directory):
        click.echo(path)
    here = os.path.abspath(directory) == os.path.abspath(".")
    step = "" if here else f"cd {shlex.quote(directory)} && "
    click.echo(f"Next: {step}leadflow rules check && leadflow rules test && leadflow ingest events.jsonl "
               "(README.md says more)", err=True)
