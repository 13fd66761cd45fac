"""Choosing a rep for a new SQL: the first routing entry whose `when` holds for the lead, then weighted
round robin inside its pool, skipping reps who are away, off the clock or at capacity.

Round robin is "smooth": among available reps the one with the fewest assignments per unit of
weight gets the lead, so over time a weight-2 rep gets twice the leads of a weight-1 rep, and the
choice is deterministic given the store (no in-memory pointer to lose on restart).
"""
from __future__ import annotations

from dataclasses import dataclass

from leadflow.core import Hours, LeadflowError, is_working, parse_hours
from leadflow.rules import ConditionParser, RuleSet, holds


@dataclass
class Rep:
    id: str
    name: str = ""
    slack: str | None = None
    email: str | None = None
    weight: float = 1.0
    capacity: int | None = None
    hours: Hours | None = None
    away: bool = False


@dataclass
class Choice:
    rep: Rep | None
    channel: str | None
    why: str


@dataclass
class RoutingTable:
    """The reps, routing, SLA and feedback sections of a rule set, ready to use."""

    reps: dict
    entries: list  # (condition or None, [rep ids], description)
    fallback: str | None
    sla: dict
    reasons: dict  # reason id -> {"label", "then"}
    managers: list

    def rep_by_slack(self, user: str) -> Rep | None:
        return next((r for r in self.reps.values() if r.slack == user), None)


def build_routing(rules: RuleSet) -> RoutingTable:
    problems: list = []
    reps = {}
    for raw in rules.section("reps", []) or []:
        try:
            hours = parse_hours(raw.get("hours"), raw.get("timezone"))
        except ValueError as exc:
            from leadflow.core import Location, Problem

            problems.append(Problem("BAD_HOURS", str(exc), Location(rules.files[0])))
            hours = None
        reps[raw["id"]] = Rep(raw["id"], raw.get("name", raw["id"]), raw.get("slack"), raw.get("email"),
                              float(raw.get("weight", 1)), raw.get("capacity"), hours, bool(raw.get("away", False)))
    if problems:
        raise LeadflowError(problems)
    entries = []
    for entry in rules.section("routing", []) or []:
        cond = None
        if "when" in entry:
            cond = ConditionParser("attributes", [], lambda p, k=False: None).parse(entry["when"], ("routing",))
        entries.append((cond, list(entry.get("pool", [])), entry.get("description", "")))
    fallback = (rules.section("fallback") or {}).get("channel")
    reasons = {r["id"]: {"label": r.get("label", r["id"]), "then": r.get("then")}
               for r in (rules.section("feedback") or {}).get("reject_reasons", [])}
    return RoutingTable(reps, entries, fallback, dict(rules.section("sla") or {}), reasons,
                list(rules.section("managers", []) or []))


def choose(table: RoutingTable, attrs: dict, now: float, open_counts: dict, totals: dict,
           exclude: set = frozenset()) -> Choice:
    for index, (cond, pool, description) in enumerate(table.entries):
        if not holds(cond, attrs):
            continue
        label = description or f"routing entry {index + 1}"
        skipped, candidates = [], []
        for rid in pool:
            rep = table.reps.get(rid)
            if rep is None:
                continue
            if rid in exclude:
                skipped.append(f"{rid} already had it")
            elif rep.away:
                skipped.append(f"{rid} is away")
            elif not is_working(rep.hours, now):
                skipped.append(f"{rid} is outside working hours")
            elif rep.capacity is not None and open_counts.get(rid, 0) >= rep.capacity:
                skipped.append(f"{rid} is at capacity ({rep.capacity})")
            else:
                candidates.append(rep)
        note = f" (skipped: {'; '.join(skipped)})" if skipped else ""
        if not candidates:
            return Choice(None, table.fallback, f"{label}: nobody in [{', '.join(pool)}] is available{note}")
        best = min(candidates, key=lambda r: ((totals.get(r.id, 0) + 1) / r.weight, pool.index(r.id)))
        share = f"{totals.get(best.id, 0)} assigned so far, weight {best.weight:g}"
        return Choice(best, None, f"{label}: weighted round robin picked {best.id} ({share}){note}")
    return Choice(None, table.fallback, "no routing entry matched")
