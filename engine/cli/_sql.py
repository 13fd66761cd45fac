"""`leadflow sql list|accept|reject`: play the rep from the command line (no Slack needed)."""
from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Callable

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

if TYPE_CHECKING:  # imported when a command runs, so `leadflow --help` stays quick
    from leadflow.service import LeadService
    from leadflow.store import Store

FIELDS = ("assignment", "lead", "rep", "channel", "status", "why", "due_at")


class _DecisionClock:
    """The wall clock, but never before the decided lead's latest event: a decision on a lead whose
    history runs ahead of today (imported or replayed) is stamped where that history is, so its event,
    its feedback row and the lead's stage history tell the same time."""

    def __init__(self) -> None:
        self.floor = 0.0

    def __call__(self) -> float:
        return max(time.time(), self.floor)


def _service(ctx: click.Context, db_path: str, rules_dir: str,
             clock: Callable[[], float] = time.time) -> LeadService:
    from leadflow.service import LeadService

    db = existing_db(ctx, db_path)
    service = LeadService(db, settings(ctx, db_path, rules_dir)[1], clock=clock)
    service.desk.route_pending()  # SQLs that arrived while no service was running
    return service


@click.group()
def sql() -> None:
    """Open SQLs and the reps' decisions."""


@sql.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include decided assignments.")
@db_option
@rules_option
@json_option
@csv_option
@click.pass_context
@reports_problems
def sql_list(ctx: click.Context, show_all: bool, db_path: str, rules_dir: str, as_json: bool, as_csv: bool) -> None:
    """Assignments waiting for a decision (with --all, every assignment)."""
    from leadflow.core import format_time

    service = _service(ctx, db_path, rules_dir)
    rows = [{"assignment": r["id"], "lead": r["lead"], "rep": r["rep"], "channel": r["channel"], "status": r["status"],
             "why": r["why"], "due_at": format_time(r["due_at"]) if r["due_at"] else None}
            for r in service.store.assignments(status=None if show_all else "pending")]
    emit_list(rows, FIELDS, "{id:<6} {lead:<20} {to:<14} {status:<10} {due:<20}  {why}", _text,
              as_json, as_csv, "no SQLs" if show_all else "no open SQLs")


def _text(row: dict) -> dict:
    return {"id": f"#{row['assignment']}", "lead": row["lead"], "status": row["status"], "why": row["why"],
            "to": row["rep"] or row["channel"] or "(nobody)",  # no routing and no fallback: nobody was told
            "due": row["due_at"] or "-"}


def _assignment(store: Store, which: str) -> int:
    """The assignment `which` names: `#18` is assignment 18; a lead id is the lead's open (else latest)
    assignment; a bare number is the assignment unless it is also a lead's id (then say which is which)."""
    number = re.fullmatch(r"#?([0-9]{1,18})", which.strip())
    if number and which.strip().startswith("#"):
        return int(number.group(1))
    mine = store.assignments(lead=which)
    if mine:
        pending = [a for a in mine if a["status"] == "pending"]
        lead_pick = (pending or mine)[-1]["id"]
        if number and store.assignment(int(number.group(1))) is not None and lead_pick != int(number.group(1)):
            raise click.UsageError(f"'{which}' is both assignment #{which} and lead {which} (assignment "
                                   f"#{lead_pick}): write #{which} or #{lead_pick}")
        return lead_pick
    if number:
        return int(number.group(1))
    if store.load_state(which) is None:
        raise click.UsageError(f"'{which}' is neither an assignment number (#18) nor a lead id")
    click.echo(f"lead {which} has no assignment (it is not an SQL routed to anyone)", err=True)
    sys.exit(1)


def _decide(ctx: click.Context, which: str, verdict: str, reason: str | None, comment: str | None,
            as_rep: str | None, db_path: str, rules_dir: str, as_json: bool) -> None:
    clock = _DecisionClock()
    service = _service(ctx, db_path, rules_dir, clock)
    assignment = _assignment(service.store, which)
    row = service.store.assignment(assignment)
    state = service.store.load_state(row["lead"]) if row else None
    clock.floor = (state.clock if state and state.clock is not None else 0.0)
    rep = as_rep or (row["rep"] if row else None)
    manager = as_rep is None and row is not None and row["rep"] is None
    result = service.desk.decide(assignment, verdict, f"cli:{rep or 'manager'}", rep, manager, reason, comment)
    clock.floor = 0.0
    service.desk.route_pending()
    if as_json:
        emit({"status": result.status, "message": result.message, "assignment": result.assignment})
    else:
        click.echo(result.message, err=result.status != "done")
    if result.status != "done":
        sys.exit(1)


def _decision(f: Callable) -> Callable:
    """The options accept and reject share: which assignment, as whom, where, and the output format."""
    for decorate in (reports_problems, click.pass_context, json_option, rules_option, db_option,
                     click.option("--as", "as_rep", help="Decide as this rep (default: the assigned rep)."),
                     click.argument("which", metavar="ASSIGNMENT|LEAD")):
        f = decorate(f)
    return f


@sql.command("accept")
@_decision
def sql_accept(ctx: click.Context, which: str, as_rep: str | None, db_path: str, rules_dir: str,
               as_json: bool) -> None:
    """Accept an assigned SQL: its assignment number (18 or #18, as `sql list` shows) or its lead id."""
    _decide(ctx, which, "accept", None, None, as_rep, db_path, rules_dir, as_json)


@sql.command("reject")
@click.option("--reason", required=True, help="A reject reason id from the rule files (feedback.reject_reasons).")
@click.option("--comment")
@_decision
def sql_reject(ctx: click.Context, which: str, reason: str, comment: str | None, as_rep: str | None,
               db_path: str, rules_dir: str, as_json: bool) -> None:
    """Reject an assigned SQL with a reason: its assignment number (18 or #18) or its lead id."""
    _decide(ctx, which, "reject", reason, comment, as_rep, db_path, rules_dir, as_json)
