"""The reads PostgreSQL cannot share with SQLite: JSON taken apart the way SQLite's functions do.

The lead state and event data are JSON text in both databases. SQLite's json_valid/json_extract
read them in SQL (_metrics.py); PostgreSQL's JSON functions differ in what they refuse and return,
so here the same answers are computed in Python from the same text: an unreadable value is NULL or
INVALID, `true` is 1, an object is its JSON text, as `leadflow stats` gets them from SQLite.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from ._metrics import INVALID, CampaignCost, FunnelRow, MetricsReads, WonDeal

_BAD = object()


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _strict(text: str | None) -> Any:
    """The JSON value of `text`, or _BAD when SQLite's json_valid would refuse it."""
    if text is None:
        return _BAD
    try:
        return json.loads(text, parse_constant=_refuse)
    except (ValueError, TypeError, RecursionError):
        return _BAD


def _extracted(value: Any) -> Any:
    """What json_extract gives for a value: a number, text, NULL, 1/0 for booleans, JSON text for the rest."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _attribute(state_text: str | None, field: str) -> Any:
    state = _strict(state_text)
    attrs = state.get("attrs") if isinstance(state, dict) else None
    return _extracted(attrs.get(field)) if isinstance(attrs, dict) else None


def _amount(data: Any) -> Any:
    if data is _BAD:
        return INVALID
    value = data.get("amount") if isinstance(data, dict) else None
    if value is None:
        return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else INVALID


class PostgresReads(MetricsReads):
    def lead_fields(self, field: str) -> dict[str, object]:
        if field == "owner":
            return super().lead_fields(field)
        return {lead: _attribute(state, field) for lead, state in self._stream("SELECT id, state FROM leads")}

    def funnel_rows(self, field: str | None = None) -> Iterator[FunnelRow]:
        if field is None or field == "owner":
            yield from super().funnel_rows(field)
            return
        last: tuple[str | None, Any] = (None, None)
        for lead, to_stage, at, version, owner, state in self._stream(
                "SELECT s.lead, s.to_stage, s.at, s.rules_version, l.owner, l.state FROM stage_history s"
                " LEFT JOIN leads l ON l.id = s.lead ORDER BY s.lead, s.at, s.id"):
            if last[0] != lead:  # rows come lead by lead: each state is read once
                last = (lead, _attribute(state, field))
            yield FunnelRow(lead, to_stage, at, version, owner, last[1])

    def has_attribute(self, field: str) -> bool:
        for (text,) in self._stream("SELECT state FROM leads"):
            state = _strict(text)
            attrs = state.get("attrs") if isinstance(state, dict) else None
            if isinstance(attrs, dict) and field in attrs:
                return True
        return False

    def attribute_names(self, limit: int = 500) -> list[str]:
        names: set[str] = set()
        for (text,) in self._stream("SELECT state FROM leads"):
            state = _strict(text)
            attrs = state.get("attrs") if isinstance(state, dict) else None
            if isinstance(attrs, dict):
                names.update(attrs)
        return sorted(names)[:limit]

    def won_deals(self) -> list[WonDeal]:
        return [WonDeal(lead, at, _amount(_strict(data)))
                for lead, at, data in self._exec("SELECT lead, at, data FROM events WHERE type = 'deal_won'")]

    def campaign_costs(self) -> list[CampaignCost]:
        out = []
        for at, text in self._exec("SELECT at, data FROM events WHERE type = 'campaign_cost'"):
            data = _strict(text)
            campaign = data.get("campaign") if isinstance(data, dict) else None
            out.append(CampaignCost(at, campaign if isinstance(campaign, str) else None, _amount(data)))
        return out

    def set_timers_on_share(self, kind: str, due_at: float, every: int) -> int:
        if every < 1:
            raise ValueError(f"every must be 1 or more, not {every}")
        self.clear_timers()
        return self._exec("INSERT INTO timers (lead, kind, due_at) SELECT id, ?, ? FROM (SELECT id, row_number()"
                          " OVER (ORDER BY created_at, id) AS n FROM leads) AS s WHERE n % ? = 0",
                          (kind, due_at, every)).rowcount
