"""Reads for the metrics (part of the store: `Store` inherits them; kept apart to keep modules small).

Metrics read what is stored, which may predate today's checks at ingest (an amount of "1,200", an
Infinity that SQLite's JSON functions refuse): every JSON read here is guarded by json_valid, so one
old bad row gives INVALID (or NULL) instead of failing the query, and `stats`, for everyone. Values are
taken by their JSON type, not by json_extract alone, which turns `true` into 1 and ["x"] into text.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Iterator


class MetricsReads:
    conn: sqlite3.Connection
    db: Any  # sqlite_utils.Database

    def stage_entries(self) -> Iterator[tuple]:
        """(lead, to_stage, at, rules_version) for every stage change, oldest first."""
        yield from self.conn.execute("SELECT lead, to_stage, at, rules_version FROM stage_history ORDER BY lead, at, id")

    def lead_fields(self, field: str) -> dict:
        """lead id -> one attribute (or 'owner'), for slicing metrics."""
        if field == "owner":
            return dict(self.conn.execute("SELECT id, owner FROM leads"))
        return dict(self.conn.execute("SELECT id, CASE WHEN json_valid(state) THEN json_extract(state, '$.attrs.' ||"
                                      " json_quote(?)) END FROM leads", (field,)))

    def event_log(self) -> Iterator[tuple]:
        """(lead, type, at text, data JSON) for every stored event, lead by lead in arrival order."""
        yield from self.conn.execute("SELECT lead, type, at_text, data FROM events ORDER BY lead, seq")

    INVALID = "<invalid JSON>"

    # the amount when it is a JSON number, None when absent or null, INVALID for anything else (text,
    # true, an array, data that is not JSON)
    _AMOUNT = ("CASE WHEN NOT json_valid(data) THEN :invalid"
               " WHEN json_type(data, '$.amount') IN ('integer', 'real') THEN json_extract(data, '$.amount')"
               " WHEN coalesce(json_type(data, '$.amount'), 'null') = 'null' THEN NULL ELSE :invalid END")

    def won_deals(self) -> list[tuple]:
        """(lead, at, amount as stored: a number, None, or INVALID) of every deal_won event."""
        return list(self.conn.execute(f"SELECT lead, at, {self._AMOUNT} FROM events WHERE type = 'deal_won'",
                                      {"invalid": self.INVALID}))

    def campaign_costs(self) -> list[tuple]:
        """(at, campaign when it is JSON text else None, amount as in won_deals) of every campaign_cost event."""
        return list(self.conn.execute("SELECT at, CASE WHEN json_valid(data) AND json_type(data, '$.campaign') = 'text'"
                                      f" THEN json_extract(data, '$.campaign') END, {self._AMOUNT}"
                                      " FROM events WHERE type = 'campaign_cost'", {"invalid": self.INVALID}))

    def feedback_rows(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM feedback ORDER BY id"))
