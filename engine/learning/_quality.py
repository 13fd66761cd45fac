"""How good a probability is: Brier score and expected calibration error.

Shared by `leadflow eval` (the rules' calibration.yaml against labelled leads) and `rules tune`
(the cross-validated calibration it writes), so both report the same figure the same way.
"""
from __future__ import annotations

from collections.abc import Sequence

ECE_BINS = 10


def brier(labels: Sequence[int], probs: Sequence[float]) -> float | None:
    """Mean squared difference between the probability and the 0/1 outcome (0 is perfect)."""
    if not labels:
        return None
    return sum((p - y) ** 2 for y, p in zip(labels, probs)) / len(labels)


def ece(labels: Sequence[int], probs: Sequence[float], bins: int = ECE_BINS) -> float | None:
    """Expected calibration error over `bins` equal-width bins of the probability: the gap between
    the mean probability and the observed rate in each bin, weighted by the bin's share of leads.
    A probability of exactly 1 falls in the last bin."""
    if not labels:
        return None
    sums: dict[int, list[float]] = {}
    for y, p in zip(labels, probs):
        b = min(int(p * bins), bins - 1)
        acc = sums.setdefault(b, [0.0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += p
        acc[2] += y
    return sum(abs(acc[1] - acc[2]) for acc in sums.values()) / len(labels)
