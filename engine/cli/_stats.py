"""`leadflow stats`: the pipeline metrics as tables, JSON, CSV or a PNG dashboard."""
from __future__ import annotations

import click

from ._shared import (
    csv_option,
    db_option,
    emit,
    emit_csv,
    existing_db,
    json_option,
    reports_problems,
    rules_option,
    settings,
)


STAGE_NAMES = ("new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost", "disqualified")
PERIODS = ("a date (2026-03-01), an ISO time with a zone, or what people say: today, yesterday, this/last "
           "week|month|quarter|year, last N days|weeks|months|quarters|years, 2026, 2026-03, 2026-Q1")


def _bounds(since: str | None, until: str | None, period: str | None) -> tuple[float | None, float | None]:
    """[since, until) from the options: a phrase given to --since or --until stands for its start
    (--until "this month" stops before this month); --period takes the whole period it names."""
    import time

    from leadflow.reports import period_of

    now = time.time()

    def start(value: str | None, name: str) -> float | None:
        if value is None:
            return None
        try:
            return period_of(value, now).start
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=name) from None

    if period is not None:
        if since is not None or until is not None:
            raise click.UsageError("--period names the whole window: give it alone, or --since/--until")
        try:
            found = period_of(period, now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--period") from None
        return found.start, found.end
    return start(since, "--since"), start(until, "--until")


def _labels(ctx: click.Context, rules_dir: str | None) -> dict:
    """Reject reason id -> label from the rule files, when there are rule files to read."""
    import os

    from leadflow.core import LeadflowError
    from leadflow.rules import load_rules

    directory = settings(ctx, None, rules_dir)[1]
    if not os.path.isdir(directory):
        if ctx.get_parameter_source("rules_dir").name != "DEFAULT":
            return {}
        from leadflow.demo import bundled_rules_dir  # as `demo` does where there is no ./rules

        directory = bundled_rules_dir()
    try:
        ruleset = load_rules(directory)
    except LeadflowError:
        click.echo(f"note: the rule files in {directory} do not load; reject reasons are shown by id", err=True)
        return {}
    return {r["id"]: r.get("label") or r["id"] for r in (ruleset.section("feedback") or {}).get("reject_reasons", [])}


@click.command(epilog="Period figures count what happened in the window: stages entered, won, revenue, reps, "
               "reject reasons, costs. Cohort figures follow the leads that FIRST entered a stage in the "
               "window to wherever they went since, even after it: cohorts, conversion A_to_B (the share of "
               "the A cohort whose first B came at or after their first A) and the median/p90 time from A "
               "to B. Times are in UTC.")
@click.option("--since", help=f"Start of the window, inclusive: {PERIODS} (a phrase stands for its start).")
@click.option("--until", help="End of the window, exclusive: the same forms (--until 'this month' stops before it).")
@click.option("--period", help="The whole window one phrase names: 'last month', 'this quarter', 2026-Q1, 2026-03...")
@click.option("--from", "from_stage", type=click.Choice(STAGE_NAMES),
              help="With --to: also report conversion and time from this stage (its cohort) to --to.")
@click.option("--to", "to_stage", type=click.Choice(STAGE_NAMES), help="The stage --from converts to.")
@click.option("--by", "by", help="Slice every lead figure by a lead attribute (source, campaign, ...), owner or "
              "rules_version.")
@click.option("--rep", help="Only this rep's leads and assignments.")
@click.option("--costs", "costs_path", type=click.Path(exists=True, dir_okay=False),
              help="CSV with columns campaign,cost for cost per MQL/SQL/customer (slice --by campaign).")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), help="Write a PNG dashboard here.")
@db_option
@rules_option
@json_option
@csv_option
@click.pass_context
@reports_problems
def stats(ctx: click.Context, since: str | None, until: str | None, period: str | None, from_stage: str | None,
          to_stage: str | None, by: str | None, rep: str | None, costs_path: str | None, chart_path: str | None,
          db_path: str, rules_dir: str, as_json: bool, as_csv: bool) -> None:
    """Funnel, conversion and time between stages, wins and revenue per owner, reps, reject reasons,
    revenue and costs; any figure sliced with --by."""
    from leadflow.reports import check_scope, compute, load_costs
    from leadflow.store import Store

    if (from_stage is None) != (to_stage is None):
        raise click.UsageError("--from and --to go together (e.g. --from mql --to won)")
    if from_stage is not None and from_stage == to_stage:
        raise click.UsageError("--from and --to name the same stage")
    lo, hi = _bounds(since, until, period)
    store = Store(existing_db(ctx, db_path))
    costs = load_costs(costs_path, store, lo, hi)
    check_scope(store, by, rep, costs)
    pair = (from_stage, to_stage) if from_stage and to_stage else None
    data = compute(store, lo, hi, by, rep, costs, weekly=bool(chart_path), pair=pair, labels=_labels(ctx, rules_dir))
    if chart_path:
        from leadflow.reports import dashboard

        with open(chart_path, "wb") as fh:
            fh.write(dashboard(data, f"Pipeline{' for ' + rep if rep else ''}", by=by))
        click.echo(f"wrote {chart_path}", err=True)
    if as_json:
        emit(data)
    elif as_csv:
        _csv(data, by)
    elif not chart_path:
        _tables(data, by, pair)


def _flat(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif not isinstance(value, list):
            out[key] = value
    return out


def _csv(data: dict, by: str | None) -> None:
    rows = [_flat(r) for r in data["by"]] if by else [_flat({k: v for k, v in data.items() if k != "period"})]
    emit_csv(rows, sorted({k for r in rows for k in r}, key=lambda k: (k != "value", k)))


def _duration(hours: float | None) -> str:
    """Hours while they read well (under two days), days after that."""
    if hours is None:
        return "—"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def _money(x: float | None) -> str:
    return "too large" if x is None else f"{x:,.2f}".rstrip("0").rstrip(".")


def _tables(data: dict, by: str | None, pair: tuple | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from leadflow.reports import period_label

    console = Console()
    funnel = Table(title=f"Pipeline, {period_label(data)}")
    for col in ("stage", "entered", "first entered (cohort)", "to next step"):
        funnel.add_column(col)
    for step in data["funnel"]:
        funnel.add_row(step["stage"], str(step["entered"]), str(step["cohort"]), _pct(step["to_next"]))
    for stage, n in data["stages"].items():
        if stage not in {step["stage"] for step in data["funnel"]}:
            funnel.add_row(stage, str(n), "", "")
    console.print(funnel)
    times = Table(title="Conversion and time (cohorts)")
    for col in ("from → to", "cohort", "converted", "median", "p90"):
        times.add_column(col)
    for name, rate in data["conversion"].items():
        start = name.split("_to_")[0]
        times.add_row(name.replace("_to_", " → "), str(data["cohorts"].get(start, "")), _pct(rate),
                      _duration(data["median_hours"][name]), _duration(data["p90_hours"][name]))
    console.print(times)
    console.print(f"won {data['won']}, revenue {_money(data['revenue'])}; SLA breaches {data['sla_breaches']}")
    if data["owners"]:
        owners = Table(title="Won per owner")
        for col in ("owner", "won", "revenue"):
            owners.add_column(col)
        for o in data["owners"]:
            owners.add_row(o["owner"], str(o["won"]), _money(o["revenue"]))
        console.print(owners)
    if data["reps"]:
        reps = Table(title="Reps (assignments)")
        for col in ("rep", "assigned", "accepted", "rejected", "pending", "expired", "acceptance", "median decision"):
            reps.add_column(col)
        for r in data["reps"]:
            reps.add_row(r["rep"], str(r["assigned"]), str(r["accepted"]), str(r["rejected"]), str(r["pending"]),
                         str(r["expired"]), _pct(r["acceptance_rate"]), _duration(r["median_hours_to_decision"]))
        console.print(reps)
    if data["reject_reasons"]:
        console.print("Reject reasons: " + ", ".join(f"{r['label']} {r['count']}" for r in data["reject_reasons"]))
    if by:
        extra = "_to_".join(pair) if pair else "mql_to_won"
        costs = any("cost" in g for g in data["by"])
        sliced = Table(title=f"By {by}")
        arrow = extra.replace("_to_", "→").upper()
        for col in ("value", "new", "mql", "sql", "won", "MQL→SQL", arrow, "median", "revenue") + ("cost/MQL",) * costs:
            sliced.add_column(col)
        for g in data["by"]:
            s = g["stages"]
            cost = (g.get("cost") or {}).get("per_mql")
            sliced.add_row(g["value"], str(s.get("new", 0)), str(s.get("mql", 0)), str(s.get("sql", 0)),
                           str(g["won"]), _pct(g["conversion"]["mql_to_sql"]), _pct(g["conversion"][extra]),
                           _duration(g["median_hours"][extra]), _money(g["revenue"]),
                           *(("—" if cost is None else f"{cost:g}",) if costs else ()))
        console.print(sliced)
