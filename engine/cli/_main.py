"""The `leadflow` command: thin click wrappers over the library.

Data goes to stdout, diagnostics to stderr. Exit codes: 0 ok, 1 a problem was found (invalid rules,
rejected input), 2 usage error (click's own), 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import functools
import json
import math
import os
import signal
import sys
import threading
from typing import Any, Callable

import click

from engine.core import EngineError, LeadflowError, Problem, excerpt, printable


# ---- shared options -----------------------------------------------------------------------------

def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def db_option(f: Callable) -> Callable:
    return click.option("--db", "db_path", envvar="LEADFLOW_DB", default="./leadflow.db", show_default=True,
                        help="SQLite database file (env LEADFLOW_DB).")(f)


def rules_option(f: Callable) -> Callable:
    return click.option("--rules", "rules_dir", envvar="LEADFLOW_RULES", default="./rules", show_default=True,
                        help="Rule directory (env LEADFLOW_RULES).")(f)


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


# ---- commands -------------------------------------------------------------------------------------

@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@db_option
@rules_option
@click.version_option(package_name="leadflow")
@click.pass_context
def main(ctx: click.Context, db_path: str, rules_dir: str) -> None:
    """Rules-as-code lead qualification."""
    ctx.obj = {"db": db_path, "rules": rules_dir}


def _settings(ctx: click.Context, db_path: str | None = None, rules_dir: str | None = None) -> tuple[str, str]:
    """Sub-command options win over the group's (so `--db` works on either side of the command)."""
    root = ctx.find_root().obj or {}
    db = db_path if db_path and ctx.get_parameter_source("db_path").name != "DEFAULT" else root.get("db")
    rules = rules_dir if rules_dir and ctx.get_parameter_source("rules_dir").name != "DEFAULT" else root.get("rules")
    return db or "./leadflow.db", rules or "./rules"


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--mapping", "mapping_path", type=click.Path(exists=True, dir_okay=False),
              help="Mapping file for CSV input (lead id, attributes, events, outcome, feedback columns).")
@click.option("--trusted", is_flag=True, help="The JSONL holds history with leadflow's own event types (reps' "
                                               "verdicts, reopenings); refused otherwise. CSV with --mapping is trusted.")
@click.option("--max-future", "max_future", default="1d", show_default=True, envvar="LEADFLOW_MAX_FUTURE",
              help="Reject events dated more than this after the wall clock (env LEADFLOW_MAX_FUTURE).")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def ingest(ctx: click.Context, files: tuple, mapping_path: str | None, trusted: bool, max_future: str, db_path: str,
           rules_dir: str, as_json: bool) -> None:
    """Apply JSONL events (one JSON object per line; '-' reads standard input), or CSV rows with --mapping.

    A bad line is rejected alone (a dead letter); an id sent again with other content is a conflict."""
    from engine.pipeline import ingest_file
    from engine.pipeline import Counts, Pipeline
    from engine.core import parse_duration

    try:
        future = parse_duration(max_future)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-future") from None
    db, rules_path = _settings(ctx, db_path, rules_dir)
    for f in files:
        if f != "-" and not os.path.isfile(f):
            raise click.UsageError(f"no such file: {f}")
    pipeline = Pipeline.open(db, rules_path)
    total = Counts()
    for f in files:
        if sys.stderr.isatty() and f != "-":
            total.merge(_with_progress(f, lambda tick, f=f: ingest_file(pipeline, f, mapping_path, trusted, future,
                                                                         progress=tick)))
        else:
            total.merge(ingest_file(pipeline, f, mapping_path, trusted, future))
    stages = pipeline.store.stage_counts()
    for kind, listed in (("conflict", total.conflicted), ("rejected", total.rejections)):
        for source, line, fld, reason in listed:
            where = f"{source}:{line}" if line else source
            click.echo(f"{where}: {kind}: {fld + ': ' if fld else ''}{reason}", err=True)
    counts = {"applied": total.applied, "duplicates": total.duplicates, "rejected": total.rejected}
    if total.conflicts:  # only when there are some, so the usual answer keeps its shape
        counts["conflicts"] = total.conflicts
    if as_json:
        emit({**counts, "stages": stages})
    else:
        click.echo(", ".join(f"{k} {v}" for k, v in counts.items()))
        click.echo("stages: " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items())))
    if total.rejected or total.conflicts:
        click.echo(f"{total.rejected + total.conflicts} event(s) rejected or in conflict; kept in the dead_letters "
                   "table", err=True)
        sys.exit(1)


def _with_progress(name: str, run: Callable[[Callable[[int], None]], Any]) -> Any:
    """run(tick) under a progress bar on the terminal; tick(n) counts n more events."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} events"),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(f"ingesting {os.path.basename(name)}", total=None)
        return run(lambda n: progress.advance(task, n))


@main.group()
def leads() -> None:
    """Look at leads."""


def _open_read(ctx: click.Context, db_path: str | None, rules_dir: str | None) -> tuple[Any, Any]:
    from engine.rules import load_rules
    from engine.store import Store

    db, rules_path = _settings(ctx, db_path, rules_dir)
    if not os.path.exists(db):
        raise click.UsageError(f"no database at {db} (ingest events first, or pass --db)")
    return Store(db), load_rules(rules_path)


@leads.command("show")
@click.argument("lead")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def leads_show(ctx: click.Context, lead: str, db_path: str, rules_dir: str, as_json: bool) -> None:
    """A lead's stage, score, BANT, contributions and history."""
    from engine.reports import lead_json, story

    store, ruleset = _open_read(ctx, db_path, rules_dir)
    data = lead_json(store, ruleset, lead)
    if data is None:
        click.echo(f"no lead '{lead}'", err=True)
        sys.exit(1)
    if as_json:
        emit(data)
    else:
        click.echo(story(store, ruleset, lead))


@leads.command("explain")
@click.argument("lead")
@db_option
@rules_option
@click.pass_context
@reports_problems
def leads_explain(ctx: click.Context, lead: str, db_path: str, rules_dir: str) -> None:
    """Why a lead is where it is, as a readable story."""
    from engine.reports import story

    store, ruleset = _open_read(ctx, db_path, rules_dir)
    text = story(store, ruleset, lead)
    if text is None:
        click.echo(f"no lead '{lead}'", err=True)
        sys.exit(1)
    click.echo(text)


@leads.command("list")
@click.option("--stage", type=click.Choice(["new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost",
                                            "disqualified"]))
@click.option("--limit", type=int, default=None)
@db_option
@json_option
@click.pass_context
def leads_list(ctx: click.Context, stage: str | None, limit: int | None, db_path: str, as_json: bool) -> None:
    """Leads, best score first."""
    from engine.store import Store

    db, _ = _settings(ctx, db_path, None)
    if not os.path.exists(db):
        raise click.UsageError(f"no database at {db} (ingest events first, or pass --db)")
    rows = Store(db).list_leads(stage, limit)
    if as_json:
        emit([{"id": r["id"], "stage": r["stage"], "score": round(r["score"], 2), "owner": r["owner"]} for r in rows])
        return
    for r in rows:
        click.echo(f"{r['id']:<24} {r['stage']:<13} {r['score']:>7.2f}  {r['owner'] or '-'}")


@main.command()
@click.option("--out", default="leadflow-demo.db", show_default=True, help="Fresh SQLite file for the demo.")
@click.option("--leads", "n_leads", default=60, show_default=True)
@click.option("--seed", default=7, show_default=True)
@rules_option
@json_option
@click.pass_context
@reports_problems
def demo(ctx: click.Context, out: str, n_leads: int, seed: int, rules_dir: str, as_json: bool) -> None:
    """Run the main job end to end on generated leads and show what happened."""
    from engine.demo import run_demo

    _, rules_path = _settings(ctx, None, rules_dir)
    report = run_demo(out, rules_path, n_leads, seed)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(report.text())


@main.command()
@click.option("--leads", "n_leads", default=100_000, show_default=True)
@click.option("--events-per-lead", default=10, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--db", "db_path", default=None, help="Database file (default: a temporary file, removed after).")
@click.option("--scheduler", is_flag=True, help="Instead: time a decay tick (1%% of leads) and nurture steps on the "
                                                 "existing database given by --db (it is changed).")
@rules_option
@json_option
@click.pass_context
@reports_problems
def bench(ctx: click.Context, n_leads: int, events_per_lead: int, seed: int, db_path: str | None, scheduler: bool,
          rules_dir: str, as_json: bool) -> None:
    """Benchmark the full ingest path against plain durable_rules (or the scheduler)."""
    from engine.demo import run_bench, run_scheduler_bench

    _, rules_path = _settings(ctx, None, rules_dir)
    if scheduler:
        if not db_path or not os.path.exists(db_path):
            raise click.UsageError("--scheduler needs --db with an existing (benchmark) database")
        emit(run_scheduler_bench(rules_path, db_path))
        return
    result = run_bench(rules_path, n_leads, events_per_lead, seed, db_path,
                       progress=None if as_json else lambda msg: click.echo(msg, err=True))
    if as_json:
        emit(result)
    else:
        for key, value in result.items():
            click.echo(f"{key:>24}: {value}")


@main.command("eval")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled historical leads (CSV).")
@click.option("--mapping", "mapping_path", required=True, type=click.Path(exists=True, dir_okay=False))
@rules_option
@json_option
@click.pass_context
@reports_problems
def eval_command(ctx: click.Context, data_path: str, mapping_path: str, rules_dir: str, as_json: bool) -> None:
    """How well the rules' score and SQL gate separate the outcome in labelled data."""
    from engine.rules import load_compiled
    from engine.learning import metrics, replay
    from engine.intake import labelled_leads, load_mapping, read_rows, readable

    _, rules_path = _settings(ctx, None, rules_dir)
    compiled = load_compiled(rules_path)
    header, rows = read_rows(data_path)
    leads = readable(labelled_leads(load_mapping(mapping_path, header), rows))
    result = metrics(replay(compiled, leads))
    if as_json:
        emit(result)
        return
    for key, value in result.items():
        click.echo(f"{key:>14}: {value}")


@main.command("dead-letters")
@db_option
@click.option("--limit", default=20, show_default=True)
@json_option
@click.pass_context
def dead_letters(ctx: click.Context, db_path: str, limit: int, as_json: bool) -> None:
    """Rejected input, newest first, with the reason."""
    from engine.store import Store

    db, _ = _settings(ctx, db_path, None)
    rows = Store(db).dead_letters(limit)
    if as_json:
        emit(rows)
        return
    for r in rows:
        where = f"{r['source']}:{r['line']}" if r["line"] else r["source"]
        click.echo(f"{where}: {r['field'] + ': ' if r['field'] else ''}{r['reason']}\n    {_printable(r['raw'][:200])}")


def _printable(text: str) -> str:
    """Raw input shown on a terminal: control characters (escape sequences, CR) as \\xNN, never live."""
    return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in text)


from . import _desk as cli_desk
from . import _outbox as cli_outbox
from . import _rules as cli_rules
from . import _stats as cli_stats  # noqa: E402,F401 - register `sql`, `outbox`, `rules`, `stats`
