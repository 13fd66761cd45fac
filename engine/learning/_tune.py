"""`leadflow rules tune`: better points, new rules and thresholds, learnt from outcomes and feedback.

1. Replay every labelled lead through the current rules and note how often each rule counted.
2. Look for attribute values and event types that predict the label strongly and that no rule
   already speaks for (a rule "speaks for" a value when it tests that field and fires on most of
   those leads); each becomes a candidate rule with its evidence.
3. Fit an L2-regularised logistic regression of the label on those counts, and rescale the weights
   to the rule file's own point scale (the total of the absolute points is kept).
4. Pick score thresholds for the target the user gives (SQL precision, or MQL capacity).
5. Measure before/after by 5-fold cross-validation: every figure for the proposal comes from leads
   the fold's proposal was not fitted on.
The proposal is written as a minimal text edit of the rule files (tune_yaml), so the marketer's
comments, key order and layout survive and the change reads as a normal diff. Same input, same output.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from typing import Callable

import numpy as np

from leadflow.core import parse_time
from leadflow.intake import LabelledLead
from leadflow.rules import Compiled, LeadState, Leaf, RuleSet, copy_rule_dir, dir_version, inside, load_compiled, walk
from leadflow.runtime import Engine

from ._evaluate import Scored, metrics, replay
from ._model import Candidate, Proposal
from ._tune_yaml import edit_rule_files, write_report

FOLDS = 5
L2 = 1.0
MAX_CANDIDATES = 8


def _nothing() -> None:
    return None


def _features(compiled: Compiled, leads: list[LabelledLead], engine: Engine,
              on_lead: Callable[[], None] = _nothing) -> tuple[list[dict], list[frozenset]]:
    rows, fired_sets = [], []
    for item in leads:
        on_lead()
        state, fired = LeadState(item.id), set()
        for ev in item.events:
            fired.update(engine.evaluate(compiled, state, ev, parse_time(ev["at"])).fired)
        counts = {rid: 1.0 for rid in state.fit_rules}
        counts.update({rid: float(t.count) for rid, t in state.tallies.items()})
        rows.append(counts)
        fired_sets.append(frozenset(fired))
    return rows, fired_sets


def _fields_of(rule) -> set:  # noqa: ANN001
    return {n.field for cond in (rule.when, rule.where) for n in walk(cond) if isinstance(n, Leaf)}


def find_candidates(rules: RuleSet, leads: list[LabelledLead], rows: list[dict]) -> list[Candidate]:
    labels = np.array([item.label for item in leads], dtype=float)
    n_all, base = len(leads), float(labels.mean())
    groups: dict = {}
    for i, item in enumerate(leads):
        for key, value in item.events[0]["data"].items():
            if isinstance(value, (str, bool)):
                groups.setdefault((key, value, None), []).append(i)
        for ev in item.events[1:]:
            groups.setdefault((None, None, ev["type"]), []).append(i)
    covered_events = {r.on for r in rules.rules if r.on}
    out = []
    for (fld, value, event), idx in groups.items():
        n = len(idx)
        if n < max(30, 0.01 * n_all) or base in (0.0, 1.0):
            continue
        if event is not None and event in covered_events:
            continue
        if fld is not None:
            speaking = [r for r in rules.rules if r.when is not None and fld in _fields_of(r)]
            if any(sum(1 for i in idx if r.id in rows[i]) >= 0.5 * n for r in speaking):
                continue
        rate = float(labels[idx].mean())
        z = (rate - base) / math.sqrt(base * (1 - base) / n)
        if abs(z) >= 5 and abs(rate - base) >= 0.15:
            name = f"{fld}_{value}" if fld is not None else f"event_{event}"
            rid = "tuned_" + "".join(ch if ch.isalnum() else "_" for ch in str(name).lower()).strip("_")[:40]
            out.append(Candidate(rid, fld, value, event, n, rate, base, z))
    out.sort(key=lambda c: (-abs(c.z), c.id))
    return out[:MAX_CANDIDATES]


def _logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (deterministic, no intercept penalty)."""
    xi = np.hstack([np.ones((x.shape[0], 1)), x])
    beta = np.zeros(xi.shape[1])
    penalty = np.full(xi.shape[1], L2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(xi @ beta, -30, 30)))
        grad = xi.T @ (y - p) - penalty * beta
        hess = xi.T @ (xi * (p * (1 - p))[:, None]) + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta[1:]


def fit(rules: RuleSet, leads: list[LabelledLead], rows: list[dict]) -> Proposal:
    candidates = find_candidates(rules, leads, rows)
    ids = rules.rule_ids
    rule_by_id = {r.id: r for r in rules.rules}
    scored_ids = [rid for rid in ids if not rule_by_id[rid].disqualify]
    x = np.zeros((len(leads), len(scored_ids) + len(candidates)))
    for i, item in enumerate(leads):
        for j, rid in enumerate(scored_ids):
            x[i, j] = rows[i].get(rid, 0.0)
        attrs = item.events[0]["data"]
        types = [ev["type"] for ev in item.events[1:]]
        for k, c in enumerate(candidates):
            x[i, len(scored_ids) + k] = (attrs.get(c.field) == c.value) if c.field else types.count(c.event)
    y = np.array([item.label for item in leads], dtype=float)
    beta = _logistic(x, y)
    old = {rid: rule_by_id[rid].points for rid in scored_ids}
    old_total = sum(abs(p) for p in old.values())
    fitted_total = sum(abs(b) for b in beta[: len(scored_ids)]) or 1.0
    scale = old_total / fitted_total if old_total else 10.0
    points, notes = {}, {}
    for j, rid in enumerate(scored_ids):
        value = int(round(beta[j] * scale))
        if rule_by_id[rid].group == "negative" and value >= 0:
            notes[rid] = "the data says this is not a negative signal; kept at -1, consider removing the rule"
            value = -1  # a negative rule keeps negative points
        elif value == 0:
            notes[rid] = "adds nothing once the other rules are known; consider removing it"
        elif (value > 0) != (old_sign := rule_by_id[rid].points > 0):
            notes[rid] = f"the data says this is a {'positive' if value > 0 else 'negative'} signal, not a " \
                         f"{'positive' if old_sign else 'negative'} one"
        points[rid] = value
    proposed = [(c, int(round(beta[len(scored_ids) + k] * scale))) for k, c in enumerate(candidates)]
    proposed = [(c, p) for c, p in proposed if p != 0]
    stats = {}
    for j, rid in enumerate(scored_ids):
        fired = x[:, j] > 0
        stats[rid] = (int(fired.sum()), float(y[fired].mean()) if fired.any() else None)
    return Proposal(points, old, proposed, {}, stats, notes)


def choose_thresholds(scored: list[Scored], target_precision: float | None, capacity: float | None) -> dict:
    out = {}
    ordered = sorted((s.score for s in scored), reverse=True)
    if capacity is not None and ordered:
        out["mql"] = ordered[max(0, min(len(ordered) - 1, int(len(ordered) * capacity) - 1))]
    if target_precision is not None:
        best = None
        for t in sorted({s.score for s in scored}):
            chosen = [s.label for s in scored if s.score >= t]
            if chosen and sum(chosen) / len(chosen) >= target_precision:
                best = t
                break
        if best is not None:
            out["sql"] = best
    return out


def write_proposal(src: str, dst: str, proposal: Proposal) -> None:
    """The rule set in `src` with the proposal's edits, as the directory `dst` (replaced when it
    exists; `src == dst` edits in place). The whole rule set is copied, templates and rule tests
    included, so the proposal loads and tests like the rules it came from."""
    if os.path.abspath(src) != os.path.abspath(dst):
        if os.path.exists(dst):
            shutil.rmtree(dst)
        copy_rule_dir(src, dst)
    edit_rule_files(dst, proposal)


def _fold(lead_id: str) -> int:
    return int(hashlib.sha256(lead_id.encode()).hexdigest(), 16) % FOLDS


def propose(rules_dir: str, leads: list[LabelledLead], target_precision: float | None, capacity: float | None,
            engine: Engine, workdir: str, on_lead: Callable[[], None] = _nothing) -> tuple[Proposal, str]:
    """Fit on `leads`, write the proposal into a fresh directory under workdir, and return both."""
    compiled = load_compiled(rules_dir)
    rows, _ = _features(compiled, leads, engine, on_lead)
    proposal = fit(compiled.rules, leads, rows)
    out = tempfile.mkdtemp(dir=workdir)
    write_proposal(rules_dir, out, proposal)
    if target_precision is not None or capacity is not None:
        scored = replay(load_compiled(out), leads, engine, on_lead)
        proposal.thresholds = choose_thresholds(scored, target_precision, capacity)
        write_proposal(out, out, proposal)
    return proposal, out


def cross_validate(rules_dir: str, leads: list[LabelledLead], target_precision: float | None,
                   capacity: float | None, engine: Engine, on_lead: Callable[[], None] = _nothing) -> dict:
    before, after = [], []
    current = load_compiled(rules_dir)
    with tempfile.TemporaryDirectory() as work:
        for k in range(FOLDS):
            train = [x for x in leads if _fold(x.id) != k]
            test = [x for x in leads if _fold(x.id) == k]
            _, out = propose(rules_dir, train, target_precision, capacity, engine, work, on_lead)
            after += replay(load_compiled(out), test, engine, on_lead)
            before += replay(current, test, engine, on_lead)
    return {"before": metrics(before), "after": metrics(after), "folds": FOLDS}


def replays(leads: int, thresholds: bool) -> int:
    """How many lead replays `tune` makes: in each of the FOLDS folds the training leads once for
    their features (twice with thresholds to choose) and the test leads twice (current and
    proposed rules), then every lead once more for the final fit (twice with thresholds)."""
    return leads * ((FOLDS - 1) * (2 if thresholds else 1) + 2 + (2 if thresholds else 1))


def tune(rules_dir: str, leads: list[LabelledLead], out_dir: str, target_precision: float | None = None,
         capacity: float | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the proposal for `rules_dir` into `out_dir` (a directory of its own: it is replaced)
    and return the report. The report's `rules_version` is the version the proposal was made from;
    applying it anywhere else is refused (see ruledir.overlay_rule_files)."""
    if inside(rules_dir, out_dir):
        raise ValueError(f"the proposal directory {out_dir} would replace the rules it is made from")
    engine = Engine()
    leads = sorted((x for x in leads if x.label is not None), key=lambda x: x.id)
    total, done = replays(len(leads), target_precision is not None or capacity is not None), 0

    def on_lead() -> None:  # `progress(done, total)` every 100 replays and at the end
        nonlocal done
        done += 1
        if progress and (done % 100 == 0 or done == total):
            progress(done, total)

    with tempfile.TemporaryDirectory() as work:
        # One snapshot: every figure and the proposal come from the same files, even when someone
        # edits the live rules while tuning runs, and the recorded version is the one tuned.
        base = os.path.join(work, "base")
        copy_rule_dir(rules_dir, base)
        version = dir_version(base)
        validation = cross_validate(base, leads, target_precision, capacity, engine, on_lead)
        proposal, proposed_dir = propose(base, leads, target_precision, capacity, engine, work, on_lead)
        write_proposal(base, out_dir, proposal)
    report = {"leads": len(leads), "positives": sum(x.label for x in leads), "rules_version": version,
              "validation": validation,
              "rules": [{"rule": rid, "old": proposal.old[rid], "new": proposal.points[rid],
                         "fired": proposal.stats[rid][0],
                         "positive_rate_when_fired": None if proposal.stats[rid][1] is None else
                         round(proposal.stats[rid][1], 3), "note": proposal.notes.get(rid, "")}
                        for rid in proposal.points],
              "new_rules": [{"rule": c.id, "points": p, "evidence": c.evidence()} for c, p in proposal.candidates],
              "thresholds": proposal.thresholds}
    write_report(out_dir, report)
    return report
