"""Reads for the metrics (part of the store: `Store` inherits them; kept apart to keep modules small).

Metrics read what is stored, which may predate today's checks at ingest (an amount of "1,200", an
Infinity that SQLite's JSON functions refuse): every JSON read here is guarded by json_valid, so one
old bad row gives INVALID (or NULL) instead of failing the query, and `stats`, for everyone.
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

    def won_deals(self) -> list[tuple]:
        """(lead, at, amount as stored: a number, None, text, or INVALID) of every deal_won event."""
        return list(self.conn.execute("SELECT lead, at, CASE WHEN json_valid(data) THEN json_extract(data, '$.amount')"
                                      " ELSE ? END FROM events WHERE type = 'deal_won'", (self.INVALID,)))

    def campaign_costs(self) -> list[tuple]:
        """(at, campaign, amount) of every campaign_cost event, as stored (see won_deals)."""
        return list(self.conn.execute("SELECT at, CASE WHEN json_valid(data) THEN json_extract(data, '$.campaign') END,"
                                      " CASE WHEN json_valid(data) THEN json_extract(data, '$.amount') ELSE ? END"
                                      " FROM events WHERE type = 'campaign_cost'", (self.INVALID,)))

    def feedback_rows(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM feedback ORDER BY id"))
