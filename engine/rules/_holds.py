"""Plain evaluation of a parsed condition against a lead, for the parts that run outside an engine
call: routing entries, nurture enrolment/exit and `if` branches, evaluated at the scheduler's clock.
The same value semantics as the compiled path (see _conditions.py and the differential test)."""
from __future__ import annotations

from typing import Any

from ._conditions import All, AnyOf, Condition, EventCount, Leaf, Not, canon, lookup, number, text_test
from ._scoring import LeadState


def holds(cond: Condition | None, attrs: dict, state: LeadState | None = None, now: float | None = None,
          history: dict | None = None) -> bool:
    """`history` maps event type -> sorted event times, for `event:` tests at `now`."""
    if cond is None:
        return True
    if isinstance(cond, All):
        return all(holds(c, attrs, state, now, history) for c in cond.items)
    if isinstance(cond, AnyOf):
        return any(holds(c, attrs, state, now, history) for c in cond.items)
    if isinstance(cond, Not):
        return not holds(cond.item, attrs, state, now, history)
    if isinstance(cond, EventCount):
        times = (history or {}).get(cond.type, [])
        n = sum(1 for t in times if now is None or (t <= now and (cond.within is None or now - t <= cond.within)))
        return n >= cond.at_least
    assert isinstance(cond, Leaf)
    if cond.field.startswith("$"):
        return _special(cond, state)
    return leaf_holds(cond, lookup(attrs, cond.field))


def _special(leaf: Leaf, state: LeadState | None) -> bool:
    if state is None:
        return False
    name = leaf.field[1:]
    if name.startswith("bant."):
        return (1 if state.bant.get(name[5:]) else 0) == leaf.arg
    value = {"score": state.score, "fit": state.fit, "engagement": state.engagement, "stage": state.stage,
             "bant": sum(1 for v in state.bant.values() if v)}[name]
    return leaf_holds(leaf, value)


def leaf_holds(leaf: Leaf, value: Any) -> bool:
    if leaf.op == "exists":
        return (value is not None) == leaf.arg
    if value is None:
        return False
    if leaf.op in ("matches", "contains"):
        return text_test(leaf)(value)
    if leaf.op in ("at_least", "at_most", "between"):
        n = number(value)
        if n is None:
            return False
        if leaf.op == "at_least":
            return n >= leaf.arg
        if leaf.op == "at_most":
            return n <= leaf.arg
        return leaf.arg[0] <= n <= leaf.arg[1]
    values = {canon(v) for v in (leaf.arg if leaf.op in ("in", "not_in") else [leaf.arg])}
    return (canon(value) in values) != (leaf.op == "not_in")
