"""Conditions: parsing into a small tree, and the value semantics shared by every path.

A condition is parsed once into `Leaf`/`All`/`AnyOf`/`Not`/`EventCount` nodes. The compiler turns the
tree into durable_rules expressions; pattern and substring tests are evaluated here in Python (the
engine's own regex dialect is not Python's) and handed to the engine as 0/1 fields.

Patterns and substring tests live in `_patterns.py`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from leadflow.core import Problem, did_you_mean, parse_duration

from ._patterns import (  # noqa: F401 - the names other modules import from here
    MAX_PATTERN_LENGTH,
    MAX_PROGRAM_SIZE,
    PATTERN_TEXT_LIMIT,
    pattern_problem,
    text_predicate,
)

OPERATORS = ("matches", "in", "not_in", "between", "contains", "at_least", "at_most", "exists", "equals")
BANT_NAMES = ("budget", "authority", "need", "timeline")
STAGES = ("new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost", "disqualified")
NUMERIC_SPECIALS = ("score", "fit", "engagement")

# Which special fields a condition may use, by where it appears.
SCOPES = {
    "attributes": frozenset(),
    "event": frozenset(),
    "bant": frozenset({"event"}),
    "stage": frozenset({"event", "score", "fit", "engagement", "bant", "stage"}),
}


@dataclass(frozen=True)
class Leaf:
    field: str  # attribute path, or "$score", "$fit", "$engagement", "$bant", "$bant.budget", "$stage"
    op: str
    arg: Any
    path: tuple  # where it sits in the rule file


@dataclass(frozen=True)
class All:
    items: tuple


@dataclass(frozen=True)
class AnyOf:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class EventCount:
    type: str
    within: float | None  # seconds, None = ever
    at_least: int
    path: tuple


Condition = Leaf | All | AnyOf | Not | EventCount


# ---- value semantics -------------------------------------------------------------------------

def lookup(data: dict, field: str) -> Any:
    """A literal key wins; otherwise a dotted path walks nested mappings. Missing gives None."""
    if field in data:
        return data[field]
    if "." in field:
        node: Any = data
        for part in field.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
    return None


def number(value: Any) -> float | int | None:
    """The value as a number for at_least/at_most/between, or None (strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def canon(value: Any) -> str | None:
    """A type-tagged string for equality: 300 == 300.0, but "300" != 300 and "true" != true."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"n:{value}"
    if isinstance(value, str):
        return f"s:{value}"
    return "j:" + json.dumps(value, sort_keys=True, default=str)


def text_test(leaf: Leaf) -> Callable[[Any], bool]:
    """The Python predicate of a `matches` or `contains` leaf (see `_patterns.py`)."""
    return text_predicate(leaf.op, leaf.arg)


# ---- parsing ---------------------------------------------------------------------------------

class ConditionParser:
    """Parses condition mappings, collecting problems with their rule-file paths."""

    def __init__(self, scope: str, problems: list, where: Callable[[tuple, bool], Any],
                 bant_names: Iterable[str] = BANT_NAMES):
        self.scope = scope
        self.allowed = SCOPES[scope]
        self.problems = problems
        self.where = where
        self.bant_names = tuple(bant_names)
        self.events: list[EventCount] = []

    def problem(self, code: str, message: str, path: tuple, hint: str = "", key: bool = False) -> None:
        self.problems.append(Problem(code, message, self.where(path, key), hint))

    def parse(self, data: Any, path: tuple) -> Condition | None:
        if not isinstance(data, dict) or not data:
            self.problem("CONDITION_TYPE", "a condition must be a non-empty mapping of fields to tests", path,
                         "for example: { country: { in: [US, CA] } }")
            return None
        items = [self._entry(key, value, path + (key,)) for key, value in data.items()]
        items = [i for i in items if i is not None]
        if len(items) != len(data):
            return None
        return items[0] if len(items) == 1 else All(tuple(items))

    def _entry(self, key: str, value: Any, path: tuple) -> Condition | None:
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.problem("CONDITION_TYPE", f"'{key}' takes a non-empty list of conditions", path)
                return None
            parts = [self.parse(v, path + (i,)) for i, v in enumerate(value)]
            if any(p is None for p in parts):
                return None
            return All(tuple(parts)) if key == "all" else AnyOf(tuple(parts))
        if key == "not":
            inner = self.parse(value, path)
            return Not(inner) if inner is not None else None
        if key == "event" and "event" in self.allowed:
            return self._event(value, path)
        if key == "bant" and "bant" in self.allowed:
            return self._bant(value, path)
        if key in NUMERIC_SPECIALS or key in ("stage", "bant", "event"):
            if key not in self.allowed:
                self.problem("FIELD_NOT_ALLOWED", f"'{key}' cannot be used in {self._scope_name()}", path,
                             self._scope_hint(), key=True)
                return None
            field = "$" + key
        else:
            field = key
        return self._tests(field, value, path)

    def _scope_name(self) -> str:
        return {"attributes": "a condition on lead attributes", "event": "an event's `where`",
                "bant": "a BANT criterion", "stage": "a stage gate"}[self.scope]

    def _scope_hint(self) -> str:
        if self.scope == "stage":
            return ""
        return "score, fit, engagement, bant and stage are only available in stage gates (stages:)"

    def _tests(self, field: str, value: Any, path: tuple) -> Condition | None:
        if not isinstance(value, dict):
            if isinstance(value, list):
                self.problem("WRONG_TYPE", f"a list cannot be compared with '{field.lstrip('$')}'", path,
                             "to test membership write { in: [...] }")
                return None
            if value is None:
                self.problem("WRONG_TYPE", f"'{field.lstrip('$')}' has no value to compare with", path,
                             "to test that a field is missing write { exists: false }")
                return None
            return self._leaf(field, "equals", value, path)
        if not value:
            self.problem("CONDITION_TYPE", "an empty mapping tests nothing", path)
            return None
        leaves = [self._leaf(field, op, arg, path + (op,)) for op, arg in value.items()]
        if any(leaf is None for leaf in leaves):
            return None
        return leaves[0] if len(leaves) == 1 else All(tuple(leaves))

    def _leaf(self, field: str, op: str, arg: Any, path: tuple) -> Leaf | None:
        numeric_field = field in ("$score", "$fit", "$engagement", "$bant")
        if op not in OPERATORS:
            self.problem("UNKNOWN_OPERATOR", f"unknown test '{op}'", path, did_you_mean(op, OPERATORS)
                         or f"tests are: {', '.join(OPERATORS)}", key=True)
            return None
        if op in ("at_least", "at_most"):
            if number(arg) is None:
                return self._bad(path, f"'{op}' takes a number, not {_show(arg)}")
        elif op == "between":
            if not (isinstance(arg, list) and len(arg) == 2 and all(number(a) is not None for a in arg)):
                return self._bad(path, f"'between' takes a list of two numbers [low, high], not {_show(arg)}")
            if arg[0] > arg[1]:
                return self._bad(path, f"'between' needs low <= high, got [{arg[0]}, {arg[1]}]")
        elif op in ("in", "not_in"):
            if not isinstance(arg, list) or not arg or any(isinstance(a, (list, dict)) or a is None for a in arg):
                return self._bad(path, f"'{op}' takes a non-empty list of plain values, not {_show(arg)}")
        elif op == "exists":
            if not isinstance(arg, bool):
                return self._bad(path, f"'exists' takes true or false, not {_show(arg)}")
        elif op == "matches":
            if not isinstance(arg, str):
                return self._bad(path, f"'matches' takes a regular expression string, not {_show(arg)}")
            refused = pattern_problem(arg)
            if refused is not None:
                code, message, hint = refused
                self.problem(code, message, path, hint)
                return None
        elif op == "contains":
            if not isinstance(arg, str) or not arg:
                return self._bad(path, f"'contains' takes a non-empty string, not {_show(arg)}")
        elif op == "equals" and isinstance(arg, (list, dict)):
            return self._bad(path, f"'equals' takes a plain value, not {_show(arg)}")
        if numeric_field and op in ("matches", "contains", "exists"):
            return self._bad(path, f"'{field[1:]}' is a number; '{op}' does not apply to it")
        if field == "$stage":
            for i, s in enumerate(arg if isinstance(arg, list) else [arg]):
                if s not in STAGES:
                    self.problem("UNKNOWN_STAGE", f"unknown stage '{s}'", path + ((i,) if isinstance(arg, list) else ()),
                                 did_you_mean(s, STAGES) or f"stages are: {', '.join(STAGES)}")
                    return None
        return Leaf(field, op, arg, path)

    def _bad(self, path: tuple, message: str) -> None:
        self.problem("WRONG_TYPE", message, path)
        return None

    def _bant(self, value: Any, path: tuple) -> Condition | None:
        if not isinstance(value, dict) or not value:
            self.problem("WRONG_TYPE", "'bant' takes a mapping such as { at_least: 3 } or { budget: true }", path)
            return None
        parts: list = []
        for key, arg in value.items():
            kpath = path + (key,)
            if key in ("at_least", "at_most", "between", "equals"):
                parts.append(self._leaf("$bant", key, arg, kpath))
            elif key in self.bant_names:
                if not isinstance(arg, bool):
                    parts.append(self._bad(kpath, f"'{key}' takes true or false, not {_show(arg)}"))
                else:
                    parts.append(Leaf(f"$bant.{key}", "equals", 1 if arg else 0, kpath))
            else:
                choices = list(self.bant_names) + ["at_least", "at_most", "between"]
                self.problem("UNKNOWN_BANT", f"unknown BANT criterion or test '{key}'", kpath,
                             did_you_mean(key, choices) or f"BANT criteria are: {', '.join(self.bant_names)}",
                             key=True)
                parts.append(None)
        if any(p is None for p in parts):
            return None
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def _event(self, value: Any, path: tuple) -> EventCount | None:
        if isinstance(value, str) and value:
            node = EventCount(value, None, 1, path)
        elif isinstance(value, dict):
            unknown = [k for k in value if k not in ("type", "within", "at_least")]
            for k in unknown:
                self.problem("UNKNOWN_KEY", f"unknown key '{k}' in an event test", path + (k,),
                             did_you_mean(k, ("type", "within", "at_least")), key=True)
            if unknown:
                return None
            etype, within, least = value.get("type"), value.get("within"), value.get("at_least", 1)
            if not isinstance(etype, str) or not etype:
                return self._bad(path + ("type",), "an event test needs 'type', the event type to count")
            seconds = None
            if within is not None:
                try:
                    seconds = parse_duration(within)
                except ValueError as exc:
                    self.problem("BAD_DURATION", str(exc), path + ("within",))
                    return None
            if isinstance(least, bool) or not isinstance(least, int) or least < 1:
                return self._bad(path + ("at_least",), f"'at_least' takes a whole number >= 1, not {_show(least)}")
            node = EventCount(etype, seconds, least, path + ("type",))
        else:
            return self._bad(path, "'event' takes an event type or { type, within, at_least }")
        self.events.append(node)
        return node


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if value is None:
        return "nothing"
    return json.dumps(value, default=str)


def walk(cond: Condition | None) -> Iterable[Condition]:
    """Every node of a condition tree, parents first."""
    if cond is None:
        return
    yield cond
    if isinstance(cond, (All, AnyOf)):
        for item in cond.items:
            yield from walk(item)
    elif isinstance(cond, Not):
        yield from walk(cond.item)
