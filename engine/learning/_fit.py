"""Fitting a proposal: the rules that exist, new threshold and combination rules, integer points.

The design matrix has one column per scoring rule that exists (how often it counted in the replay),
one per event type no rule counts yet, and one per candidate conjunction from shallow trees (see
_rulefit.py). The existing rules stay in the file whatever the fit says (a person removes rules), so
they are always in the model and count toward the limit of MAX_RULES scoring rules.

Labels come with weights (`feedback.weights` in the rules): a lead with an outcome is one training row
with the outcome's weight; a rep's accept or reject is another row with its own weight. To show what
the reps' feedback changed, the same candidates are fitted once more on the outcome rows alone.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from leadflow.intake import LabelledLead
from leadflow.rules import RuleSet

from ._atoms import atom_matrix, find_atoms, lead_attributes
from ._model import Candidate, Proposal
from ._atoms import MIN_SUPPORT
from ._rulefit import POINTS_PER_LOGIT, Fit, l1_model, select, standardised, term_columns, tree_terms

MAX_RULES = 60
LABELS_PER_RULE = 20
CHANGE_PENALTY = 0.2  # an existing rule's change of points, against a new rule's, on the L1 cost
PRIOR_PENALTY = 0.01  # the current score's weight: almost free
TOO_FEW = f"too few labels to change the points (one rule needs {LABELS_PER_RULE} leads of the rarer label)"


@dataclass
class Rows:
    """Training rows: which lead, its 0/1 label, its weight, and whether the label is a rep's feedback."""

    lead: np.ndarray
    y: np.ndarray
    w: np.ndarray
    feedback: np.ndarray

    def subset(self, keep: np.ndarray) -> "Rows":
        return Rows(self.lead[keep], self.y[keep], self.w[keep], self.feedback[keep])


def training_rows(leads: list[LabelledLead], weights: dict) -> Rows:
    lead, y, w, fb = [], [], [], []
    for i, item in enumerate(leads):
        if item.outcome is not None and weights.get("outcome", 1.0) > 0:
            lead.append(i), y.append(float(item.outcome)), w.append(weights.get("outcome", 1.0)), fb.append(False)
        if item.verdict is not None:
            weight = weights.get("accept", 0.5) if item.verdict == "accept" else \
                weights.get(item.reason or "", weights.get("reject", 0.5))
            if weight > 0:
                lead.append(i), y.append(float(item.verdict == "accept")), w.append(weight), fb.append(True)
    return Rows(np.array(lead, dtype=int), np.array(y), np.array(w), np.array(fb, dtype=bool))


def _slug(text: str) -> str:
    """ASCII letters and digits only (a rule id's alphabet), runs of anything else as one `_`."""
    return re.sub(r"_+", "_", "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in text.lower())).strip("_")


def _rule_id(candidate: Candidate, taken: set) -> str:
    if candidate.term:
        parts = []
        for atom, positive in candidate.term:
            value = "set" if atom.op == "exists" else str(atom.value)
            op = {"eq": "", "at_least": "ge", "exists": ""}[atom.op]
            parts.append(("not_" if not positive else "") + _slug(f"{atom.field} {op} {value}"))
        base = "tuned_" + "_and_".join(parts)
    else:
        base = "tuned_event_" + _slug(str(candidate.event))
    base = base[:60].rstrip("_")
    rid, k = base, 2
    while rid in taken:
        rid, k = f"{base}_{k}", k + 1
    taken.add(rid)
    return rid


@dataclass
class Design:
    """The design matrix over every lead (rows of `x` are leads) and what its columns are."""

    x: np.ndarray
    scored_ids: list  # the first columns: existing scoring rules
    candidates: list  # the rest: Candidate per column
    train: Rows  # the training rows the candidates were learnt from
    new_columns: dict  # new rule id -> its column, once fitted
    old_points: np.ndarray  # the existing rules' points, in column order

    @property
    def first_candidate(self) -> int:
        """Columns: the existing rules, then the current score, then the candidates."""
        return len(self.scored_ids) + 1


def design(rules: RuleSet, leads: list[LabelledLead], rows: list[dict], train: Rows) -> Design:
    """Columns for the existing rules (from their replayed counts), the score the current points give
    (the prior: with no evidence against them, the rules keep their relative weights), and candidates
    learnt from `train`."""
    scored_ids = [r.id for r in rules.rules if not r.disqualify]
    rule_points = {r.id: float(r.points or 0) for r in rules.rules}
    n = len(leads)
    least = max(MIN_SUPPORT, math.ceil(0.01 * n))
    existing = np.array([[rows[i].get(rid, 0.0) for rid in scored_ids] for i in range(n)]).reshape(n, len(scored_ids))
    attrs = [lead_attributes(item.events) for item in leads]
    atoms = find_atoms(attrs)
    matrix = atom_matrix(atoms, attrs)
    index = {a: j for j, a in enumerate(atoms)}
    terms = tree_terms(matrix[train.lead], train.y, train.w, atoms) if atoms and len(set(train.y.tolist())) == 2 else []
    terms, cols = term_columns(terms, matrix, index, least)
    seen = {np.packbits(existing[:, j] > 0).tobytes() for j in range(existing.shape[1])}
    keep = [j for j in range(cols.shape[1]) if np.packbits(cols[:, j] > 0).tobytes() not in seen]
    candidates = [Candidate("", term=terms[j]) for j in keep]
    cols = cols[:, keep]
    counted = {r.on for r in rules.rules if r.on}
    types = sorted({ev["type"] for item in leads for ev in item.events[1:]} - counted - {"lead_updated"})
    event_cols = []
    for etype in types:
        col = np.array([sum(1 for ev in item.events if ev["type"] == etype) for item in leads], dtype=float)
        if least <= int((col > 0).sum()) <= n - least:
            event_cols.append(col)
            candidates.append(Candidate("", event=etype))
    old_points = np.array([rule_points[rid] for rid in scored_ids], dtype=float)
    current = (existing @ old_points).reshape(n, 1) if len(scored_ids) else np.zeros((n, 1))
    parts = [existing, current, cols] + ([np.column_stack(event_cols)] if event_cols else [])
    return Design(np.hstack(parts), scored_ids, candidates, train, {}, old_points)


def new_rules_allowed(rules: RuleSet, train: Rows) -> int:
    """New rules the labels can support: up to MAX_RULES scoring rules in all (disqualifiers included),
    but no more than one per LABELS_PER_RULE leads of the rarer label: a rule learnt from a handful of
    buyers is noise a reviewer cannot tell from signal."""
    rarer = min(float(train.w[train.y == 1].sum()), float(train.w[train.y == 0].sum()))
    return max(0, min(MAX_RULES - len(rules.rules), int(rarer // LABELS_PER_RULE)))


def fit_design(d: Design, rules: RuleSet, train: Rows) -> Fit:
    """The L1 fit over the design, as weights per column of `d.x`. The current score costs almost no
    penalty and each existing rule's own change a fifth of a new rule's, so the proposal moves away
    from what the marketer wrote only as far as the labels carry it. With too few labels for any new
    rule, only the current score is fitted: the rules keep their relative weights on the new scale."""
    k = len(d.scored_ids)
    x, y, w = d.x[train.lead], train.y, train.w
    allowed = new_rules_allowed(rules, train)
    if allowed == 0 or not k:
        cols = [k] if k else []
        model = select(x[:, cols], y, w, len(cols), forced=len(cols))
        model.columns = [cols[j] for j in model.columns]
        return model
    penalty = np.ones(x.shape[1])
    penalty[:k] = CHANGE_PENALTY
    penalty[k] = PRIOR_PENALTY
    return select(x, y, w, k + 1 + allowed, forced=k + 1, penalty=penalty)


def rule_weights(d: Design, model: Fit) -> dict:
    """Log-odds weight per design column, the current score's share spread over the existing rules."""
    by_col = dict(zip(model.columns, model.weights))
    prior = by_col.pop(len(d.scored_ids), 0.0)
    for j, old in enumerate(d.old_points):
        by_col[j] = by_col.get(j, 0.0) + prior * old
    return by_col


def fit(rules: RuleSet, leads: list[LabelledLead], rows: list[dict]) -> tuple[Proposal, Design, Fit]:
    """The proposal for these labelled leads (and the design and fit it came from)."""
    train = training_rows(leads, rules.label_weights)
    d = design(rules, leads, rows, train)
    if new_rules_allowed(rules, train) == 0:
        # Too few labels to tell signal from noise: the proposal is the rules as they are (a score on
        # their own scale, intercept 0), still measured and calibrated like any proposal.
        rule_by_id = {r.id: r for r in rules.rules}
        points = {rid: rule_by_id[rid].points for rid in d.scored_ids}
        proposal = Proposal(points, dict(points), [], {}, _stats(d, leads), {rid: TOO_FEW for rid in points})
        proposal.labels = {"outcome": _label_summary(train, False), "feedback": _label_summary(train, True)}
        return proposal, d, Fit([], [], 0.0, [], 0.0)
    model = fit_design(d, rules, train)
    by_col = {col: int(round(weight * POINTS_PER_LOGIT)) for col, weight in rule_weights(d, model).items()}
    rule_by_id = {r.id: r for r in rules.rules}
    labels = np.array([item.label if item.label is not None else -1 for item in leads])
    labelled = labels >= 0
    base = float(labels[labelled].mean()) if labelled.any() else 0.0
    points, notes, old = {}, {}, {}
    for j, rid in enumerate(d.scored_ids):
        value = by_col.get(j, 0)
        rule = rule_by_id[rid]
        old[rid] = rule.points
        if rule.group == "negative" and value >= 0:
            notes[rid] = "the data says this is not a negative signal; kept at -1, consider removing the rule"
            value = -1  # a negative rule keeps negative points
        elif value == 0:
            notes[rid] = "adds nothing once the other rules are known; consider removing it"
        elif (value > 0) != (rule.points > 0):
            notes[rid] = f"the data says this is a {'positive' if value > 0 else 'negative'} signal, not a " \
                         f"{'positive' if rule.points > 0 else 'negative'} one"
        points[rid] = value
    stats = _stats(d, leads)
    taken = set(rule_by_id)
    proposed = []
    for col, value in sorted(by_col.items()):
        if col < d.first_candidate or value == 0:
            continue
        cand = d.candidates[col - d.first_candidate]
        fired = (d.x[:, col] > 0) & labelled
        cand.n, cand.base = int(fired.sum()), base
        cand.rate = float(labels[fired].mean()) if fired.any() else 0.0
        cand.id = _rule_id(cand, taken)
        proposed.append((cand, value, col))
        d.new_columns[cand.id] = col
    group = {"fit": 0, "engagement": 1, "negative": 2}  # the order of the groups in a rule file
    proposed.sort(key=lambda item: (group["negative" if item[1] < 0 else "fit" if item[0].term else "engagement"],
                                    item[2]))
    proposal = Proposal(points, old, [(c, p) for c, p, _ in proposed], {}, stats, notes, intercept=model.intercept)
    proposal.labels = {"outcome": _label_summary(train, False), "feedback": _label_summary(train, True)}
    if train.feedback.any() and (~train.feedback).any():
        alone = fit_design(d, rules, train.subset(~train.feedback))
        alone_points = {col: int(round(weight * POINTS_PER_LOGIT)) for col, weight in rule_weights(d, alone).items()}
        proposal.from_outcomes = {rid: alone_points.get(j, 0) for j, rid in enumerate(d.scored_ids)}
        proposal.from_outcomes.update({c.id: alone_points.get(col, 0) for c, _, col in proposed})
    return proposal, d, model


def _stats(d: Design, leads: list[LabelledLead]) -> dict:
    """Per existing rule: the labelled leads it counted for, and their positive rate."""
    labels = np.array([item.label if item.label is not None else -1 for item in leads])
    out = {}
    for j, rid in enumerate(d.scored_ids):
        fired = (d.x[:, j] > 0) & (labels >= 0)
        out[rid] = (int(fired.sum()), float(labels[fired].mean()) if fired.any() else None)
    return out


def _label_summary(train: Rows, feedback: bool) -> dict:
    part = train.feedback == feedback
    return {"rows": int(part.sum()), "weight": round(float(train.w[part].sum()), 2),
            "positive": int(train.y[part].sum())}


def add_gains(proposal: Proposal, d: Design, model: Fit, leads: list[LabelledLead], folds: list[int]) -> None:
    """Each new rule's cross-validated AUC gain: in every fold, the chosen rules' weights are fitted
    again on the other folds (the same L1 model), and the held-out AUC with the rule is compared with the AUC when its
    points are left out. The choice of rules saw every lead; the weights and the AUC did not."""
    from sklearn.metrics import roc_auc_score

    if not d.new_columns:
        return
    train = d.train
    fold = np.asarray(folds)
    labels = np.array([item.label if item.label is not None else -1 for item in leads])
    cols = model.columns
    new = {rid: cols.index(col) for rid, col in d.new_columns.items()}
    found: dict = {rid: [] for rid in new}
    for k in sorted(set(folds)):
        rows = train.subset(fold[train.lead] != k)
        test = (fold == k) & (labels >= 0)
        if len(set(rows.y)) < 2 or len(set(labels[test])) < 2:
            continue
        xs, scale = standardised(d.x[rows.lead][:, cols])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit = l1_model(model.c).fit(xs, rows.y, sample_weight=rows.w)
        part = d.x[test][:, cols] * (refit.coef_[0] / scale)
        score = part.sum(axis=1)
        full = roc_auc_score(labels[test], score)
        for rid, m in new.items():
            found[rid].append(full - roc_auc_score(labels[test], score - part[:, m]))
    for cand, _ in proposal.candidates:
        if found.get(cand.id):
            cand.gain = round(float(np.mean(found[cand.id])), 4)
