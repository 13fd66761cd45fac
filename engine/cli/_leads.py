"""`leadflow leads show|explain|list`: look at leads (the database is only read)."""
from __future__ import annotations

import sys
from typing import Any, Callable

import click

from ._shared import (
    csv_option,
    db_option,
    emit,
    emit_list,
    existing_db,
    json_option,
    reports_problems,
    rules_option,
    settings,
)

STAGES = ["new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost", "disqualified"]


@click.group()
def leads() -> None:
    """Look at leads."""


def _lead(ctx: click.Context, lead: str, db_path: str | None, rules_dir: str | None) -> tuple[Any, Any, dict]:
    """(store, rule set, the lead's JSON) for a lead that exists; an unknown lead says so and exits 1."""
    from leadflow.reports import lead_json
    from leadflow.rules import load_rules
    from leadflow.store import Store

    store = Store(existing_db(ctx, db_path))
    ruleset = load_rules(settings(ctx, db_path, rules_dir)[1])
    data = lead_json(store, ruleset, lead)
    if data is None:
        click.echo(f"no lead '{lead}'", err=True)
        sys.exit(1)
    return store, ruleset, data


def _one_lead(f: Callable) -> Callable:
    """The arguments of show and explain: the lead, where to find it, and the output format."""
    for decorate in (reports_problems, click.pass_context, json_option, rules_option, db_option,
                     click.argument("lead")):
        f = decorate(f)
    return f


@leads.command("show")
@_one_lead
def leads_show(ctx: click.Context, lead: str, db_path: str, rules_dir: str, as_json: bool) -> None:
    """A lead's stage, score, BANT, contributions and history."""
    from leadflow.reports import story

    store, ruleset, data = _lead(ctx, lead, db_path, rules_dir)
    if as_json:
        emit(data)
    else:
        click.echo(story(store, ruleset, lead))


@leads.command("explain")
@_one_lead
def leads_explain(ctx: click.Context, lead: str, db_path: str, rules_dir: str, as_json: bool) -> None:
    """Why a lead is where it is, as a readable story (with --json: its stage and the story's lines)."""
    from leadflow.reports import story

    store, ruleset, data = _lead(ctx, lead, db_path, rules_dir)
    text = story(store, ruleset, lead) or ""
    if as_json:
        emit({"id": data["id"], "stage": data["stage"], "story": text.splitlines()})
    else:
        click.echo(text)


@leads.command("list")
@click.option("--stage", type=click.Choice(STAGES))
@click.option("--limit", type=int, default=None)
@db_option
@rules_option
@json_option
@csv_option
@click.pass_context
@reports_problems
def leads_list(ctx: click.Context, stage: str | None, limit: int | None, db_path: str, rules_dir: str,
               as_json: bool, as_csv: bool) -> None:
    """Leads, best score first; with the rules' calibration (calibration.yaml), how likely each is to buy."""
    from leadflow.rules import load_calibration, percent
    from leadflow.store import Store

    calibration = load_calibration(settings(ctx, db_path, rules_dir)[1])  # only that file: scores are stored
    rows = [{"id": r["id"], "stage": r["stage"], "score": round(r["score"], 2), "owner": r["owner"]}
            for r in Store(existing_db(ctx, db_path)).list_leads(stage, limit)]
    fields, line = ("id", "stage", "score", "owner"), "{lead:<24} {stage:<13} {score:>7}  {owner}"
    if calibration:  # without one nothing changes: no column, no key
        for r in rows:
            r["likely_to_buy"] = calibration.probability(r["score"])
        fields, line = fields + ("likely_to_buy",), "{lead:<24} {stage:<13} {score:>7} {likely_to_buy:>13}  {owner}"
    emit_list(rows, fields, line,
              lambda r: {"lead": r["id"], "stage": r["stage"], "score": f"{r['score']:.2f}", "owner": r["owner"] or "-",
                         "likely_to_buy": percent(r["likely_to_buy"]) if r.get("likely_to_buy") is not None else "-"},
              as_json, as_csv, f"no {stage} leads" if stage else "no leads")
