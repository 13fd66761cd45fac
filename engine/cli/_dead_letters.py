"""`leadflow dead-letters`: rejected input, newest first, with the reason."""
from __future__ import annotations

import click

from ._shared import csv_option, db_option, emit_list, existing_db, json_option, terminal_safe

FIELDS = ("id", "received_at", "source", "line", "field", "reason", "raw")


@click.command("dead-letters")
@db_option
@click.option("--limit", default=20, show_default=True)
@json_option
@csv_option
@click.pass_context
def dead_letters(ctx: click.Context, db_path: str, limit: int, as_json: bool, as_csv: bool) -> None:
    """Rejected input, newest first, with the reason (and the raw input under it)."""
    from leadflow.store import Store

    rows = Store(existing_db(ctx, db_path)).dead_letters(limit)
    emit_list(rows, FIELDS, "{where:<24} {field:<14} {reason}\n    {raw}", _text, as_json, as_csv, "no dead letters")


def _text(row: dict) -> dict:
    """Where, why and the first 200 characters of the raw input, safe to print on a terminal."""
    where = f"{row['source']}:{row['line']}" if row["line"] else row["source"]
    return {"where": terminal_safe(str(where)), "field": terminal_safe(str(row["field"] or "-")),
            "reason": terminal_safe(str(row["reason"])), "raw": terminal_safe(str(row["raw"])[:200])}
