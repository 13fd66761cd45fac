"""Rules from shallow trees, chosen by a sparse linear model (in the spirit of RuleFit).

Boosted trees of depth 3 are grown on the atom matrix (see _atoms.py); every node of every tree is a
conjunction of at most three atoms (the path from the root), which is a rule a person can read. The
atoms alone are candidates too, so a plain threshold competes with the combinations. A logistic
regression with an L1 penalty then keeps the few rules that carry the signal (the rules the
marketer wrote pay a fifth of the penalty: a proposal keeps them unless the data says otherwise): the strongest penalty
path point whose number of rules fits the budget. The kept rules get their weights again from a
the L1 model itself, and weights become integer points at a fixed number of points per unit of
log-odds, so a score difference means the same in every fold.

Everything is deterministic: fixed seeds, a solver without randomness, candidates in a fixed order.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._atoms import Atom, Term, simplify, term_column

TREES = 60
DEPTH = 3
POINTS_PER_LOGIT = 20  # points for one unit of log-odds: 14 points double the odds of buying
C_GRID = tuple(float(c) for c in np.geomspace(0.001, 2.0, 36))


@dataclass
class Fit:
    """Chosen columns of the design matrix, their integer points, and the model's intercept in points."""

    columns: list[int]
    points: list[int]
    intercept: float  # log-odds at score 0, times POINTS_PER_LOGIT
    weights: list[float]  # log-odds weights, before rounding
    c: float  # the L1 model's inverse penalty


def tree_terms(matrix: np.ndarray, y: np.ndarray, w: np.ndarray, atoms: list[Atom]) -> list[Term]:
    """Conjunctions of up to three atoms from the nodes of boosted depth-3 trees, each once, in order of
    first appearance, then every atom alone."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=TREES, max_depth=DEPTH, learning_rate=0.1, subsample=0.8,
                                       random_state=0)
    model.fit(matrix, y, sample_weight=w)
    seen: dict = {}
    for est in model.estimators_[:, 0]:
        tree = est.tree_
        stack = [(0, ())]
        while stack:
            node, path = stack.pop()
            if path:
                seen.setdefault(tuple(sorted(path, key=lambda t: (atoms[t[0]].field, atoms[t[0]].op,
                                                                   str(atoms[t[0]].value), t[1]))), None)
            left, right = tree.children_left[node], tree.children_right[node]
            if left == -1 or len(path) >= DEPTH:
                continue
            j = int(tree.feature[node])
            if any(k == j for k, _ in path):
                continue
            stack.append((right, path + ((j, True),)))  # atoms are 0/1: right of 0.5 is "holds"
            stack.append((left, path + ((j, False),)))
    terms = [simplify(tuple((atoms[j], positive) for j, positive in key)) for key in seen]
    terms += [((atom, True),) for atom in atoms]
    return list(dict.fromkeys(t for t in terms if t))


def term_columns(terms: list[Term], matrix: np.ndarray, index: dict, least: int) -> tuple[list[Term], np.ndarray]:
    """The terms with at least `least` leads on each side, without duplicates (same leads as an earlier
    term), and their 0/1 columns."""
    kept, cols, keys = [], [], set()
    n = matrix.shape[0]
    for term in terms:
        col = term_column(term, matrix, index)
        support = int(col.sum())
        if support < least or support > n - least:
            continue
        key = np.packbits(col.astype(bool)).tobytes()
        if key in keys:
            continue
        keys.add(key)
        kept.append(term)
        cols.append(col)
    return kept, (np.column_stack(cols) if cols else np.zeros((n, 0)))


def l1_model(c: float):  # noqa: ANN201 - a scikit-learn estimator
    """The sparse logistic regression every choice is made with (liblinear: deterministic)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", max_iter=2000, random_state=0)


def standardised(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns divided by their spread, as RuleFit does: a rare rule is not penalised more for being rare."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return x / scale, scale


def select(x: np.ndarray, y: np.ndarray, w: np.ndarray, budget: int, forced: int = 0,
           penalty: np.ndarray | None = None) -> Fit:
    """Choose at most `budget` columns of x on the L1 path: the weakest penalty on the grid whose
    model uses no more (the first `forced` columns are always kept and count toward the budget).
    `penalty` scales each column's share of the L1 cost (1 by default), as glmnet's penalty factors
    do. The weights are the L1 model's own: the shrinkage that keeps the rule count down also keeps a
    rule seen on few leads from getting a large weight."""
    forced_cols = set(range(forced))
    if len(set(y.tolist())) < 2:  # one label only: nothing to learn beyond the base rate
        mean = min(max(float(np.average(y, weights=w)) if len(y) else 0.5, 1e-3), 1 - 1e-3)
        chosen = sorted(forced_cols)
        return Fit(chosen, [0] * len(chosen), float(np.log(mean / (1 - mean))) * POINTS_PER_LOGIT,
                   [0.0] * len(chosen), C_GRID[0])
    xs, scale = standardised(x)
    if penalty is not None:  # a column scaled up by k costs 1/k of the penalty per unit of effect
        scale = scale * penalty
        xs = xs / penalty
    models: dict = {}

    def kept(i: int) -> list[int]:
        models[i] = l1_model(C_GRID[i]).fit(xs, y, sample_weight=w)
        return sorted(set(np.flatnonzero(models[i].coef_[0]).tolist()) | forced_cols)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear's convergence notes on a path point we do not keep
        # The number of rules grows with C, give or take a rule, so bisection finds the crossing.
        lo, hi, chosen = -1, len(C_GRID), sorted(forced_cols)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            found = kept(mid)
            if len(found) <= budget:
                lo, chosen = mid, found
            else:
                hi = mid
        if lo < 0:  # even the strongest penalty keeps too many: the strongest, with the rules over budget dropped
            lo, chosen = 0, sorted(forced_cols)
            if 0 not in models:
                kept(0)
    model = models[lo]
    weights = (model.coef_[0][chosen] / scale[chosen]).tolist()
    points = [int(round(b * POINTS_PER_LOGIT)) for b in weights]
    return Fit(chosen, points, float(model.intercept_[0]) * POINTS_PER_LOGIT, weights, C_GRID[lo])
