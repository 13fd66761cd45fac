"""`leadflow sql list|accept|reject`: play the rep from the command line (no Slack needed)."""
from __future__ import annotations

import sys

import click

from ._main import db_option, emit, json_option, main, reports_problems, rules_option, _settings
from engine.core import format_time


def _service(ctx: click.Context, db_path: str, rules_dir: str):  # noqa: ANN202
    from engine.service import LeadService

    db, rules = _settings(ctx, db_path, rules_dir)
    service = LeadService(db, rules)
    service.desk.route_pending()  # SQLs that arrived while no service was running
    return service


@main.group()
def sql() -> None:
    """Open SQLs and the reps' decisions."""


@sql.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include decided assignments.")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def sql_list(ctx: click.Context, show_all: bool, db_path: str, rules_dir: str, as_json: bool) -> None:
    """Assignments waiting for a decision (with --all, every assignment)."""
    service = _service(ctx, db_path, rules_dir)
    rows = service.store.assignments(status=None if show_all else "pending")
    if as_json:
        emit([{"assignment": r["id"], "lead": r["lead"], "rep": r["rep"], "channel": r["channel"],
               "status": r["status"], "why": r["why"], "due_at": format_time(r["due_at"]) if r["due_at"] else None}
              for r in rows])
        return
    if not rows:
        click.echo("no open SQLs", err=True)
    for r in rows:
        due = f" due {format_time(r['due_at'])}" if r["due_at"] else ""
        target = r["rep"] or r["channel"] or "(nobody)"  # no routing and no fallback: nobody was told
        click.echo(f"#{r['id']:<5} {r['lead']:<20} {target:<14} {r['status']:<10}{due}  {r['why']}")


def _decide(ctx: click.Context, assignment: int, verdict: str, reason: str | None, comment: str | None,
            as_rep: str | None, db_path: str, rules_dir: str, as_json: bool) -> None:
    service = _service(ctx, db_path, rules_dir)
    row = service.store.assignment(assignment)
    rep = as_rep or (row["rep"] if row else None)
    manager = as_rep is None and row is not None and row["rep"] is None
    result = service.desk.decide(assignment, verdict, f"cli:{rep or 'manager'}", rep, manager, reason, comment)
    service.desk.route_pending()
    if as_json:
        emit({"status": result.status, "message": result.message, "assignment": result.assignment})
    else:
        click.echo(result.message, err=result.status != "done")
    if result.status != "done":
        sys.exit(1)


@sql.command("accept")
@click.argument("assignment", type=int)
@click.option("--as", "as_rep", help="Decide as this rep (default: the assigned rep).")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def sql_accept(ctx: click.Context, assignment: int, as_rep: str | None, db_path: str, rules_dir: str,
               as_json: bool) -> None:
    """Accept an assigned SQL."""
    _decide(ctx, assignment, "accept", None, None, as_rep, db_path, rules_dir, as_json)


@sql.command("reject")
@click.argument("assignment", type=int)
@click.option("--reason", required=True, help="A reject reason id from the rule files (feedback.reject_reasons).")
@click.option("--comment")
@click.option("--as", "as_rep", help="Decide as this rep (default: the assigned rep).")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def sql_reject(ctx: click.Context, assignment: int, reason: str, comment: str | None, as_rep: str | None,
               db_path: str, rules_dir: str, as_json: bool) -> None:
    """Reject an assigned SQL with a reason."""
    _decide(ctx, assignment, "reject", reason, comment, as_rep, db_path, rules_dir, as_json)
