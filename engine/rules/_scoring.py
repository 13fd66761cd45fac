"""A lead's derived state, and the arithmetic of scores (caps, decay, repeat, max_points).

The state is small and flat on purpose: per scoring rule it keeps running totals (raw points, count,
last time, and a decay accumulator) instead of every contribution, so evaluating the millionth event
of a lead costs the same as the first. The full contribution log lives in the store.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from ._conditions import BANT_NAMES
from ._model import RuleSet, ScoringRule

_REBASE_AT = 300.0  # decay exponents beyond this many half-lives are folded into a new base time
ONCE_EVERY_KEPT = 64  # a once_every rule remembers its latest this many firings (see _fired_at)


class Tally(NamedTuple):
    """One event rule's running totals for one lead.

    Stored in the lead's state as the JSON list [raw, count, last_at, decay_acc], with fired_at as a
    fifth item only for a once_every rule that has counted since that list was added; `to_json` and
    `from_json` keep exactly that form, so states written by earlier versions load unchanged.
    """

    raw: float = 0.0  # points counted, undecayed
    count: int = 0  # events that counted
    last_at: float | None = None  # the latest time an event counted
    decay_acc: float = 0.0  # points scaled to the lead's decay base time (see rule_value)
    fired_at: list | None = None  # once_every rules: when it counted, sorted (see _fired_at)

    def to_json(self) -> list:
        return list(self) if self.fired_at is not None else list(self[:4])

    @classmethod
    def from_json(cls, data: list) -> "Tally":
        return cls(*data)


@dataclass
class TrackEntry:
    """A lead's place in one nurture track. Stored as the JSON list [status, enrolled_at, waiting_for]
    (the form earlier versions wrote), so old states load unchanged."""

    status: str  # active, completed, exited
    enrolled_at: float
    waiting_for: str | None = None  # the event type an active `wait: {until: ...}` step waits for

    def to_json(self) -> list:
        return [self.status, self.enrolled_at, self.waiting_for]

    @classmethod
    def from_json(cls, data: list) -> "TrackEntry":
        return cls(*data)


@dataclass
class LeadState:
    id: str
    stage: str = "new"
    stage_at: float | None = None
    attrs: dict = field(default_factory=dict)
    clock: float | None = None  # the latest event time seen: the lead's "now"
    base: float | None = None  # reference time of the decay accumulators
    fit_rules: dict = field(default_factory=dict)  # attribute rule id -> points while it holds
    tallies: dict = field(default_factory=dict)  # event rule id -> Tally
    counts: dict = field(default_factory=dict)  # tracked event type -> count ever
    times: dict = field(default_factory=dict)  # windowed event type -> recent times (sorted)
    bant: dict = field(default_factory=lambda: {n: False for n in BANT_NAMES})
    fit: float = 0.0
    engagement: float = 0.0
    score: float = 0.0
    disqualified: str | None = None
    owner: str | None = None
    events: int = 0
    rules_version: str = ""
    tracks: dict = field(default_factory=dict)  # nurture track id -> TrackEntry
    decay_due: float | None = None  # when the decay timer in the store fires (saves a write per event)
    text_hits: dict | None = None  # attribute pattern/substring results ("p3": 1) for attrs at rules_version
    # in memory only (never stored): the engine's JSON of the attribute fields, for attrs at rules_version,
    # kept while a batch applies several events of the lead (see runtime/_durable.py)
    _attr_json: str | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        # shallow on purpose: dataclasses.asdict deep-copies and cost a quarter of the ingest time
        data = {name: getattr(self, name) for name in _FIELDS}
        data["tallies"] = {rid: tally.to_json() for rid, tally in self.tallies.items()}
        data["tracks"] = {tid: entry.to_json() for tid, entry in self.tracks.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LeadState":
        tallies = {rid: Tally.from_json(raw) for rid, raw in (data.get("tallies") or {}).items()}
        tracks = {tid: TrackEntry.from_json(raw) for tid, raw in (data.get("tracks") or {}).items()}
        return cls(**{**data, "tallies": tallies, "tracks": tracks})


_FIELDS = tuple(f.name for f in fields(LeadState) if not f.name.startswith("_"))  # what is stored


def merge_attributes(attrs: dict, data: dict) -> dict:
    """lead_updated semantics: keys overwrite, a null value removes the attribute."""
    merged = dict(attrs)
    for key, value in data.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def may_count(rule: ScoringRule, tally: Tally | None, at: float) -> float:
    """Points the event rule adds for an event at `at`, given its tally; 0 means it does not count."""
    raw, count = (tally.raw, tally.count) if tally else (0.0, 0)
    if rule.repeat == "once" and count > 0:
        return 0.0
    if rule.repeat == "once_every" and tally and _fired_near(_fired_at(tally), at, rule.repeat_every):
        return 0.0
    points = rule.points
    if rule.max_points is not None:
        room = rule.max_points - abs(raw)
        if room <= 0:
            return 0.0
        points = math.copysign(min(abs(points), room), points)
    return points


def add_tally(state: LeadState, rule: ScoringRule, points: float, at: float, half_life: float | None) -> None:
    """Count `points` from an event at `at` into the rule's tally (may_count said they count)."""
    if half_life:
        if state.base is None:
            state.base = at
        if (at - state.base) / half_life > _REBASE_AT:
            _rebase(state, at, half_life)
    tally = state.tallies.get(rule.id) or Tally()
    fired_at = tally.fired_at
    if rule.repeat == "once_every":  # read before last_at moves: a first firing is listed once
        fired_at = list(_fired_at(tally))
        bisect.insort(fired_at, at)
        del fired_at[:-ONCE_EVERY_KEPT]
    decay_acc = tally.decay_acc + (points * 2.0 ** ((at - state.base) / half_life) if half_life else 0.0)
    last_at = at if tally.last_at is None else max(tally.last_at, at)
    state.tallies[rule.id] = Tally(tally.raw + points, tally.count + 1, last_at, decay_acc, fired_at)


def _fired_at(tally: Tally) -> list:
    """When a once_every rule counted, sorted. Events may arrive out of order, so "once every D between
    event times" must look at more than the latest firing. Only the latest ONCE_EVERY_KEPT are kept
    (firings are at least D apart, so they cover at least 63 periods before the latest): the state stays
    small and each event costs the same however long the lead's history. The one difference from
    keeping all: an event dated more than 63 periods before the rule's latest counted event may
    count although a forgotten firing lies within D of it. Tallies stored before this list existed
    know only their latest firing."""
    if tally.fired_at is not None:
        return tally.fired_at
    return [tally.last_at] if tally.last_at is not None else []


def _fired_near(times: list, at: float, every: float) -> bool:
    i = bisect.bisect_left(times, at)
    return any(abs(at - times[j]) < every for j in (i - 1, i) if 0 <= j < len(times))


def _rebase(state: LeadState, new_base: float, half_life: float) -> None:
    factor = 2.0 ** ((state.base - new_base) / half_life)
    state.tallies = {rid: tally._replace(decay_acc=tally.decay_acc * factor) for rid, tally in state.tallies.items()}
    state.base = new_base


def rule_value(state: LeadState, rule_id: str, now: float, half_life: float | None) -> float:
    """The current (decayed) value of one event rule's contributions."""
    tally = state.tallies.get(rule_id)
    if not tally:
        return 0.0
    if not half_life or state.base is None:
        return tally.raw
    return tally.decay_acc * 2.0 ** ((state.base - now) / half_life)


def compute_scores(state: LeadState, rules: RuleSet, now: float) -> None:
    """fit, engagement and score at `now`, clamped by the caps and rounded to 2 decimals."""
    caps = rules.caps
    fit = sum(state.fit_rules.values())
    if "fit" in caps:
        fit = min(fit, caps["fit"])
    engagement = sum(rule_value(state, rid, now, rules.half_life) for rid in state.tallies)
    if "engagement" in caps:
        engagement = min(engagement, caps["engagement"])
    state.fit = round(fit, 2)
    state.engagement = round(engagement, 2)
    score = state.fit + state.engagement
    if "total" in caps:
        score = min(score, caps["total"])
    state.score = round(score, 2)


def note_event(state: LeadState, etype: str, at: float, tracked: set, keep: dict) -> None:
    """Update the counters that `event:` tests read."""
    if etype in tracked:
        state.counts[etype] = state.counts.get(etype, 0) + 1
    if etype in keep:
        times = state.times.setdefault(etype, [])
        times.append(at)
        times.sort()
        del times[:-keep[etype]]


def contributions(state: LeadState, rules: RuleSet, now: float | None) -> list[dict[str, Any]]:
    """Current contribution of every rule that has one, largest first (for show/explain/cards)."""
    out = [{"rule": rid, "points": round(p, 2)} for rid, p in state.fit_rules.items() if p]
    if now is not None:
        for rid in state.tallies:
            value = round(rule_value(state, rid, now, rules.half_life), 2)
            if value:
                out.append({"rule": rid, "points": value})
    return sorted(out, key=lambda c: (-abs(c["points"]), c["rule"]))
