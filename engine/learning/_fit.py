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
from ._rulefit import Fit, l1_model, select, standardised, term_columns, tree_terms

MAX_RULES = 60
LABELS_PER_RULE = 20


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
    new_columns: dict = None  # type: ignore[assignment]  # new rule id -> its column, once fitted


def design(rules: RuleSet, leads: list[LabelledLead], rows: list[dict], train: Rows) -> Design:
    """Columns for the existing rules (from their replayed counts), and candidates learnt from `train`."""
    scored_ids = [r.id for r in rules.rules if not r.disqualify]
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
    parts = [existing, cols] + ([np.column_stack(event_cols)] if event_cols else [])
    return Design(np.hstack(parts), scored_ids, candidates, train, {})


def budget_for(rules: RuleSet, train: Rows) -> int:
    """Scoring rules the model may use: every rule that exists, and new ones up to MAX_RULES in all
    (disqualifiers included), but no more new rules than one per LABELS_PER_RULE leads of the rarer
    label: a rule learnt from a handful of buyers is noise a reviewer cannot tell from signal."""
    scored = sum(1 for r in rules.rules if not r.disqualify)
    rarer = min(float(train.w[train.y == 1].sum()), float(train.w[train.y == 0].sum()))
    new = min(MAX_RULES - len(rules.rules), int(rarer // LABELS_PER_RULE))
    return scored + max(new, 0)


def fit_design(d: Design, rules: RuleSet, train: Rows) -> Fit:
    return select(d.x[train.lead], train.y, train.w, budget_for(rules, train), forced=len(d.scored_ids))


def fit(rules: RuleSet, leads: list[LabelledLead], rows: list[dict]) -> tuple[Proposal, Design, Fit]:
    """The proposal for these labelled leads (and the design and fit it came from)."""
    train = training_rows(leads, rules.label_weights)
    d = design(rules, leads, rows, train)
    model = fit_design(d, rules, train)
    by_col = dict(zip(model.columns, model.points))
    rule_by_id = {r.id: r for r in rules.rules}
    labels = np.array([item.label if item.label is not None else -1 for item in leads])
    labelled = labels >= 0
    base = float(labels[labelled].mean()) if labelled.any() else 0.0
    points, notes, stats, old = {}, {}, {}, {}
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
        fired = (d.x[:, j] > 0) & labelled
        stats[rid] = (int(fired.sum()), float(labels[fired].mean()) if fired.any() else None)
    taken = set(rule_by_id)
    proposed = []
    for col, value in sorted(by_col.items()):
        if col < len(d.scored_ids) or value == 0:
            continue
        cand = d.candidates[col - len(d.scored_ids)]
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
        alone_points = dict(zip(alone.columns, alone.points))
        proposal.from_outcomes = {rid: alone_points.get(j, 0) for j, rid in enumerate(d.scored_ids)}
        proposal.from_outcomes.update({c.id: alone_points.get(col, 0) for c, _, col in proposed})
    return proposal, d, model


def _label_summary(train: Rows, feedback: bool) -> dict:
    part = train.feedback == feedback
    return {"rows": int(part.sum()), "weight": round(float(train.w[part].sum()), 2),
            "positive": int(train.y[part].sum())}


def add_gains(proposal: Proposal, d: Design, model: Fit, leads: list[LabelledLead], folds: list[int]) -> None:
    """Each new rule's cross-validated AUC gain: in every fold, the chosen rules' weights are fitted
    again on the other folds (the same L1 model), and the held-out AUC with the rule is compared with the AUC when its
    points are left out. The choice of rules saw every lead; the weights and the AUC did not."""
    from sklearn.metrics import roc_auc_score

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
