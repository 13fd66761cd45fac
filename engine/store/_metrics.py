"""Reads for the metrics (part of the store: `Store` inherits them; kept apart to keep modules small).

Metrics read what is stored, which may predate today's checks at ingest (an amount of "1,200", an
Infinity no JSON reader accepts): one old bad row gives INVALID (or NULL), never a failed query, and
`stats` keeps working for everyone. The lead state and event data are JSON text; they are taken apart
here, in Python, on both backends: the databases' JSON functions disagree (PostgreSQL's with
SQLite's, and SQLite's own versions with each other: 3.40 cuts a string at an escaped NUL where 3.51
keeps it, and finds no key with a quote in it), so reading in SQL would give each database its own
answers. Values keep the meaning SQLite's json_extract gave them when it did this: `true` is 1 for a
--by slice, an object or array is its JSON text, an integer past 64 bits is a float; an amount is a
number only when it is a JSON number (text, `true` or ["x"] are INVALID, not money).
"""
from __future__ import annotations

import json
import math
from contextlib import closing
from typing import Any, Iterator, NamedTuple, Sequence

from ._database import Database

INVALID = "<invalid JSON>"  # a stored value the metrics cannot read as the number it should be
_BAD = object()  # text that is not JSON
_INT64 = 2 ** 63


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


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _strict(text: str | None) -> Any:
    """The JSON value of `text`, or _BAD when it is not JSON (NaN and Infinity are not)."""
    if text is None:
        return _BAD
    try:
        return json.loads(text, parse_constant=_refuse)
    except (ValueError, TypeError, RecursionError):
        return _BAD


def _number(value: float) -> float:
    """An integer past 64 bits as the float it is near (infinity past the float range)."""
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _extracted(value: Any) -> Any:
    """One attribute as a slice value: a number, text, None, 1/0 for booleans, JSON text for the rest."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _attributes(state_text: str | None) -> dict | None:
    state = _strict(state_text)
    attrs = state.get("attrs") if isinstance(state, dict) else None
    return attrs if isinstance(attrs, dict) else None


def _attribute(state_text: str | None, field: str) -> Any:
    attrs = _attributes(state_text)
    return _extracted(attrs.get(field)) if attrs is not None else None


def _amount(data: Any) -> Any:
    """A JSON number, None when absent or null, INVALID for anything else (text, true, [5], not JSON)."""
    if data is _BAD:
        return INVALID
    value = data.get("amount") if isinstance(data, dict) else None
    if value is None:
        return None
    return _number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else INVALID


class MetricsReads(Database):
    def stage_entries(self) -> Iterator[StageEntry]:
        """Every stage change, lead by lead, oldest first."""
        yield from map(StageEntry._make, self._stream("SELECT lead, to_stage, at, rules_version FROM stage_history"
                                                      " ORDER BY lead, at, id"))

    def lead_fields(self, field: str) -> dict[str, object]:
        """lead id -> one attribute (or 'owner'), for slicing metrics."""
        if field == "owner":
            return dict(self._exec("SELECT id, owner FROM leads"))
        return {lead: _attribute(state, field) for lead, state in self._stream("SELECT id, state FROM leads")}

    def funnel_rows(self, field: str | None = None) -> Iterator[FunnelRow]:
        """Every stage change, lead by lead, oldest first, with the lead's owner and `field` (an attribute or
        'owner'; None for none): one pass with the leads joined, rather than a dict of every lead in memory."""
        if field is None or field == "owner":
            yield from map(FunnelRow._make, self._stream(
                f"SELECT s.lead, s.to_stage, s.at, s.rules_version, l.owner, {'l.owner' if field else 'NULL'}"
                " FROM stage_history s LEFT JOIN leads l ON l.id = s.lead ORDER BY s.lead, s.at, s.id"))
            return
        last: tuple[str | None, Any] = (None, None)
        for lead, to_stage, at, version, owner, state in self._stream(
                "SELECT s.lead, s.to_stage, s.at, s.rules_version, l.owner, l.state FROM stage_history s"
                " LEFT JOIN leads l ON l.id = s.lead ORDER BY s.lead, s.at, s.id"):
            if last[0] != lead:  # rows come lead by lead: each state is read once
                last = (lead, _attribute(state, field))
            yield FunnelRow(lead, to_stage, at, version, owner, last[1])

    def has_attribute(self, field: str) -> bool:
        """Whether any lead has a value for this attribute (a --by nobody has is a mistake, not a table)."""
        with closing(self._stream("SELECT state FROM leads")) as states:  # closed at the first: its connection too
            return any(field in (_attributes(text) or ()) for (text,) in states)

    def attribute_names(self, limit: int = 500) -> list[str]:
        """Attribute names the leads have, for a did-you-mean (read only when a --by names none of them)."""
        names: set[str] = set()
        for (text,) in self._stream("SELECT state FROM leads"):
            names.update(_attributes(text) or ())
        return sorted(names)[:limit]

    def known_owners(self) -> list[str]:
        """Everyone who owns a lead or was assigned one."""
        return [r[0] for r in self._exec("SELECT owner FROM leads WHERE owner IS NOT NULL UNION"
                                         " SELECT rep FROM assignments WHERE rep IS NOT NULL ORDER BY 1")]

    def event_log(self, leads: Sequence[str] | None = None, chunk: int = 500) -> Iterator[LoggedEvent]:
        """Every stored event, lead by lead in arrival order; with `leads` (in `event_leads` order), only
        theirs, read `chunk` leads a statement (a backtest process reads its share, not everyone's)."""
        if leads is None:
            yield from map(LoggedEvent._make, self._stream("SELECT lead, type, at_text, data FROM events"
                                                           " ORDER BY lead, seq"))
            return
        for i in range(0, len(leads), chunk):
            part = leads[i:i + chunk]
            yield from map(LoggedEvent._make, self._stream(
                f"SELECT lead, type, at_text, data FROM events WHERE lead IN ({', '.join('?' * len(part))})"
                " ORDER BY lead, seq", part))

    def event_leads(self) -> Iterator[tuple[str, int]]:
        """(lead, its number of events) for every lead in the event log, in `event_log`'s order."""
        yield from self._stream("SELECT lead, COUNT(*) FROM events GROUP BY lead ORDER BY lead")

    def won_deals(self) -> list[WonDeal]:
        """Every deal_won event, with its amount as stored."""
        return [WonDeal(lead, at, _amount(_strict(data)))
                for lead, at, data in self._exec("SELECT lead, at, data FROM events WHERE type = 'deal_won'")]

    def campaign_costs(self) -> list[CampaignCost]:
        """Every campaign_cost event, with its campaign and amount as stored."""
        out = []
        for at, text in self._exec("SELECT at, data FROM events WHERE type = 'campaign_cost'"):
            data = _strict(text)
            campaign = data.get("campaign") if isinstance(data, dict) else None
            out.append(CampaignCost(at, campaign if isinstance(campaign, str) else None, _amount(data)))
        return out

    def feedback_rows(self) -> list[dict]:
        return self._rows("SELECT * FROM feedback ORDER BY id")
