"""Reads for the metrics (part of the store: `Store` inherits them; kept apart to keep modules small).

Metrics read what is stored, which may predate today's checks at ingest (an amount of "1,200", an
Infinity that SQLite's JSON functions refuse): every JSON read here is guarded by json_valid, so one
old bad row gives INVALID (or NULL) instead of failing the query, and `stats`, for everyone. Values are
taken by their JSON type, not by json_extract alone, which turns `true` into 1 and ["x"] into text.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

from ._database import Database

INVALID = "<invalid JSON>"  # a stored value the metrics cannot read as the number it should be


class StageEntry(NamedTuple):
    lead: str
    to_stage: str
    at: float
    rules_version: str | None


class FunnelRow(NamedTuple):
    """A stage change with what the funnel slices it by: the lead's owner and one attribute (or None)."""
    lead: str
    to_stage: str
    at: float
    rules_version: str | None
    owner: str | None
    key: object  # the --by value: an attribute as stored (text, number...), the owner, or None


class LoggedEvent(NamedTuple):
    lead: str
    type: str
    at_text: str  # as sent
    data: str  # JSON text


class WonDeal(NamedTuple):
    lead: str
    at: float
    amount: float | str | None  # a number, None when absent, INVALID for anything else


class CampaignCost(NamedTuple):
    at: float
    campaign: str | None  # None unless it is JSON text
    amount: float | str | None  # as in WonDeal


class MetricsReads(Database):
    def stage_entries(self) -> Iterator[StageEntry]:
        """Every stage change, lead by lead, oldest first."""
        yield from map(StageEntry._make, self._stream("SELECT lead, to_stage, at, rules_version FROM stage_history"
                                                           " ORDER BY lead, at, id"))

    def lead_fields(self, field: str) -> dict[str, object]:
        """lead id -> one attribute (or 'owner'), for slicing metrics."""
        if field == "owner":
            return dict(self._exec("SELECT id, owner FROM leads"))
        return dict(self._exec("SELECT id, CASE WHEN json_valid(state) THEN json_extract(state, '$.attrs.' ||"
                                      " json_quote(?)) END FROM leads", (field,)))

    def funnel_rows(self, field: str | None = None) -> Iterator[FunnelRow]:
        """Every stage change, lead by lead, oldest first, with the lead's owner and `field` (an attribute or
        'owner'; None for none): one pass with the leads joined, rather than a dict of every lead in memory."""
        if field is None:
            key, params = "NULL", ()
        elif field == "owner":
            key, params = "l.owner", ()
        else:
            key, params = ("CASE WHEN json_valid(l.state) THEN json_extract(l.state, '$.attrs.' || json_quote(?))"
                           " END"), (field,)
        yield from map(FunnelRow._make, self._stream(
            f"SELECT s.lead, s.to_stage, s.at, s.rules_version, l.owner, {key} FROM stage_history s"
            " LEFT JOIN leads l ON l.id = s.lead ORDER BY s.lead, s.at, s.id", params))

    def has_attribute(self, field: str) -> bool:
        """Whether any lead has a value for this attribute (a --by nobody has is a mistake, not a table)."""
        return self._exec("SELECT 1 FROM leads WHERE json_valid(state) AND json_type(state, '$.attrs.' ||"
                                 " json_quote(?)) IS NOT NULL LIMIT 1", (field,)).fetchone() is not None

    def attribute_names(self, limit: int = 500) -> list[str]:
        """Attribute names the leads have, for a did-you-mean (read only when a --by names none of them)."""
        return [r[0] for r in self._exec(
            "SELECT DISTINCT j.key FROM leads, json_each(leads.state, '$.attrs') AS j WHERE json_valid(leads.state)"
            " AND json_type(leads.state, '$.attrs') = 'object' ORDER BY j.key LIMIT ?", (limit,))]

    def known_owners(self) -> list[str]:
        """Everyone who owns a lead or was assigned one."""
        return [r[0] for r in self._exec("SELECT owner FROM leads WHERE owner IS NOT NULL UNION"
                                                " SELECT rep FROM assignments WHERE rep IS NOT NULL ORDER BY 1")]

    def event_log(self) -> Iterator[LoggedEvent]:
        """Every stored event, lead by lead in arrival order."""
        yield from map(LoggedEvent._make, self._stream("SELECT lead, type, at_text, data FROM events"
                                                            " ORDER BY lead, seq"))

    # the amount when it is a JSON number, None when absent or null, INVALID for anything else (text,
    # true, an array, data that is not JSON)
    _AMOUNT = ("CASE WHEN NOT json_valid(data) THEN :invalid"
               " WHEN json_type(data, '$.amount') IN ('integer', 'real') THEN json_extract(data, '$.amount')"
               " WHEN coalesce(json_type(data, '$.amount'), 'null') = 'null' THEN NULL ELSE :invalid END")

    def won_deals(self) -> list[WonDeal]:
        """Every deal_won event, with its amount as stored."""
        return list(map(WonDeal._make, self._exec(f"SELECT lead, at, {self._AMOUNT} FROM events"
                                                         " WHERE type = 'deal_won'", {"invalid": INVALID})))

    def campaign_costs(self) -> list[CampaignCost]:
        """Every campaign_cost event, with its campaign and amount as stored."""
        return list(map(CampaignCost._make, self._exec(
            "SELECT at, CASE WHEN json_valid(data) AND json_type(data, '$.campaign') = 'text'"
            f" THEN json_extract(data, '$.campaign') END, {self._AMOUNT}"
            " FROM events WHERE type = 'campaign_cost'", {"invalid": INVALID})))

    def feedback_rows(self) -> list[dict]:
        return self._rows("SELECT * FROM feedback ORDER BY id")
