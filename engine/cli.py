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


@main.group()
def rules() -> None:
    """Check and inspect rule files."""


@rules.command("check")
@click.argument("directory", required=False)
@rules_option
@json_option
@click.pass_context
def rules_check(ctx: click.Context, directory: str | None, rules_dir: str, as_json: bool) -> None:
    """Validate a rule directory; silent and exit 0 when valid."""
    from .checker import load_rules

    target = directory or _settings(ctx, rules_dir=rules_dir)[1]
    try:
        load_rules(target)
    except LeadflowError as exc:
        if as_json:
            emit({"valid": False, "problems": [p.to_dict() for p in exc.problems]})
        else:
            print_problems(exc.problems)
        sys.exit(1)
    if as_json:
        emit({"valid": True, "problems": []})


@rules.command("test")
@click.argument("directory", required=False)
@click.option("--coverage", is_flag=True, help="Also list the rules no test exercised (exit 1 if any).")
@rules_option
@json_option
@click.pass_context
@reports_problems
def rules_test(ctx: click.Context, directory: str | None, coverage: bool, rules_dir: str, as_json: bool) -> None:
    """Run the rule tests beside the rules (tests/*.yaml, *_test.yaml)."""
    from .checker import load_rules
    from .compiler import compile_rules
    from .ruletests import run_tests

    target = directory or _settings(ctx, rules_dir=rules_dir)[1]
    report = run_tests(compile_rules(load_rules(target)), target)
    if as_json:
        emit({"tests": report.tests, "passed": report.passed,
              "failures": [{"file": f.location.file, "line": f.location.line, "test": f.name, "message": f.message}
                           for f in report.failures],
              "problems": [p.to_dict() for p in report.problems], "untested": report.untested})
    else:
        if report.problems:
            print_problems(report.problems)
        for f in report.failures:
            click.echo(f"{f.location.file}:{f.location.line}: {f.message} (test '{f.name}')", err=True)
        click.echo(f"{report.passed} of {report.tests} rule tests passed", err=not report.ok)
        if coverage:
            click.echo("untested rules: " + (", ".join(report.untested) or "none"))
    if not report.ok or (coverage and report.untested) or report.tests == 0:
        sys.exit(1)


@rules.command("tune")
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False),
              help="Labelled leads (CSV, with --mapping); default: feedback and outcomes in the database.")
@click.option("--mapping", "mapping_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write the proposed rule set here.")
@click.option("--apply", "apply_live", is_flag=True, help="Write the proposal over the live rules.")
@click.option("--target-precision", type=click.FloatRange(0, 1), help="SQL score threshold for this precision.")
@click.option("--capacity", help="Share of leads the MQL gate should admit, e.g. 30%.")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def rules_tune(ctx: click.Context, data_path: str | None, mapping_path: str | None, out_dir: str | None,
               apply_live: bool, target_precision: float | None, capacity: str | None, db_path: str, rules_dir: str,
               as_json: bool) -> None:
    """Propose better points, new rules and thresholds from outcomes and reps' feedback."""
    from .labels import leads_from_csv, leads_from_store
    from .tune import tune

    db, rules_path = _settings(ctx, db_path, rules_dir)
    if not out_dir and not apply_live:
        raise click.UsageError("give --out DIR for a proposal to review, or --apply to change the live rules")
    share = None
    if capacity:
        try:
            share = float(capacity.rstrip("%")) / (100 if capacity.endswith("%") else 1)
        except ValueError:
            raise click.BadParameter("write a share such as 30% or 0.3", param_hint="--capacity") from None
    if data_path:
        if not mapping_path:
            raise click.UsageError("--data needs --mapping")
        leads = leads_from_csv(data_path, mapping_path)
    else:
        leads = leads_from_store(db)
    if sum(1 for x in leads if x.label is not None) < 20:
        click.echo("not enough labelled leads to tune (need at least 20 with feedback or an outcome)", err=True)
        sys.exit(1)
    report = tune(rules_path, leads, rules_path if apply_live else out_dir, target_precision, share)
    if as_json:
        emit(report)
        return
    b, a = report["validation"]["before"], report["validation"]["after"]
    click.echo(f"AUC {b['auc']} -> {a['auc']}, precision@30% {b['precision_at']['0.3']} -> {a['precision_at']['0.3']}"
               f" ({report['validation']['folds']}-fold cross-validated on {report['leads']} leads)")
    for r in report["rules"]:
        if r["old"] != r["new"]:
            click.echo(f"  {r['rule']}: {r['old']:g} -> {r['new']}")
    for r in report["new_rules"]:
        click.echo(f"  new {r['rule']} ({r['points']:+d}): {r['evidence']}")
    click.echo(f"wrote {rules_path if apply_live else out_dir} (see TUNING.md there)", err=True)


@rules.command("backtest")
@click.option("--candidate", "candidate_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The rule directory to try.")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def rules_backtest(ctx: click.Context, candidate_dir: str, db_path: str, rules_dir: str, as_json: bool) -> None:
    """Replay the stored event log through a candidate rule set (the database is only read)."""
    from .backtest import backtest
    from .checker import load_rules
    from .compiler import compile_rules
    from .store import Store

    db, rules_path = _settings(ctx, db_path, rules_dir)
    if not os.path.exists(db):
        raise click.UsageError(f"no database at {db}")
    result = backtest(Store(db), compile_rules(load_rules(rules_path)), compile_rules(load_rules(candidate_dir)))
    if as_json:
        emit(result)
        return
    click.echo(f"replayed {result['events']:,} events of {result['leads']:,} leads in {result['seconds']} s")
    for name in ("current", "candidate"):
        click.echo(f"  {name:>9}: " + ", ".join(f"{k} {v}" for k, v in sorted(result["stages"][name].items())))
    click.echo(f"  {result['changed']} lead(s) would end in another stage"
               + "".join(f"\n    {c['lead']}: {c['current']} -> {c['candidate']}" for c in result["changed_leads"][:20]))
    fb = result["feedback"]
    click.echo(f"  accepted SQLs the candidate would lose: {fb['accepted_lost']} of {fb['accepted']}")
    click.echo(f"  rejected SQLs the candidate would filter out: {fb['rejected_filtered']} of {fb['rejected']}")


@rules.command("schema")
@click.option("--write", "write_dir", type=click.Path(file_okay=False), help="Write schema.json and REFERENCE.md here.")
@click.option("--reference", is_flag=True, help="Print the Markdown reference instead of the JSON Schema.")
def rules_schema(write_dir: str | None, reference: bool) -> None:
    """Print (or write) the JSON Schema and the reference of the rule format."""
    from .schema import render_json_schema, render_reference

    if write_dir:
        with open(os.path.join(write_dir, "schema.json"), "w", encoding="utf-8") as fh:
            fh.write(render_json_schema())
        with open(os.path.join(write_dir, "REFERENCE.md"), "w", encoding="utf-8") as fh:
            fh.write(render_reference())
        click.echo(f"wrote {write_dir}/schema.json and {write_dir}/REFERENCE.md", err=True)
        return
    click.echo(render_reference() if reference else render_json_schema(), nl=False)


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

            return ((i, json.dumps(e)) for i, e in enumerate(csv_events(mapping_path, path), 1))
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
@rules_option
@json_option
@click.pass_context
@reports_problems
def bench(ctx: click.Context, n_leads: int, events_per_lead: int, seed: int, db_path: str | None,
          rules_dir: str, as_json: bool) -> None:
    """Benchmark the full ingest path against plain durable_rules."""
    from .bench import run_bench

    _, rules_path = _settings(ctx, None, rules_dir)
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
    from .checker import load_rules
    from .compiler import compile_rules
    from .evaluate import metrics, replay
    from .mapping import labelled_leads, load_mapping, read_rows

    _, rules_path = _settings(ctx, None, rules_dir)
    compiled = compile_rules(load_rules(rules_path))
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


from . import cli_desk, cli_stats  # noqa: E402,F401 - register `leadflow sql ...` and `leadflow stats`

if __name__ == "__main__":  # `python -m engine.cli`: run the module-level group that cli_desk extended
    from engine.cli import main as _main

    _main()
