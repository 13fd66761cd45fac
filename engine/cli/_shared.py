"""What every `leadflow` command shares: its options, how it prints data and problems, Ctrl-C, progress.

Data goes to stdout, diagnostics to stderr. Exit codes: 0 ok, 1 a problem was found (invalid rules,
rejected input), 2 usage error (click's own), 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import os
import string
import sys
from typing import Any, Callable, Iterator, Sequence

import click

from leadflow.core import EngineError, LeadflowError, Problem, excerpt, printable

DEFAULT_DB = "./leadflow.db"
DEFAULT_RULES = "./rules"


# ---- shared options -----------------------------------------------------------------------------

def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def csv_option(f: Callable) -> Callable:
    """`--csv`, for a command that also takes `--json` (asking for both is a usage error)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("as_json") and kwargs.get("as_csv"):
            raise click.UsageError("--json and --csv ask for two formats: give one of them")
        return f(*args, **kwargs)

    return click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then one row each).")(wrapper)


def db_option(f: Callable) -> Callable:
    return click.option("--db", "db_path", envvar="LEADFLOW_DB", default=DEFAULT_DB, show_default=True,
                        help="Database: a SQLite file, or postgresql://user:pass@host:port/dbname (env LEADFLOW_DB).")(f)


def rules_option(f: Callable) -> Callable:
    return click.option("--rules", "rules_dir", envvar="LEADFLOW_RULES", default=DEFAULT_RULES, show_default=True,
                        help="Rule directory (env LEADFLOW_RULES).")(f)


def settings(ctx: click.Context, db_path: str | None = None, rules_dir: str | None = None) -> tuple[str, str]:
    """(database, rule directory): a sub-command's option wins over the group's, so `--db` works on
    either side of the command name."""
    root = ctx.find_root().obj or {}
    db = db_path if db_path and ctx.get_parameter_source("db_path").name != "DEFAULT" else root.get("db")
    rules = rules_dir if rules_dir and ctx.get_parameter_source("rules_dir").name != "DEFAULT" else root.get("rules")
    return db or DEFAULT_DB, rules or DEFAULT_RULES


def existing_db(ctx: click.Context, db_path: str | None) -> str:
    """The database a reading command opens; a mistyped --db is a usage error, never a new empty file."""
    from leadflow.store import is_postgres_url, sqlite_path  # here: the store loads sqlite_utils

    db, _ = settings(ctx, db_path, None)
    if not is_postgres_url(db) and not os.path.isfile(sqlite_path(db)):
        raise click.UsageError(f"no database at {db} (ingest events first, or pass --db)")
    return db


# ---- problems -------------------------------------------------------------------------------------

def reports_problems(f: Callable) -> Callable:
    """Turn LeadflowError/EngineError into readable diagnostics and exit code 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except LeadflowError as exc:
            print_problems(exc.problems)
            sys.exit(1)
        except EngineError as exc:
            click.echo(f"error: {exc.code}: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), err=True)
            sys.exit(1)

    return wrapper


def print_problems(problems: list[Problem]) -> None:
    """Each problem at its location, with the source line and a caret under the column, then a count."""
    sources: dict[str, list[str]] = {}
    for p in problems:
        loc = p.location
        severity = "warning: " if p.severity == "warning" else ""
        click.echo(printable(f"{loc}: {severity}{p.code}: {p.message}", 1000), err=True)
        if loc.line and loc.file:
            if loc.file not in sources:
                try:
                    with open(loc.file, encoding="utf-8", errors="replace") as fh:
                        sources[loc.file] = fh.read().splitlines()
                except OSError:
                    sources[loc.file] = []
            lines = sources[loc.file]
            if 0 < loc.line <= len(lines):
                shown, caret = excerpt(lines[loc.line - 1], max(loc.column, 1))
                click.echo(f"    {shown}\n    {' ' * caret}^", err=True)
        if p.hint:
            click.echo(f"  hint: {printable(p.hint, 1000)}", err=True)
    warnings = sum(1 for p in problems if p.severity == "warning")
    errors = len(problems) - warnings
    summary = [f"{errors} problem{'s' if errors != 1 else ''} found"] if errors or not warnings else []
    summary += [f"{warnings} warning{'s' if warnings != 1 else ''}"] if warnings else []
    click.echo(", ".join(summary), err=True)


# ---- data out -------------------------------------------------------------------------------------

def emit(data: Any) -> None:
    """JSON to stdout; always valid JSON: a non-finite number (an attribute stored before ingest
    refused them, a sum past the float range) is written as null, never NaN or Infinity."""
    click.echo(json.dumps(_finite_json(data), indent=2, sort_keys=False, default=str, allow_nan=False))


def _finite_json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def emit_csv(rows: Sequence[dict], fields: Sequence[str]) -> None:
    """A header row, then one row per record; nested values as JSON, a missing one empty."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(_finite_json(v)) if isinstance(v, (dict, list)) else v
                         for k, v in row.items()})


def emit_list(rows: Sequence[dict], fields: Sequence[str], line: str, text: Callable[[dict], dict],
              as_json: bool, as_csv: bool, empty: str) -> None:
    """A list command's output: JSON, CSV, or for people a header and one `line` per row.

    `line` is a format string over the texts `text(row)` gives; the header is the same line filled with
    its field names in capitals, so the header cannot drift from the columns. With no rows, people get
    `empty` on stderr and nothing on stdout."""
    if as_json:
        emit(list(rows))
    elif as_csv:
        emit_csv(rows, fields)
    elif not rows:
        click.echo(empty, err=True)
    else:
        names = [name for _, name, _, _ in string.Formatter().parse(line) if name]
        click.echo(line.format(**{name: name.upper().replace("_", " ") for name in names}).rstrip())
        for row in rows:
            click.echo(line.format(**text(row)).rstrip())


def terminal_safe(text: str) -> str:
    """Raw input shown on a terminal: control characters (escape sequences, CR) as \\xNN, never live."""
    return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in text)


# ---- long work ------------------------------------------------------------------------------------

class Bar:
    """A progress bar's handle: `advance(n)` counts n more units, `reach(n)` sets the count, `count(done,
    total)` both."""

    def __init__(self, progress: Any, task: Any):
        self._progress, self._task = progress, task

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)
        self._grow()

    def reach(self, n: int) -> None:
        self._progress.update(self._task, completed=n)
        self._grow()

    def count(self, done: int, total: int) -> None:
        """For work that knows its total only once it starts (tuning counts its replays)."""
        self._progress.update(self._task, completed=done, total=total)

    def _grow(self) -> None:
        """A total that was an estimate (CSV rows for the events they make) grows rather than overflows."""
        task = self._progress.tasks[self._task]
        if task.total is not None and task.completed > task.total:
            self._progress.update(self._task, total=task.completed)


@contextlib.contextmanager
def progress_bar(label: str, total: int | None, unit: str, shown: bool = True) -> Iterator[Bar | None]:
    """A bar with the count, the total and the time left, on stderr while it is a terminal and `shown`
    (False for --json); otherwise None, so no callback slows the work and no output is mixed in."""
    if not shown or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                  TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), transient=True) as progress:
        yield Bar(progress, progress.add_task(label, total=total))


def interrupted(*_: object) -> None:
    """Ctrl-C: say so in one line and leave with 130, at once.

    Not by raising KeyboardInterrupt: when the signal lands inside a durable_rules action, the
    engine catches every BaseException and hands it back as an action failure with its traceback
    (and in some loops swallows it). Leaving at once is safe because every write is a transaction:
    committed work stays, the open transaction rolls back, as after any crash."""
    try:
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h")  # a progress bar may have hidden the cursor
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stream must not stop the exit
        pass
    os._exit(130)
