"""How likely a lead is to buy, from its score: the calibration `rules tune` writes beside the rules.

A score ranks leads but means nothing on its own ("is 55 good?"); a rep acts on "likely to buy: 72%".
The calibration is a table of steps measured on cross-validated outcomes (a lead scoring at least
this bought this often), kept as `calibration.yaml` in the rule directory, so it is part of the rules
version, reviewed in a proposal and reloaded with the rules. A step table rather than a formula: an
isotonic fit is one already, a Platt curve is written as one, and a table is what a manager can check.
"""
from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leadflow.core import Document, Problem

FILES = ("calibration.yaml", "calibration.yml")
MAX_CALIBRATION_STEPS = 100  # a table a person can still read; an isotonic fit on integer scores has far fewer


@dataclass(frozen=True)
class Step:
    score: float  # from this score up ...
    probability: float  # ... a lead buys with this probability


@dataclass(frozen=True)
class Calibration:
    """Score -> probability of buying, as a step function over ascending scores; a score below the
    first step gets the first step's probability."""

    method: str  # isotonic | platt
    steps: tuple[Step, ...]
    fitted_on: int | None = None
    positives: int | None = None
    _scores: list = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_scores", [s.score for s in self.steps])

    def probability(self, score: float) -> float | None:
        """The probability of buying at this score (None for a score that is not a finite number)."""
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            return None
        i = bisect.bisect_right(self._scores, score) - 1
        return self.steps[max(i, 0)].probability


def is_calibration(path: str) -> bool:
    """Whether a file of the rule directory is the calibration (loaded apart from the rule files)."""
    return os.path.basename(path) in FILES


def percent(probability: float) -> str:
    """A probability as people read it next to a score: whole percent ("72%")."""
    return f"{probability * 100:.0f}%"


def parse_calibration(doc: Document, check: Callable[[Document], Any], problems: list[Problem]) -> Calibration | None:
    """The checked calibration of `doc`, or None with every problem added to `problems`. `check` walks
    the document against the file's schema (`_schema.CALIBRATION`, with the loader's walk, so types,
    unknown keys and finite numbers read the same as in rule files); what a schema cannot say (ranges,
    order, counts) is checked here."""
    before = len(problems)

    def problem(code: str, message: str, path: tuple, hint: str = "") -> None:
        problems.append(Problem(code, message, doc.at(path), hint))

    if doc.data is None:
        problem("MISSING_KEY", "the calibration file is empty", (),
                "write it with `leadflow rules tune`, or remove the file")
        return None
    check(doc)
    body = doc.data.get("calibration") if isinstance(doc.data, dict) else None
    raw = body.get("steps") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        return None  # reported by the schema walk
    where = ("calibration", "steps")
    if not raw:
        problem("NO_STEPS", "the calibration has no steps", where, "give at least one { score, probability }")
    elif len(raw) > MAX_CALIBRATION_STEPS:
        problem("TOO_MANY_STEPS", f"{len(raw)} steps; a calibration holds at most {MAX_CALIBRATION_STEPS}",
                where + (MAX_CALIBRATION_STEPS,), "merge neighbouring steps with close probabilities")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        score, chance = (item.get("score"), item.get("probability")) if isinstance(item, dict) else (None, None)
        if not (_finite(score) and _finite(chance)):
            continue  # reported by the schema walk
        if not 0 <= chance <= 1:
            problem("BAD_PROBABILITY", f"probability {chance} is outside 0 to 1", where + (i, "probability"),
                    "write a share: 0.72 for 72%")
        if steps and score <= steps[-1].score:
            problem("SCORES_NOT_ASCENDING", f"score {score:g} does not come after the previous step's "
                    f"{steps[-1].score:g}", where + (i, "score"),
                    "list the steps from the lowest score up, each score once")
        elif steps and chance < steps[-1].probability:
            problem("PROBABILITY_DECREASES", f"probability {chance:g} is below the previous step's "
                    f"{steps[-1].probability:g}", where + (i, "probability"),
                    "a higher score cannot mean a lower chance of buying; fit it again with `leadflow rules tune`")
        steps.append(Step(float(score), float(chance)))
    fitted, positives = body.get("fitted_on"), body.get("positives")
    for key in ("fitted_on", "positives"):
        if _count(body.get(key)) and body[key] < 0:
            problem("BAD_VALUE", f"{key} is {body[key]}; a number of leads is never below 0", ("calibration", key))
    if _count(fitted) and _count(positives) and positives > fitted:
        problem("BAD_VALUE", f"positives ({positives}) exceed fitted_on ({fitted})", ("calibration", "positives"),
                "positives are the leads that bought among the fitted_on labelled leads")
    if len(problems) > before:
        return None
    return Calibration(body["method"], tuple(steps), fitted, positives)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
