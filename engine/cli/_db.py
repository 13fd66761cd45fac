"""`leadflow db status|upgrade|copy`: the database's schema version, upgrading it, moving it between backends.

Every command that opens a database upgrades it already; these are for the operator who wants to see
what an upgrade will do before it happens (`status` opens without upgrading), to run it as a step of
a deploy (`upgrade`), or to move from SQLite to PostgreSQL and back (`copy`).
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import TYPE_CHECKING

import click

from leadflow.core import LeadflowError, Location, Problem, format_time

from ._shared import db_option, emit, existing_db, json_option, progress_bar, reports_problems

if TYPE_CHECKING:  # imported when a command runs, so `leadflow --help` stays quick
    from leadflow.store import CopyReport, SchemaStatus

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@click.group("db", short_help="Schema version, upgrades; copy to PostgreSQL and back.")
def db() -> None:
    """The database: schema version, upgrades, copying between SQLite and PostgreSQL."""


@db.command("status", short_help="Schema version, applied and pending migrations.")
@db_option
@json_option
@click.pass_context
@reports_problems
def db_status(ctx: click.Context, db_path: str, as_json: bool) -> None:
    """The schema version, the latest this leadflow knows, the migrations applied (with dates) and
    those pending; the database is only read. Exits 1 when it is not at the latest version (migrations
    pending, or a database newer than this leadflow), so a deploy script can test it."""
    from leadflow.store import open_store

    store = open_store(existing_db(ctx, db_path), upgrade=False)
    try:
        found = store.schema_status()
        if as_json:
            emit(_status_json(store.where, found))
        else:
            click.echo(_status_text(store.where, found))
    finally:
        store.close()
    if found.version > found.latest:
        raise LeadflowError([Problem("SCHEMA_TOO_NEW", f"the database is at schema version {found.version}; this"
                                                       f" leadflow knows versions up to {found.latest}",
                                     Location(store.where), "upgrade leadflow to the release the other instances run")])
    if found.pending:
        click.echo(f"{len(found.pending)} migration{'s' if len(found.pending) != 1 else ''} pending: run"
                   " `leadflow db upgrade` (any other command also applies them when it opens the database)", err=True)
        sys.exit(1)


def _status_json(where: str, found: SchemaStatus) -> dict:
    return {"database": where, "version": found.version, "latest": found.latest,
            "up_to_date": found.version == found.latest,
            "applied": [{"version": v, "name": name, "applied_at": format_time(at)} for v, name, at in found.applied],
            "pending": [{"version": m.version, "name": m.name} for m in found.pending]}


def _status_text(where: str, found: SchemaStatus) -> str:
    if found.version == found.latest:
        state = "up to date"
    elif found.version > found.latest:
        state = "NEWER than this leadflow"
    else:
        state = f"{len(found.pending)} pending"
    lines = [f"database  {where}", f"schema    version {found.version} of {found.latest} ({state})"]
    lines += [f"applied   {v:>3}  {format_time(at)}  {name}" for v, name, at in found.applied]
    lines += [f"pending   {m.version:>3}  {'-':<20}  {m.name}" for m in found.pending]
    return "\n".join(lines)


@db.command("upgrade", short_help="Apply the pending migrations.")
@db_option
@click.option("--to", "target", type=click.IntRange(min=1), default=None,
              help="Stop after this schema version (default: the latest this leadflow knows).")
@json_option
@click.pass_context
@reports_problems
def db_upgrade(ctx: click.Context, db_path: str, target: int | None, as_json: bool) -> None:
    """Apply the pending migrations, under the database's lock (instances starting at the same time
    wait, and each migration is applied once); print those applied. Rows are kept."""
    from leadflow.store import open_store

    store = open_store(existing_db(ctx, db_path), upgrade=False)
    try:
        before = store.schema_status()
        if target is not None and target > before.latest:
            raise click.BadParameter(f"this leadflow knows schema versions up to {before.latest}", param_hint="--to")
        if target is not None and before.latest >= before.version > target:
            raise LeadflowError([Problem("SCHEMA_PAST_TARGET", f"the database is at schema version {before.version},"
                                                               f" past {target}; leadflow never downgrades",
                                         Location(store.where), "to go back, restore a backup made before the upgrade")])
        applied = store.upgrade(target)
        after = store.schema_status()
    finally:
        store.close()
    if as_json:
        emit({"database": store.where, "from": before.version, "to": after.version, "latest": after.latest,
              "applied": [{"version": m.version, "name": m.name} for m in applied]})
        return
    for m in applied:
        click.echo(f"applied {m.version:>3}  {m.name}")
    latest = " (the latest)" if after.version == after.latest else f" of {after.latest}"
    click.echo(f"schema version {after.version}{latest}" + ("" if applied else ": nothing to apply"))


@db.command("copy", short_help="Copy a database: SQLite to PostgreSQL, or back.")
@click.argument("source")
@click.argument("destination")
@json_option
@reports_problems
def db_copy(source: str, destination: str, as_json: bool) -> None:
    """Copy every table of SOURCE into DESTINATION, each a SQLite file (or sqlite:///path) or a
    postgresql:// URL, either way. Ids are kept; both are upgraded to the latest schema first. The
    destination must hold no rows (a new database, or a new file). The rows go in one transaction: a
    failed copy leaves the destination empty. Stop the instances writing to SOURCE first. At the
    end each table's rows are counted on both sides; exits 1 if any count differs."""
    from leadflow.store import copy_database, open_store

    src = open_store(_address(source, "SOURCE", must_exist=True), upgrade=False)
    try:
        dst = open_store(_address(destination, "DESTINATION", must_exist=False), upgrade=False)
        try:
            started = time.monotonic()
            with progress_bar("copying", None, "rows", shown=not as_json) as bar:
                report = copy_database(src, dst, bar.count if bar else None)
            seconds = time.monotonic() - started
        finally:
            dst.close()
    finally:
        src.close()
    if as_json:
        emit({**report.to_json(), "rows": report.rows, "seconds": round(seconds, 2)})
    else:
        click.echo(_copy_text(report, seconds))
    for t in report.tables:
        if t.nul_replaced:
            click.echo(f"note: {t.table}: {t.nul_replaced} row(s) held a NUL character, which PostgreSQL cannot store;"
                       " it is written \\x00 in the copy", err=True)
    if not report.ok:
        differ = ", ".join(t.table for t in report.tables if not t.same)
        raise LeadflowError([Problem("COPY_COUNTS_DIFFER", f"{differ}: a different number of rows in the destination",
                                     Location(report.destination), "was something writing to the source? stop it,"
                                     " copy again into a new database")])


def _copy_text(report: CopyReport, seconds: float) -> str:
    lines = [f"{'TABLE':<16} {'SOURCE':>9} {'DESTINATION':>12}"]
    lines += [f"{t.table:<16} {t.source:>9} {t.destination:>12}{'' if t.same else '  DIFFERENT'}"
              for t in report.tables]
    verdict = "every table has the same count on both sides" if report.ok else "the counts differ"
    lines.append(f"copied {report.rows} rows from {report.source} to {report.destination} in {seconds:.1f} s:"
                 f" {verdict}")
    return "\n".join(lines)


def _address(value: str, name: str, must_exist: bool) -> str:
    """A database address from the command line: a postgresql:// URL (the server says if it is
    wrong), or a SQLite file in a folder that exists (SOURCE: a file that exists). Anything else is
    a usage error, before anything is opened."""
    from leadflow.store import is_postgres_url, masked, sqlite_path

    if is_postgres_url(value):
        return value
    if _SCHEME.match(value) and not value.startswith("sqlite:///"):
        raise click.BadParameter(f"{masked(value)} is not a database address: give a SQLite file, sqlite:///path or"
                                 " postgresql://user:pass@host:port/dbname", param_hint=name)
    path = sqlite_path(value)
    if must_exist and not os.path.isfile(path):
        raise click.BadParameter(f"no database at {value}", param_hint=name)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise click.BadParameter(f"{value}: no folder {os.path.dirname(os.path.abspath(path))}", param_hint=name)
    return value
