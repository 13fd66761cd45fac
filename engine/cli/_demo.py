"""`leadflow demo` and `leadflow bench`: the main job on generated leads, and how fast it runs."""
from __future__ import annotations

import os

import click
from click.core import ParameterSource

from ._shared import DEFAULT_RULES, emit, json_option, reports_problems, rules_option, settings

DEMO_DB = "leadflow-demo.db"


@click.command()
@click.option("--db", "--out", "db_path", default=None,
              help=f"SQLite file for the demo, replaced when the demo succeeds [default: {DEMO_DB}], or an empty "
                   "PostgreSQL database (postgresql://...). Only --db on the command line counts: the demo never "
                   "replaces the database LEADFLOW_DB names.")
@click.option("--leads", "n_leads", default=60, show_default=True)
@click.option("--seed", default=7, show_default=True)
@rules_option
@json_option
@click.pass_context
@reports_problems
def demo(ctx: click.Context, db_path: str | None, n_leads: int, seed: int, rules_dir: str, as_json: bool) -> None:
    """Run the main job end to end on generated leads and show what happened.

    Uses ./rules (or --rules); in a folder without rules, the bundled example rules."""
    from leadflow.demo import bundled_rules_dir, run_demo
    from leadflow.store import is_postgres_url

    _, rules_path = settings(ctx, None, rules_dir)
    if not _given(ctx, "rules_dir", ParameterSource.ENVIRONMENT) and not os.path.isdir(rules_path):
        rules_path = bundled_rules_dir()
        click.echo(f"leadflow demo: no {DEFAULT_RULES} here, so the bundled example rules "
                   "(leadflow init writes a copy to edit)", err=True)
    else:
        click.echo(f"leadflow demo: rules from {rules_path}", err=True)
    db = settings(ctx, db_path, None)[0] if _given(ctx, "db_path") else DEMO_DB
    folder = os.path.dirname(os.path.abspath(db))
    if not is_postgres_url(db) and (not os.path.isdir(folder) or not os.access(folder, os.W_OK)):
        raise click.UsageError(f"--db {db}: {os.path.dirname(db) or '.'} is not a folder the demo can write in")
    report = run_demo(db, rules_path, n_leads, seed)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(report.text())


def _given(ctx: click.Context, name: str, *more: ParameterSource) -> bool:
    """Whether the option `name` was set on the command line (or from a source in `more`), on the
    command or before it."""
    sources = (ParameterSource.COMMANDLINE, *more)
    return any(c.get_parameter_source(name) in sources for c in (ctx, ctx.find_root()))


@click.command()
@click.option("--leads", "n_leads", default=100_000, show_default=True)
@click.option("--events-per-lead", default=10, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--db", "db_path", default=None, help="Database: a file or a postgresql:// URL (default: a temporary "
                                                    "file, removed after). With --jobs on PostgreSQL, scratch schemas "
                                                    "of this database, dropped after.")
@click.option("--jobs", type=click.IntRange(1, 64), default=None,
              help="Also ingest with this many processes on one database, against one process, in the same run.")
@click.option("--backtest", is_flag=True, help="Also time `rules backtest` of the ingested log (with --jobs "
                                                "processes, default 1) against a copy of the rules with one "
                                                "threshold changed.")
@click.option("--webhook", is_flag=True, help="Instead: the sustained rate of `leadflow serve`'s webhook, one event "
                                              "per request from --connections connections (default 2,000 leads x 5 "
                                              "events), on a scratch database.")
@click.option("--connections", type=click.IntRange(1, 1000), default=32, show_default=True,
              help="With --webhook: connections sending at once.")
@click.option("--scheduler", is_flag=True, help="Instead: time a decay tick (1% of leads) and nurture steps on the "
                                                 "existing database given by --db (it is changed).")
@rules_option
@json_option
@click.pass_context
@reports_problems
def bench(ctx: click.Context, n_leads: int, events_per_lead: int, seed: int, db_path: str | None,
          jobs: int | None, backtest: bool, webhook: bool, connections: int, scheduler: bool, rules_dir: str,
          as_json: bool) -> None:
    """Benchmark the full ingest path against plain durable_rules (or the scheduler, or the webhook)."""
    from leadflow.demo import run_bench, run_scheduler_bench, webhook_bench
    from leadflow.store import is_postgres_url

    _, rules_path = settings(ctx, None, rules_dir)
    if webhook:
        if scheduler or backtest or jobs or db_path:
            raise click.UsageError("--webhook runs alone, on a scratch database (no --scheduler, --backtest, "
                                   "--jobs or --db)")
        emit({"webhook": webhook_bench(rules_path, n_leads if _given(ctx, "n_leads") else 2000,
                                       events_per_lead if _given(ctx, "events_per_lead") else 5, seed, connections)})
        return
    if scheduler:
        if not db_path or not (is_postgres_url(db_path) or os.path.exists(db_path)):
            raise click.UsageError("--scheduler needs --db with an existing (benchmark) database")
        emit(run_scheduler_bench(rules_path, db_path))
        return
    result = run_bench(rules_path, n_leads, events_per_lead, seed, db_path,
                       progress=None if as_json else lambda msg: click.echo(msg, err=True), jobs=jobs,
                       backtest=backtest)
    if as_json:
        emit(result)
    else:
        for key, value in result.items():
            click.echo(f"{key:>24}: {value}")
