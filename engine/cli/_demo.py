"""`leadflow demo` and `leadflow bench`: the main job on generated leads, and how fast it runs."""
from __future__ import annotations

import os

import click

from ._shared import emit, json_option, reports_problems, rules_option, settings


@click.command()
@click.option("--out", default="leadflow-demo.db", show_default=True, help="Fresh SQLite file for the demo.")
@click.option("--leads", "n_leads", default=60, show_default=True)
@click.option("--seed", default=7, show_default=True)
@rules_option
@json_option
@click.pass_context
@reports_problems
def demo(ctx: click.Context, out: str, n_leads: int, seed: int, rules_dir: str, as_json: bool) -> None:
    """Run the main job end to end on generated leads and show what happened."""
    from leadflow.demo import run_demo

    _, rules_path = settings(ctx, None, rules_dir)
    report = run_demo(out, rules_path, n_leads, seed)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(report.text())


@click.command()
@click.option("--leads", "n_leads", default=100_000, show_default=True)
@click.option("--events-per-lead", default=10, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--db", "db_path", default=None, help="Database file (default: a temporary file, removed after).")
@click.option("--scheduler", is_flag=True, help="Instead: time a decay tick (1% of leads) and nurture steps on the "
                                                 "existing database given by --db (it is changed).")
@rules_option
@json_option
@click.pass_context
@reports_problems
def bench(ctx: click.Context, n_leads: int, events_per_lead: int, seed: int, db_path: str | None, scheduler: bool,
          rules_dir: str, as_json: bool) -> None:
    """Benchmark the full ingest path against plain durable_rules (or the scheduler)."""
    from leadflow.demo import run_bench, run_scheduler_bench

    _, rules_path = settings(ctx, None, rules_dir)
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
