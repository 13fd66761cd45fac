"""`leadflow stats`: the pipeline metrics as tables, JSON, CSV or a PNG dashboard."""
from __future__ import annotations

import click

from ._shared import csv_option, db_option, emit, emit_csv, existing_db, json_option, reports_problems


def _when(value: str | None, end: bool = False) -> float | None:
    if not value:
        return None
    from leadflow.core import parse_time

    text = value if "T" in value else value + "T00:00:00Z"
    try:
        return parse_time(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--since", help="Start of the period (YYYY-MM-DD or ISO time), inclusive.")
@click.option("--until", help="End of the period (YYYY-MM-DD or ISO time), exclusive.")
@click.option("--by", "by", help="Slice by a lead attribute (source, campaign, ...), owner or rules_version.")
@click.option("--rep", help="Only this rep's leads and assignments.")
@click.option("--costs", "costs_path", type=click.Path(exists=True, dir_okay=False),
              help="CSV with columns campaign,cost for cost per MQL/SQL/customer (slice --by campaign).")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), help="Write a PNG dashboard here.")
@db_option
@json_option
@csv_option
@click.pass_context
@reports_problems
def stats(ctx: click.Context, since: str | None, until: str | None, by: str | None, rep: str | None,
          costs_path: str | None, chart_path: str | None, db_path: str, as_json: bool, as_csv: bool) -> None:
    """Funnel, conversion, time between stages, reps, reject reasons, revenue and costs."""
    from leadflow.reports import compute, load_costs
    from leadflow.store import Store

    store = Store(existing_db(ctx, db_path))
    lo, hi = _when(since), _when(until)
    data = compute(store, lo, hi, by, rep, load_costs(costs_path, store, lo, hi), weekly=bool(chart_path))
    if chart_path:
        from leadflow.reports import dashboard

        with open(chart_path, "wb") as fh:
            fh.write(dashboard(data, f"Pipeline{' for ' + rep if rep else ''}"))
        click.echo(f"wrote {chart_path}", err=True)
    if as_json:
        emit(data)
    elif as_csv:
        _csv(data, by)
    elif not chart_path:
        _tables(data, by)


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


def _tables(data: dict, by: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from leadflow.reports import period_label

    console = Console()

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.0%}"

    def hours(x: float | None) -> str:
        return "—" if x is None else f"{x:g} h"

    def money(x: float | None) -> str:
        return "too large" if x is None else f"{x:g}"

    funnel = Table(title=f"Pipeline, {period_label(data)}")
    for col in ("stage", "entered"):
        funnel.add_column(col)
    for stage, n in data["stages"].items():
        funnel.add_row(stage, str(n))
    console.print(funnel)
    c, m, p = data["conversion"], data["median_hours"], data["p90_hours"]
    console.print(f"MQL->SQL {pct(c['mql_to_sql'])} of {data['cohorts']['mql']} MQLs; SQL accepted "
                  f"{pct(c['sql_to_accepted'])}, won {pct(c['sql_to_won'])} of {data['cohorts']['sql']} SQLs; "
                  f"MQL->SQL median {hours(m['mql_to_sql'])} (p90 {hours(p['mql_to_sql'])}); "
                  f"revenue {money(data['revenue'])} from {data['won']} won; SLA breaches {data['sla_breaches']}")
    if data["reps"]:
        reps = Table(title="Reps")
        for col in ("rep", "assigned", "accepted", "rejected", "pending", "expired", "acceptance", "median decision"):
            reps.add_column(col)
        for r in data["reps"]:
            reps.add_row(r["rep"], str(r["assigned"]), str(r["accepted"]), str(r["rejected"]), str(r["pending"]),
                         str(r["expired"]), pct(r["acceptance_rate"]), hours(r["median_hours_to_decision"]))
        console.print(reps)
    if data["reject_reasons"]:
        console.print("Reject reasons: " + ", ".join(f"{r['reason']} {r['count']}" for r in data["reject_reasons"]))
    if by:
        sliced = Table(title=f"By {by}")
        for col in ("value", "new", "mql", "sql", "won", "MQL->SQL", "revenue", "cost/MQL"):
            sliced.add_column(col)
        for g in data["by"]:
            s = g["stages"]
            cost = (g.get("cost") or {}).get("per_mql")
            sliced.add_row(g["value"], str(s.get("new", 0)), str(s.get("mql", 0)), str(s.get("sql", 0)), str(g["won"]),
                           pct(g["conversion"]["mql_to_sql"]), money(g["revenue"]), "—" if cost is None else f"{cost:g}")
        console.print(sliced)
