"""`leadflow outbox`: what is waiting to be delivered, and what failed and why."""
from __future__ import annotations

import click

from ._shared import db_option, emit, existing_db, json_option


@click.command("outbox")
@click.option("--failed", "failed_only", is_flag=True, help="Only deliveries that failed for good.")
@click.option("--all", "include_done", is_flag=True, help="Include delivered rows.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@db_option
@json_option
@click.pass_context
def outbox(ctx: click.Context, failed_only: bool, include_done: bool, limit: int, db_path: str,
           as_json: bool) -> None:
    """Notifications not yet delivered (pending, sending, failed), newest first, with the last error."""
    from leadflow.delivery import list_outbox
    from leadflow.store import Store

    rows = list_outbox(Store(existing_db(ctx, db_path)), failed_only, include_done, limit)
    if as_json:
        emit([r.to_json() for r in rows])
        return
    if not rows:
        click.echo("no failed deliveries" if failed_only else "nothing waiting to be delivered", err=True)
    for r in rows:
        retry = f" next try {r.next_at}" if r.next_at else ""
        click.echo(f"{r.key:<28} {r.kind:<12} {r.lead or '-':<20} {r.status:<8} {r.attempts:>3}{retry}  "
                   f"{r.last_error or ''}".rstrip())
