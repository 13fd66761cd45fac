"""Rules -> durable_rules ruleset definitions, plus the recipe for the facts the rules read.

Nothing here imports durable_rules: the output is plain data (rule name -> `{"all": [...], "pri": n}`)
and a `FactShape` that turns a lead's attributes, the current event and the derived scores into the
flat fields the conditions were compiled against. Pattern and substring tests become 0/1 fields
computed in Python, because the engine's regex dialect is not Python's, and so are long `in`/`not_in`
lists, which the engine loads too slowly; numbers, equality, short membership lists and presence are
tested by the engine itself.

Forward chaining, in one engine call per event:
  input fact ("k": "i")  -> scoring rules (s:*) and BANT rules (b:*) fire, then `collect` (last)
  collect                -> posts a gate event ("k": "g") carrying stage, scores and BANT count
  gate event             -> at most one transition rule (g:*) fires; a promotion posts the next gate
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from leadflow.core import Location, Problem

from ._conditions import All, AnyOf, Condition, EventCount, Leaf, Not, canon, lookup, number, text_test, walk
from ._model import RuleSet

PRI_FIRST, PRI_RULE, PRI_LAST = 1, 10, 900

# Transitions driven by feedback and outcome events, ahead of the score-based gates.
FEEDBACK_TRANSITIONS = (
    ("accept", "sql_accepted", ("sql",), "accepted"),
    ("reject", "sql_rejected", ("sql",), "rejected"),
    ("won", "deal_won", ("new", "mql", "sql", "accepted", "rejected", "recycled"), "won"),
    ("lost", "deal_lost", ("new", "mql", "sql", "accepted", "rejected", "recycled"), "lost"),
    ("disqualify", "lead_disqualified", ("new", "mql", "sql", "accepted", "rejected", "recycled"), "disqualified"),
    ("recycle", "lead_recycled", ("rejected",), "recycled"),
    ("reopen", "lead_reopened", ("recycled",), "new"),  # a recycled lead met its track's goal: gates run again
)


@dataclass
class Role:
    kind: str  # score | bant | collect | gate | gate_end
    name: str = ""
    to: str = ""  # for gates: the stage reached
    chain: bool = False  # for gates: re-check the gates after this transition
    rule: Any = None  # for score: the ScoringRule
    cond: Any = None  # for gates and BANT: the condition, for explanations


@dataclass
class FactShape:
    """How to build the flat fields the compiled conditions read."""

    attr_fields: dict = field(default_factory=dict)  # attribute path -> index
    data_fields: dict = field(default_factory=dict)  # event data path -> index
    text_tests: list = field(default_factory=list)  # (namespace, path, predicate) by index
    event_windows: dict = field(default_factory=dict)  # (type, within) -> index
    keep_times: dict = field(default_factory=dict)  # type -> how many recent times to keep

    pattern_runs: int = 0  # attribute text tests run so far (tests check that unchanged attributes cost none)

    def attribute_fields(self, attrs: dict) -> dict:
        return {**self.attribute_values(attrs), **self.attribute_tests(attrs)}

    def attribute_values(self, attrs: dict) -> dict:
        out: dict = {}
        for path, i in self.attr_fields.items():
            _put(out, "a", i, lookup(attrs, path))
        return out

    def attribute_tests(self, attrs: dict) -> dict:
        """The 0/1 fields of the pattern and substring tests on attributes. They depend on the attributes
        alone, so the runtime keeps them in the lead state and calls this only when attributes change."""
        out: dict = {}
        for i, (ns, path, test) in enumerate(self.text_tests):
            if ns == "a":
                self.pattern_runs += 1
                out[f"p{i}"] = 1 if test(lookup(attrs, path)) else 0
        return out

    def data_fields_of(self, data: dict) -> dict:
        out: dict = {}
        for path, i in self.data_fields.items():
            _put(out, "d", i, lookup(data, path))
        for i, (ns, path, test) in enumerate(self.text_tests):
            if ns == "d":
                out[f"p{i}"] = 1 if test(lookup(data, path)) else 0
        return out

    def event_fields(self, counts: dict, times: dict, now: float) -> dict:
        out = {}
        for (etype, within), i in self.event_windows.items():
            if within is None:
                out[f"e{i}"] = counts.get(etype, 0)
            else:
                out[f"e{i}"] = sum(1 for t in times.get(etype, ()) if now - t <= within)
        return out


def _put(out: dict, ns: str, i: int, value: Any) -> None:
    c = canon(value)
    if c is not None:
        out[f"{ns}s{i}"] = c
    n = number(value)
    if n is not None:
        out[f"{ns}n{i}"] = n


@dataclass
class Compiled:
    rules: RuleSet
    definition: dict  # durable_rules ruleset definition without actions
    roles: dict  # rule name -> Role
    shape: FactShape

    @property
    def name(self) -> str:
        return f"leadflow_{self.rules.version}"

    @functools.cached_property
    def tracked(self) -> frozenset:
        """Event types some `event:` test counts (their counters live in the lead state)."""
        return frozenset(etype for etype, _ in self.shape.event_windows)


class _Compiler:
    def __init__(self, shape: FactShape):
        self.shape = shape
        self.pattern_index: dict = {}
        self.engine_values = 0  # values of `in`/`not_in` lists the engine tests, over the whole rule set

    def channel(self, ns: str, path: str) -> int:
        table = self.shape.attr_fields if ns == "a" else self.shape.data_fields
        return table.setdefault(path, len(table))

    def expr(self, cond: Condition, ns: str, negate: bool = False) -> dict:
        if isinstance(cond, All) or isinstance(cond, AnyOf):
            parts = [self.expr(c, ns, negate) for c in cond.items]
            conj = isinstance(cond, All) != negate
            return parts[0] if len(parts) == 1 else {"$and" if conj else "$or": parts}
        if isinstance(cond, Not):
            return self.expr(cond.item, ns, not negate)
        if isinstance(cond, EventCount):
            key = (cond.type, cond.within)
            i = self.shape.event_windows.setdefault(key, len(self.shape.event_windows))
            if cond.within is not None:
                keep = self.shape.keep_times
                keep[cond.type] = max(keep.get(cond.type, 0), cond.at_least)
            return {"$lt" if negate else "$gte": {f"e{i}": cond.at_least}}
        return self.leaf(cond, ns, negate)

    def leaf(self, leaf: Leaf, ns: str, negate: bool) -> dict:
        op, arg = leaf.op, leaf.arg
        if leaf.field.startswith("$"):
            return self.special(leaf, negate)
        if op in ("matches", "contains"):
            key = (ns, leaf.field, op, arg)
            if key not in self.pattern_index:
                self.pattern_index[key] = len(self.shape.text_tests)
                self.shape.text_tests.append((ns, leaf.field, text_test(leaf)))
            return {f"p{self.pattern_index[key]}": 0 if negate else 1}
        if op in ("in", "not_in", "equals"):
            values = arg if op != "equals" else [arg]
            if len(values) > MAX_ENGINE_VALUES or self.engine_values + len(values) > MAX_RULESET_VALUES:
                return self.membership(leaf.field, values, op != "not_in", ns, negate)
            self.engine_values += len(values)
        i = self.channel(ns, leaf.field)
        s, n = f"{ns}s{i}", f"{ns}n{i}"
        if op == "exists":
            present = arg != negate
            return {"$ex" if present else "$nex": {s: 1}}
        if op in ("at_least", "at_most", "between"):
            pos = _numeric(n, op, arg)
            if not negate:
                return pos
            return {"$or": [{"$nex": {n: 1}}, _numeric(n, op, arg, negate=True)]}
        values = [canon(v) for v in (arg if op in ("in", "not_in") else [arg])]
        one_of = values_expr(s, values)
        none_of = [{"$neq": {s: v}} for v in values]  # $neq is false on a missing field
        none_of_expr = none_of[0] if len(none_of) == 1 else {"$and": none_of}
        if op == "not_in":
            return {"$or": [{"$nex": {s: 1}}, one_of]} if negate else none_of_expr
        return {"$or": [{"$nex": {s: 1}}, none_of_expr]} if negate else one_of

    def membership(self, path: str, arg: list, inside: bool, ns: str, negate: bool) -> dict:
        """A long `in`/`not_in` list as a 0/1 field computed in Python: the engine's C code takes time
        growing fast with the alternatives of one rule at load (512 values hung it). Same equality as
        the engine's (type and value: 300 == 300.0, not "300" or true); `not_in` is false on a missing
        field, like its engine form, and negation is the exact complement."""
        values = frozenset(canon(v) for v in arg)
        key = (ns, path, inside, values)
        if key not in self.pattern_index:
            self.pattern_index[key] = len(self.shape.text_tests)
            self.shape.text_tests.append((ns, path, lambda v: _member(canon(v), values, inside)))
        return {f"p{self.pattern_index[key]}": 0 if negate else 1}

    def special(self, leaf: Leaf, negate: bool) -> dict:
        name = {"$score": "score", "$fit": "fit", "$engagement": "engagement", "$bant": "bantc",
                "$stage": "stage"}.get(leaf.field) or "bb_" + leaf.field.split(".", 1)[1]
        if leaf.field == "$stage":
            values = leaf.arg if leaf.op in ("in", "not_in") else [leaf.arg]
            inside = leaf.op != "not_in"
            if inside != negate:
                return {"$or": [{name: v} for v in values]} if len(values) > 1 else {name: values[0]}
            parts = [{"$neq": {name: v}} for v in values]
            return parts[0] if len(parts) == 1 else {"$and": parts}
        if leaf.op in ("at_least", "at_most", "between"):
            return _numeric(name, leaf.op, leaf.arg, negate)
        if leaf.op in ("equals", "in", "not_in"):
            values = leaf.arg if leaf.op != "equals" else [leaf.arg]
            inside = leaf.op != "not_in"
            if inside != negate:
                return {"$or": [{name: v} for v in values]} if len(values) > 1 else {name: values[0]}
            parts = [{"$neq": {name: v}} for v in values]
            return parts[0] if len(parts) == 1 else {"$and": parts}
        raise ValueError(f"unsupported test {leaf.op} on {leaf.field}")


# durable_rules keeps the and/or operations of one rule in a fixed table (32 slots, two per operation)
# and refuses the whole ruleset beyond it (error 113 at load). Every compiled rule wraps its condition
# in one `$and`, so a condition may compile to 14 operations of its own. Measured: 300 random
# conditions loaded exactly when the rule had at most 15 operations.
MAX_OPERATIONS = 14
# `in`/`not_in` lists longer than this are tested in Python (see `_Compiler.membership`).
MAX_ENGINE_VALUES = 8
# ... and so are all lists once the rule set's engine-tested values reach this (100 rules of 8 hung too).
MAX_RULESET_VALUES = 256


def operations(cond: Condition, ns: str = "a") -> int:
    """How many and/or operations a condition compiles to (the engine's limit is per rule)."""
    def count(node: Any) -> int:
        if isinstance(node, dict):
            return sum(count(v) + (k in ("$and", "$or")) for k, v in node.items())
        if isinstance(node, list):
            return sum(count(v) for v in node)
        return 0

    return count(_Compiler(FactShape()).expr(cond, ns))


MAX_FIELDS = 200  # durable_rules fails beyond ~250 properties per message; keep a margin

# durable_rules fails an event (error 303) when more than 64 of its tests (alpha nodes) match one message;
# the tests of one `any:` can all match at once, so a condition may hold at most this many tests.
MAX_TESTS = 48


def engine_tests(cond: Condition, ns: str = "a") -> int:
    """How many field tests (the engine's alpha nodes) a condition compiles to."""
    def count(node: Any) -> int:
        if isinstance(node, dict):
            return sum(count(v) if k in ("$and", "$or") or isinstance(v, dict) else 1 for k, v in node.items())
        if isinstance(node, list):
            return sum(count(v) for v in node)
        return 0

    return count(_Compiler(FactShape()).expr(cond, ns))


def fields_needed(rules: RuleSet) -> int:
    """How many fields an input fact carries at most for these rules: text and number form per field
    tested, one 0/1 field per pattern, substring or long list test, one counter per event test."""
    comp = _Compiler(FactShape())  # conditions in compile_rules' order: the same lists go to Python
    conds = ([(r.when, "a") if r.when is not None else (r.where, "d") for r in rules.rules]
             + [(c, "a") for c in list(rules.bant.values()) + [rules.sql, rules.mql]])
    for cond, ns in conds:
        if cond is not None:
            comp.expr(cond, ns)
    shape = comp.shape
    return 2 * (len(shape.attr_fields) + len(shape.data_fields)) + len(shape.text_tests) + len(shape.event_windows)


def field_budget(rules: RuleSet) -> list[Problem]:
    """TOO_MANY_FIELDS when the rules need more fields on an event than the engine handles."""
    needed = fields_needed(rules)  # what the compiled fact really carries
    if needed <= MAX_FIELDS:
        return []
    return [Problem("TOO_MANY_FIELDS", f"the rules need {needed} fields on each event (two per field tested, one "
                    f"per pattern, substring, long list or event test); the engine handles at most {MAX_FIELDS}",
                    Location(rules.files[0], 1, 1),
                    "test fewer distinct fields, or merge patterns on one field into one")]


def _member(value: str | None, values: frozenset, inside: bool) -> bool:
    return value is not None and (value in values) == inside


def values_expr(name: str, values: list) -> dict:
    return {name: values[0]} if len(values) == 1 else {"$or": [{name: v} for v in values]}


def _numeric(name: str, op: str, arg: Any, negate: bool = False) -> dict:
    if op == "at_least":
        return {"$lt" if negate else "$gte": {name: arg}}
    if op == "at_most":
        return {"$gt" if negate else "$lte": {name: arg}}
    low, high = arg
    if negate:
        return {"$or": [{"$lt": {name: low}}, {"$gt": {name: high}}]}
    return {"$and": [{"$gte": {name: low}}, {"$lte": {name: high}}]}


def _rule(kind_value: str, *conds: dict | None, pri: int) -> dict:
    parts = [{"k": kind_value}] + [c for c in conds if c]
    return {"all": [{"m": parts[0] if len(parts) == 1 else {"$and": parts}}], "pri": pri}


def compile_rules(rules: RuleSet) -> Compiled:
    """Compile a checked rule set; the ruleset name carries the rule version."""
    shape = FactShape()
    comp = _Compiler(shape)
    definition: dict = {}
    roles: dict = {}
    for r in rules.rules:
        name = f"s:{r.id}"
        if r.when is not None:
            definition[name] = _rule("i", {"u": 1}, comp.expr(r.when, "a"), pri=PRI_RULE)
        else:
            where = comp.expr(r.where, "d") if r.where is not None else None
            definition[name] = _rule("i", {"t": r.on}, where, pri=PRI_RULE)
        roles[name] = Role("score", r.id, rule=r)
    for bname, cond in rules.bant.items():
        definition[f"b:{bname}"] = _rule("i", comp.expr(cond, "a"), pri=PRI_RULE)
        roles[f"b:{bname}"] = Role("bant", bname, cond=cond)
    definition["collect"] = _rule("i", pri=PRI_LAST)
    roles["collect"] = Role("collect")
    for i, (name, etype, sources, to) in enumerate(FEEDBACK_TRANSITIONS):
        stage = {"stage": sources[0]} if len(sources) == 1 else {"$or": [{"stage": s} for s in sources]}
        definition[f"g:{name}"] = _rule("g", {"t": etype}, stage, pri=PRI_FIRST + i)
        roles[f"g:{name}"] = Role("gate", name, to=to, chain=name == "reopen")
    if rules.sql is not None:
        definition["g:sql"] = _rule("g", {"stage": "mql"}, comp.expr(rules.sql, "a"), pri=PRI_RULE)
        roles["g:sql"] = Role("gate", "sql", to="sql", cond=rules.sql)
    if rules.mql is not None:
        definition["g:mql"] = _rule("g", {"stage": "new"}, comp.expr(rules.mql, "a"), pri=PRI_RULE + 1)
        roles["g:mql"] = Role("gate", "mql", to="mql", chain=True, cond=rules.mql)
    if rules.demote_below is not None:
        definition["g:demote"] = _rule("g", {"stage": "mql"}, {"$lt": {"score": rules.demote_below}},
                                       pri=PRI_RULE + 2)
        roles["g:demote"] = Role("gate", "demote", to="new")
    definition["gate_end"] = _rule("g", pri=PRI_LAST)
    roles["gate_end"] = Role("gate_end")
    return Compiled(rules, definition, roles, shape)


def describe(cond: Condition | None) -> str:
    """A condition as a short readable phrase, for explanations ("score >= 50 and bant >= 3")."""
    if cond is None:
        return "always"
    if isinstance(cond, All):
        return " and ".join(_wrap(describe(c)) for c in cond.items)
    if isinstance(cond, AnyOf):
        return " or ".join(_wrap(describe(c)) for c in cond.items)
    if isinstance(cond, Not):
        return f"not {_wrap(describe(cond.item))}"
    if isinstance(cond, EventCount):
        times = f"{cond.at_least}x " if cond.at_least > 1 else ""
        from leadflow.core import format_duration

        window = f" within {format_duration(cond.within)}" if cond.within else ""
        return f"{times}{cond.type}{window}"
    name = cond.field.lstrip("$")
    symbols = {"at_least": ">=", "at_most": "<=", "equals": "=", "in": "in", "not_in": "not in",
               "matches": "matches", "contains": "contains"}
    if cond.op == "between":
        return f"{name} between {cond.arg[0]} and {cond.arg[1]}"
    if cond.op == "exists":
        return f"{name} {'is set' if cond.arg else 'is missing'}"
    if name.startswith("bant."):
        return f"{name.split('.', 1)[1]} {'holds' if cond.arg else 'does not hold'}"
    arg = ", ".join(map(str, cond.arg)) if isinstance(cond.arg, list) else cond.arg
    return f"{name} {symbols[cond.op]} {arg}"


def _wrap(text: str) -> str:
    return f"({text})" if " and " in text or " or " in text else text


__all__ = ["Compiled", "FactShape", "Role", "compile_rules", "describe", "engine_tests", "fields_needed", "walk"]
