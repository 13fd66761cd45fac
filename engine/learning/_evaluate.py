"""`leadflow eval`: how well a rule set's score and SQL gate separate a known outcome.

Each labelled lead's scoring events (never its labels) are replayed through the rules in memory;
then AUC (the chance a random positive outscores a random negative, ties counting half), precision
in the top 10% and 30% by score, and the SQL gate's precision and recall are computed. Given the
rules' calibration (score -> probability of buying), the Brier score and the expected calibration error
(10 bins) say whether "likely to buy: 72%" holds on this data.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from leadflow.core import parse_time
from leadflow.rules import Compiled, LeadState
from leadflow.runtime import Engine

from ._quality import brier, ece


@dataclass
class Scored:
    id: str
    label: int
    score: float
    reached_sql: bool
    stage: str
    fired: frozenset


def replay(compiled: Compiled, leads: list, engine: Engine | None = None,
           on_lead: Callable[[], None] | None = None) -> list[Scored]:
    engine = engine or Engine()
    out = []
    for item in leads:
        if on_lead:
            on_lead()
        state, fired, sql = LeadState(item.id), set(), False
        try:
            times = [parse_time(event["at"]) for event in item.events]
        except ValueError:
            continue  # a row whose time does not parse cannot be replayed (ingest keeps it as a dead letter)
        for event, at in zip(item.events, times):
            decision = engine.evaluate(compiled, state, event, at)
            fired.update(decision.fired)
            sql = sql or any(t["to"] == "sql" for t in decision.transitions)
        out.append(Scored(item.id, item.label if item.label is not None else -1, state.score, sql, state.stage,
                          frozenset(fired)))
    return out


def auc(labels: list[int], scores: list[float]) -> float | None:
    pairs = sorted(zip(scores, labels))
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + 1 + j) / 2
        rank_sum += avg * sum(1 for k in range(i, j) if pairs[k][1] == 1)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def precision_at(labels: list[int], scores: list[float], share: float) -> float | None:
    if not labels:
        return None
    k = max(1, round(len(labels) * share))
    ranked = sorted(range(len(labels)), key=lambda i: (-scores[i], i))[:k]
    return sum(labels[i] for i in ranked) / k


def metrics(scored: list[Scored], likelihood: Callable[[float], float | None] | None = None) -> dict:
    """The figures of `leadflow eval`. With `likelihood` (the rules' calibration: score -> probability)
    also `brier` and `ece`, null when it gives no probability (rules without a calibration); without it
    the keys are left out, so callers that compare rule sets by score alone (tune) get what they had."""
    rows = [s for s in scored if s.label in (0, 1)]
    labels, scores = [s.label for s in rows], [s.score for s in rows]
    sql = [s for s in rows if s.reached_sql]
    positives = sum(labels)
    value = auc(labels, scores)
    out = {"leads": len(rows), "positives": positives, "auc": None if value is None else round(value, 4),
           "precision_at": {"0.1": _r(precision_at(labels, scores, 0.1)), "0.3": _r(precision_at(labels, scores, 0.3))},
           "stages": dict(Counter(s.stage for s in rows)),
           "sql_precision": _r(sum(s.label for s in sql) / len(sql)) if sql else None,
           "sql_recall": _r(sum(s.label for s in sql) / positives) if positives else None}
    if likelihood is not None:
        probs = [likelihood(x) for x in scores]
        missing = None in probs  # a rule set without a calibration gives None for every score
        out["brier"] = None if missing else _r(brier(labels, probs))
        out["ece"] = None if missing else _r(ece(labels, probs))
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
