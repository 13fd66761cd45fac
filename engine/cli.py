"""The `leadflow` command: thin click wrappers over the library.

Data goes to stdout, diagnostics to stderr. Exit codes: 0 ok, 1 a problem was found (invalid rules,
rejected input), 2 usage error (click's own).
"""
from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

import click

from .errors import EngineError, LeadflowError, Problem


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
        click.echo(f"{loc}: {p.code}: {p.message}", err=True)
        if loc.line and loc.file:
            if loc.file not in sources:
                try:
                    with open(loc.file, encoding="utf-8", errors="replace") as fh:
                        sources[loc.file] = fh.read().splitlines()
                except OSError:
                    sources[loc.file] = []
            lines = sources[loc.file]
            if 0 < loc.line <= len(lines):
                click.echo(f"    {lines[loc.line - 1]}", err=True)
                click.echo("    " + " " * (max(loc.column, 1) - 1) + "^", err=True)
        if p.hint:
            click.echo(f"  hint: {p.hint}", err=True)
    click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


# ---- commands -------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def ingest(ctx: click.Context, files: tuple, mapping_path: str | None, db_path: str, rules_dir: str,
           as_json: bool) -> None:
    """Apply JSONL events (one JSON object per line; '-' reads standard input), or CSV rows with --mapping."""
    from .events import read_jsonl
    from .pipeline import Counts, Pipeline

    def lines_of(path: str):  # noqa: ANN202
        if mapping_path and path.endswith(".csv"):
            from .mapping import csv_events

            return ((line, json.dumps(e)) for line, e in csv_events(mapping_path, path))
        return read_jsonl(path)

    db, rules_path = _settings(ctx, db_path, rules_dir)
    for f in files:
        if f != "-" and not os.path.isfile(f):
            raise click.UsageError(f"no such file: {f}")
    pipeline = Pipeline.open(db, rules_path)
    total = Counts()
    for f in files:
        lines = lines_of(f)
        if sys.stderr.isatty() and f != "-":
            counts = _with_progress(pipeline, lines, f)
        else:
            counts = pipeline.apply_lines(lines, source=f)
        total.applied += counts.applied
        total.duplicates += counts.duplicates
        total.rejected += counts.rejected
        total.rejections += counts.rejections
    stages = pipeline.store.stage_counts()
    for source, line, fld, reason in total.rejections:
        where = f"{source}:{line}" if line else source
        click.echo(f"{where}: rejected: {fld + ': ' if fld else ''}{reason}", err=True)
    if as_json:
        emit({"applied": total.applied, "duplicates": total.duplicates, "rejected": total.rejected, "stages": stages})
    else:
        click.echo(f"applied {total.applied}, duplicates {total.duplicates}, rejected {total.rejected}")
        click.echo("stages: " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items())))
    if total.rejected:
        click.echo(f"{total.rejected} event(s) rejected; kept in the dead_letters table", err=True)
        sys.exit(1)


def _with_progress(pipeline: Any, lines: Any, name: str) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    size = os.path.getsize(name)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} events"),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(f"ingesting {os.path.basename(name)}", total=None if not size else None)
        return pipeline.apply_lines(lines, source=name, progress=lambda n: progress.advance(task, n))


@main.group()
def leads() -> None:
    """Look at leads."""


def _open_read(ctx: click.Context, db_path: str | None, rules_dir: str | None) -> tuple[Any, Any]:
    from .checker import load_rules
    from .store import Store

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
    from .leadview import lead_json, story

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
    from .leadview import story

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
    from .store import Store

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
    from .demo import run_demo

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
    from .bench import run_bench, run_scheduler_bench

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
    from .compiler import load_compiled
    from .evaluate import metrics, replay
    from .mapping import labelled_leads, load_mapping, read_rows

    _, rules_path = _settings(ctx, None, rules_dir)
    compiled = load_compiled(rules_path)
    header, rows = read_rows(data_path)
    leads = list(labelled_leads(load_mapping(mapping_path, header), rows))
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
    from .store import Store

    db, _ = _settings(ctx, db_path, None)
    rows = Store(db).dead_letters(limit)
    if as_json:
        emit(rows)
        return
    for r in rows:
        where = f"{r['source']}:{r['line']}" if r["line"] else r["source"]
        click.echo(f"{where}: {r['field'] + ': ' if r['field'] else ''}{r['reason']}\n    {r['raw'][:200]}")


from . import cli_desk, cli_rules, cli_stats  # noqa: E402,F401 - register `sql ...`, `rules ...`, `stats`

if __name__ == "__main__":  # `python -m engine.cli`: run the module-level group that cli_desk extended
    from engine.cli import main as _main

    _main()
