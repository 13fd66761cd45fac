"""From score to "likely to buy": an isotonic fit on cross-validated scores, written as calibration.yaml.

Each fold's proposal scores the leads it was not fitted on. Folds differ a little in where their
score 0 sits (each has its own intercept), so a fold's scores are first moved onto the scale of the
model being calibrated: a score s of fold k means log-odds (b_k + s) / POINTS_PER_LOGIT, which is
the score s + b_k - b of a model with intercept b. The isotonic fit (scikit-learn's) is a step
function already; its steps are the table, merged pairwise where they differ least when there are
more than MAX_CALIBRATION_STEPS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from leadflow.rules import Calibration, Step

MAX_STEPS = 100  # the rules' own limit on a calibration table
MIN_EACH = 50  # leads of each label below which a table would tell reps more than the data knows


@dataclass
class OutOfFold:
    """A lead's held-out score, its 0/1 label, and the intercept (in points) of the fold that scored it."""

    score: float
    label: int
    intercept: float
    fold: int


def isotonic(scores: list[float], labels: list[int], max_steps: int = MAX_STEPS) -> Calibration | None:
    """The step table of an isotonic regression of the label on the score (None with fewer than
    MIN_EACH leads of either label: then the proposal has no calibration, and applying it removes the
    live one, which described other points)."""
    from sklearn.isotonic import IsotonicRegression

    if min(sum(labels), len(labels) - sum(labels)) < MIN_EACH:
        return None
    x = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y).predict(x)
    order = np.argsort(x, kind="stable")
    blocks: list[list[float]] = []  # [first score, probability, leads]
    for i in order:
        p = float(fitted[i])
        if blocks and abs(blocks[-1][1] - p) < 1e-12:
            blocks[-1][2] += 1
        elif blocks and blocks[-1][0] == x[i]:
            continue
        else:
            blocks.append([float(x[i]), p, 1])
    while len(blocks) > max_steps:  # pool the two neighbours closest in probability
        k = min(range(len(blocks) - 1), key=lambda j: (blocks[j + 1][1] - blocks[j][1], j))
        a, b = blocks[k], blocks[k + 1]
        blocks[k:k + 2] = [[a[0], (a[1] * a[2] + b[1] * b[2]) / (a[2] + b[2]), a[2] + b[2]]]
    steps = []
    for first, p, _ in blocks:
        score, prob = round(first, 2), round(p, 4)
        if steps and (score <= steps[-1].score or prob < steps[-1].probability):
            continue
        steps.append(Step(score, prob))
    return Calibration("isotonic", tuple(steps), len(labels), int(sum(labels)))


def for_model(oof: list[OutOfFold], intercept: float, leave_out: int | None = None) -> Calibration | None:
    """The calibration of a model with `intercept` from out-of-fold scores (without fold `leave_out`)."""
    rows = [o for o in oof if o.fold != leave_out]
    return isotonic([o.score + o.intercept - intercept for o in rows], [o.label for o in rows])


def held_out_probabilities(oof: list[OutOfFold]) -> tuple[list[int], list[float]]:
    """Each lead's probability from a calibration its own fold had no part in: what eval would see."""
    labels, probs = [], []
    for fold in sorted({o.fold for o in oof}):
        mine = [o for o in oof if o.fold == fold]
        cal = for_model(oof, mine[0].intercept, leave_out=fold)
        if cal is None:
            continue
        labels += [o.label for o in mine]
        probs += [cal.probability(o.score) for o in mine]
    return labels, probs


def write_calibration(directory: str, cal: Calibration, note: str) -> None:
    lines = [f"# {note}", "calibration:", f"  method: {cal.method}", f"  fitted_on: {cal.fitted_on}",
             f"  positives: {cal.positives}", "  steps:"]
    lines += [f"    - {{ score: {_num(s.score)}, probability: {s.probability:g} }}" for s in cal.steps]
    with open(os.path.join(directory, "calibration.yaml"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
