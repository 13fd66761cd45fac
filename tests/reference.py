"""A plain-Python evaluator of the rule semantics, used only by tests as an oracle.

It interprets the checked rule model directly (no compilation, no durable_rules, no running tallies:
it keeps every contribution and every event and recomputes from them), so when it and the engine path
disagree, one of them misreads the rule semantics (README, "How a lead is evaluated"; rules/REFERENCE.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import re2

from leadflow.rules import Leaf, RuleSet
from leadflow.rules._conditions import All, AnyOf, EventCount, Not, lookup

PATTERN_TEXT = 4096  # README: `matches` is an RE2 search on the first 4,096 characters of a text value


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _num(a) is not None or _num(b) is not None:
        return _num(a) is not None and _num(b) is not None and a == b
    return type(a) is type(b) and a == b


@dataclass
class RefLead:
    id: str
    stage: str = "new"
    attrs: dict = field(default_factory=dict)
    clock: float | None = None
    events: list = field(default_factory=list)  # (type, at)
    contribs: list = field(default_factory=list)  # (rule id, points, at)
    fit_rules: dict = field(default_factory=dict)
    bant: dict = field(default_factory=dict)
    fit: float = 0.0
    engagement: float = 0.0
    score: float = 0.0
    n: int = 0


class Reference:
    def __init__(self, rules: RuleSet):
        self.rules = rules

    def holds(self, cond, lead: RefLead, data: dict, now: float) -> bool:
        if isinstance(cond, All):
            return all(self.holds(c, lead, data, now) for c in cond.items)
        if isinstance(cond, AnyOf):
            return any(self.holds(c, lead, data, now) for c in cond.items)
        if isinstance(cond, Not):
            return not self.holds(cond.item, lead, data, now)
        if isinstance(cond, EventCount):
            n = sum(1 for t, at in lead.events if t == cond.type and (cond.within is None or now - at <= cond.within))
            return n >= cond.at_least
        assert isinstance(cond, Leaf)
        if cond.field.startswith("$"):
            return self._special(cond, lead)
        return _test(cond.op, cond.arg, lookup(data, cond.field))

    def _special(self, leaf: Leaf, lead: RefLead) -> bool:
        name = leaf.field[1:]
        if name.startswith("bant."):
            return (1 if lead.bant.get(name[5:]) else 0) == leaf.arg
        value = {"score": lead.score, "fit": lead.fit, "engagement": lead.engagement, "stage": lead.stage,
                 "bant": sum(1 for v in lead.bant.values() if v)}[name]
        return _test(leaf.op, leaf.arg, value)

    def apply(self, lead: RefLead, event: dict, at: float) -> dict:
        rules = self.rules
        now = at if lead.clock is None else max(at, lead.clock)
        lead.clock = now
        changed = lead.n == 0
        lead.n += 1
        etype = event["type"]
        if etype == "lead_updated":
            merged = dict(lead.attrs)
            for k, v in (event.get("data") or {}).items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            changed = changed or merged != lead.attrs
            lead.attrs = merged
        else:
            lead.events.append((etype, at))
        fired, dq = [], None
        if changed:
            lead.fit_rules = {}
            for r in rules.rules:
                if r.when is not None and self.holds(r.when, lead, lead.attrs, now):
                    fired.append(r.id)
                    if r.disqualify:
                        dq = dq or r.disqualify
                    else:
                        lead.fit_rules[r.id] = r.points
        if etype != "lead_updated":
            for r in rules.rules:
                if r.on != etype or (r.where is not None and not self.holds(r.where, lead, event.get("data") or {}, now)):
                    continue
                if r.disqualify:
                    fired.append(r.id)
                    dq = dq or r.disqualify
                    continue
                mine = [c for c in lead.contribs if c[0] == r.id]
                if r.repeat == "once" and mine:
                    continue
                # the engine remembers a once_every rule's latest 64 firings (by event time), not all
                if r.repeat == "once_every" and any(abs(at - t) < r.repeat_every
                                                    for t in sorted(c[2] for c in mine)[-64:]):
                    continue
                points = r.points
                if r.max_points is not None:
                    room = r.max_points - abs(sum(c[1] for c in mine))
                    if room <= 0:
                        continue
                    points = math.copysign(min(abs(points), room), points)
                if points:
                    lead.contribs.append((r.id, points, at))
                    fired.append(r.id)
        lead.bant = {name: self.holds(cond, lead, lead.attrs, now) for name, cond in rules.bant.items()}
        for name in ("budget", "authority", "need", "timeline"):
            lead.bant.setdefault(name, False)
        fired += [f"bant.{n}" for n, v in lead.bant.items() if v and n in rules.bant]
        fit = sum(lead.fit_rules.values())
        if "fit" in rules.caps:
            fit = min(fit, rules.caps["fit"])
        eng = 0.0
        for _, p, t in lead.contribs:
            eng += p * (0.5 ** ((now - t) / rules.half_life) if rules.half_life else 1.0)
        if "engagement" in rules.caps:
            eng = min(eng, rules.caps["engagement"])
        lead.fit, lead.engagement = round(fit, 2), round(eng, 2)
        score = lead.fit + lead.engagement
        if "total" in rules.caps:
            score = min(score, rules.caps["total"])
        lead.score = round(score, 2)
        moves = []

        def move(to):
            moves.append((lead.stage, to))
            lead.stage = to

        if dq and lead.stage not in ("disqualified", "won", "lost"):
            move("disqualified")
        feedback = {"sql_accepted": (("sql",), "accepted"), "sql_rejected": (("sql",), "rejected"),
                    "deal_won": (("new", "mql", "sql", "accepted", "rejected", "recycled"), "won"),
                    "deal_lost": (("new", "mql", "sql", "accepted", "rejected", "recycled"), "lost"),
                    "lead_disqualified": (("new", "mql", "sql", "accepted", "rejected", "recycled"), "disqualified"),
                    "lead_recycled": (("rejected",), "recycled"), "lead_reopened": (("recycled",), "new")}
        reopened = etype == "lead_reopened" and lead.stage == "recycled"
        if etype in feedback and lead.stage in feedback[etype][0]:
            move(feedback[etype][1])
        if reopened or not (etype in feedback and moves):
            for _ in range(8):
                if lead.stage == "mql" and rules.sql is not None and self.holds(rules.sql, lead, lead.attrs, now):
                    move("sql")
                    break
                if lead.stage == "new" and rules.mql is not None and self.holds(rules.mql, lead, lead.attrs, now):
                    move("mql")
                    continue
                if lead.stage == "mql" and rules.demote_below is not None and lead.score < rules.demote_below:
                    move("new")
                break
        return {"stage": lead.stage, "score": lead.score, "fit": lead.fit, "engagement": lead.engagement,
                "bant": dict(lead.bant), "fired": sorted(fired), "moves": moves}


def _test(op: str, arg, v) -> bool:
    if op == "exists":
        return (v is not None) == arg
    if v is None:
        return False
    if op == "equals":
        return _same(v, arg)
    if op == "in":
        return any(_same(v, a) for a in arg)
    if op == "not_in":
        return not any(_same(v, a) for a in arg)
    if op in ("at_least", "at_most", "between"):
        n = _num(v)
        if n is None:
            return False
        if op == "at_least":
            return n >= arg
        if op == "at_most":
            return n <= arg
        return arg[0] <= n <= arg[1]
    if op == "contains":
        return isinstance(v, str) and str(arg).casefold() in v.casefold()
    if op == "matches":
        return isinstance(v, str) and re2.search(arg, v[:PATTERN_TEXT]) is not None
    raise AssertionError(op)
