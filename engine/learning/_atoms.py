"""The building blocks of tuned rules: single tests on a lead's attributes, as the engine reads them.

An atom is one test a marketer could write on one line (`occupation: Student`,
`time_on_site: { at_least: 600 }`, `city: { exists: false }`). Tuned rules are conjunctions of at
most three atoms, each possibly negated. Every atom is written as a rule-file condition, parsed by the
rules' own parser and evaluated by the rules' own `holds`, so the column the tuner fits on is exactly
what the engine will compute from the rule it writes: a missing field fails `at_least`, and its
negation (`not:`) holds, in both.

Cut points for numbers are quantiles of the training leads, rounded to two significant digits so the
rule reads like one a person wrote (600 seconds, not 611.5).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadflow.core import Location
from leadflow.rules import ConditionParser, holds, merge_attributes

QUANTILES = tuple(i / 20 for i in range(1, 20))  # 5% .. 95%
MIN_SUPPORT = 30  # leads on each side of an atom, and at least 1% of them
MAX_VALUE_CHARS = 200  # a longer text is an id or a note, not a category a rule should name
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Atom:
    """One test on one attribute: op is "eq", "at_least" or "exists"."""

    field: str
    op: str
    value: Any

    def condition(self) -> dict:
        if self.op == "eq":
            return {self.field: self.value}
        return {self.field: {self.op: self.value}}

    def text(self, negated: bool = False) -> str:
        if self.op == "exists":
            shown = f"{self.field} is {'set' if self.value != negated else 'missing'}"
            return shown
        if self.op == "at_least":
            return f"{self.field} {'<' if negated else '>='} {_num(self.value)} {'or missing' if negated else ''}".strip()
        return f"{self.field} {'!=' if negated else '='} {self.value}"


Term = tuple  # ((Atom, positive: bool), ...): a conjunction


def lead_attributes(events: list) -> dict:
    """The lead's attributes after all its `lead_updated` events (null removes a key)."""
    attrs: dict = {}
    for event in events:
        if event.get("type") == "lead_updated" and isinstance(event.get("data"), dict):
            attrs = merge_attributes(attrs, event["data"])
    return attrs


def find_atoms(attrs: list[dict]) -> list[Atom]:
    """Every atom with enough leads on both sides: each text or boolean value, presence of a field
    that is sometimes missing, and quantile cut points of numbers. Sorted, so the same leads give
    the same atoms in the same order."""
    n = len(attrs)
    least = max(MIN_SUPPORT, math.ceil(0.01 * n))
    out: list[Atom] = []
    fields = sorted({k for a in attrs for k in a})
    for fld in fields:
        values = [a.get(fld) for a in attrs]
        present = sum(v is not None for v in values)
        if least <= present <= n - least:
            out.append(Atom(fld, "exists", True))
        counts = Counter(v for v in values if isinstance(v, (str, bool)))
        for value, count in sorted(counts.items(), key=lambda kv: (type(kv[0]).__name__, str(kv[0]))):
            if least <= count <= n - least and len(str(value)) <= MAX_VALUE_CHARS:
                out.append(Atom(fld, "eq", value))
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        if len(numbers) >= least:
            cuts = sorted({_round2(float(q)) for q in np.quantile(numbers, QUANTILES, method="lower")})
            for cut in cuts:
                above = sum(1 for v in numbers if v >= cut)
                if least <= above <= n - least:
                    out.append(Atom(fld, "at_least", cut))
    return out


def atom_matrix(atoms: list[Atom], attrs: list[dict]) -> np.ndarray:
    """0/1 matrix (leads x atoms): does the engine's own `holds` accept the atom's condition."""
    problems: list = []
    parser = ConditionParser("attributes", problems, lambda path, key: Location("tune"))
    parsed = [parser.parse(atom.condition(), ()) for atom in atoms]
    if problems:
        raise ValueError(f"an atom the rules do not accept: {problems[0]}")
    out = np.zeros((len(attrs), len(atoms)), dtype=np.float64)
    by_field: dict = {}
    for j, atom in enumerate(atoms):
        by_field.setdefault(atom.field, []).append(j)
    for fld, cols in by_field.items():
        # Each distinct value is tested once, by the same `holds` on a lead holding only that value.
        keys, distinct = [], {}
        for a in attrs:
            value = a.get(fld)
            key = (type(value).__name__, json.dumps(value, sort_keys=True, default=str))
            distinct.setdefault(key, value)
            keys.append(key)
        for j in cols:
            verdict = {key: holds(parsed[j], {} if value is None else {fld: value}) for key, value in distinct.items()}
            out[:, j] = [verdict[key] for key in keys]
    return out


def simplify(term: Term) -> Term | None:
    """The conjunction without tests another one implies, or None when it can never hold. Trees split
    the same field twice ("under 1,400 seconds" and then "under 110"); a person would write one test."""
    out: list = []
    for fld in sorted({atom.field for atom, _ in term}):
        mine = [(a, p) for a, p in term if a.field == fld]
        present = [a for a, p in mine if a.op == "exists" and p]
        missing = [a for a, p in mine if a.op == "exists" and not p]
        equal = sorted({a.value for a, p in mine if a.op == "eq" and p}, key=str)
        unequal = [a for a, p in mine if a.op == "eq" and not p]
        above = [a.value for a, p in mine if a.op == "at_least" and p]
        below = [a.value for a, p in mine if a.op == "at_least" and not p]  # "under the cut, or missing"
        positive = equal or above
        if missing and (positive or present):
            return None
        if len(equal) > 1 or (equal and any(a.value == equal[0] for a in unequal)):
            return None
        if above and below and max(above) >= min(below):
            return None
        if missing:
            out.append((missing[0], False))
            continue
        if present and not positive:
            out.append((present[0], True))
        if equal:
            out.append((Atom(fld, "eq", equal[0]), True))
        else:
            out += [(a, False) for a in unequal]
        if above:
            out.append((Atom(fld, "at_least", max(above)), True))
        if below:
            out.append((Atom(fld, "at_least", min(below)), False))
    return tuple(out) if out else None


def term_column(term: Term, matrix: np.ndarray, index: dict) -> np.ndarray:
    """The 0/1 column of a conjunction, from the atom matrix (`index`: atom -> column)."""
    col = np.ones(matrix.shape[0])
    for atom, positive in term:
        a = matrix[:, index[atom]]
        col = col * (a if positive else 1 - a)
    return col


def term_condition(term: Term) -> dict:
    """The rule-file condition of a conjunction: one test alone, or `all:` of them."""
    parts = [atom.condition() if positive else {"not": atom.condition()} for atom, positive in term]
    return parts[0] if len(parts) == 1 else {"all": parts}


def term_text(term: Term) -> str:
    return " and ".join(atom.text(not positive) for atom, positive in term)


def flow(value: Any) -> str:
    """A condition as one line of YAML flow style, names bare and values quoted only when needed."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)}: {flow(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[ " + ", ".join(flow(v) for v in value) + " ]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    return json.dumps(value, ensure_ascii=False)


def _key(name: str) -> str:
    return name if _BARE.match(name) and name not in ("true", "false", "null", "yes", "no", "on", "off") \
        else json.dumps(name, ensure_ascii=False)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _round2(x: float) -> float:
    """Two significant digits: 611.5 -> 610, 0.237 -> 0.24."""
    if x == 0:
        return 0.0
    digits = 1 - int(math.floor(math.log10(abs(x))))
    r = round(x, digits)
    return float(int(r)) if float(r).is_integer() else r
