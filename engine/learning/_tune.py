"""`leadflow rules tune`: better points, new rules and thresholds, learnt from outcomes and feedback.

1. Replay every labelled lead through the current rules and note how often each rule counted.
2. Find candidate rules: tests on one attribute and combinations of up to three from shallow trees,
   and event types no rule counts (_atoms, _rulefit); choose among them with an L1 logistic
   regression within the rule budget, the existing rules always in (_fit).
3. Write the points as whole numbers on a fixed scale, and move the score thresholds: to the target
   the user gives (SQL precision, MQL capacity), or else to admit the same share of leads as before.
4. Measure before/after by 5-fold cross-validation: every figure for the proposal comes from leads
   the fold's proposal was not fitted on; the held-out scores also give the calibration (_calibrate).
The proposal is written as a minimal text edit of the rule files (tune_yaml), so the marketer's
comments, key order and layout survive and the change reads as a normal diff. Same input, same output.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Callable

from leadflow.core import parse_time
from leadflow.intake import LabelledLead
from leadflow.rules import Compiled, LeadState, Leaf, RuleSet, copy_rule_dir, dir_version, inside, load_compiled, walk
from leadflow.runtime import Engine

from ._calibrate import OutOfFold, for_model, held_out_probabilities, write_calibration
from ._evaluate import Scored, metrics, replay
from ._fit import add_gains, fit
from ._model import Proposal
from ._quality import brier, ece
from ._report import write_report
from ._tune_yaml import edit_rule_files

FOLDS = 5


def _nothing() -> None:
    return None


def _features(compiled: Compiled, leads: list[LabelledLead], engine: Engine,
              on_lead: Callable[[], None] = _nothing) -> tuple[list[dict], list[float]]:
    """How often each rule counted for each lead, and the lead's score, under the current rules."""
    rows, scores = [], []
    for item in leads:
        on_lead()
        state = LeadState(item.id)
        for ev in item.events:
            engine.evaluate(compiled, state, ev, parse_time(ev["at"]))
        counts = {rid: 1.0 for rid in state.fit_rules}
        counts.update({rid: float(t.count) for rid, t in state.tallies.items()})
        rows.append(counts)
        scores.append(state.score)
    return rows, scores


def score_floor(cond: object) -> float | None:
    """The `score: { at_least: N }` of a stage gate (the first one), which tune may move."""
    for node in walk(cond):
        if isinstance(node, Leaf) and node.field == "$score" and node.op == "at_least":
            return float(node.arg)
    return None


def gate_shares(rules: RuleSet, scores: list[float]) -> dict:
    """The share of leads each gate's score threshold admits under the current rules."""
    out = {}
    for stage, cond in (("mql", rules.mql), ("sql", rules.sql)):
        floor = score_floor(cond)
        if floor is not None and scores:
            out[stage] = sum(1 for x in scores if x >= floor) / len(scores)
    return out


def same_shares(scored: list[Scored], shares: dict) -> dict:
    """Thresholds on the proposal's scores that admit the same share of leads as the current ones did:
    new points are on a scale of their own, and a gate left at its old number would admit nobody or
    everybody."""
    ordered = sorted((s.score for s in scored), reverse=True)
    out = {}
    for stage, share in shares.items():
        if ordered:
            k = round(len(ordered) * share)
            out[stage] = ordered[k - 1] if k > 0 else ordered[0] + 1
    return out


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
            engine: Engine, workdir: str, on_lead: Callable[[], None] = _nothing,
            gains: bool = False) -> tuple[Proposal, str]:
    """Fit on `leads`, write the proposal into a fresh directory under workdir, and return both.
    With `gains`, each new rule's cross-validated AUC gain is measured too (see _fit.add_gains)."""
    compiled = load_compiled(rules_dir)
    rows, scores = _features(compiled, leads, engine, on_lead)
    proposal, d, model = fit(compiled.rules, leads, rows)
    if gains:
        add_gains(proposal, d, model, leads, [_fold(x.id) for x in leads])
    out = tempfile.mkdtemp(dir=workdir)
    write_proposal(rules_dir, out, proposal)
    scored = replay(load_compiled(out), leads, engine, on_lead)
    if proposal.points != proposal.old or proposal.candidates:
        proposal.thresholds = same_shares(scored, gate_shares(compiled.rules, scores))
    proposal.thresholds.update(choose_thresholds(scored, target_precision, capacity))
    write_proposal(out, out, proposal)
    return proposal, out


def cross_validate(rules_dir: str, leads: list[LabelledLead], target_precision: float | None,
                   capacity: float | None, engine: Engine, on_lead: Callable[[], None] = _nothing
                   ) -> tuple[dict, list[OutOfFold]]:
    """Before/after figures on held-out leads, and every lead's held-out score for the calibration."""
    before, after, oof = [], [], []
    current = load_compiled(rules_dir)
    with tempfile.TemporaryDirectory() as work:
        for k in range(FOLDS):
            train = [x for x in leads if _fold(x.id) != k]
            test = [x for x in leads if _fold(x.id) == k]
            proposal, out = propose(rules_dir, train, target_precision, capacity, engine, work, on_lead)
            held_out = replay(load_compiled(out), test, engine, on_lead)
            after += held_out
            oof += [OutOfFold(s.score, s.label, proposal.intercept, k) for s in held_out if s.label in (0, 1)]
            before += replay(current, test, engine, on_lead)
    result = {"before": metrics(before), "after": metrics(after), "folds": FOLDS}
    rows = [s for s in before if s.label in (0, 1)]
    cal = current.rules.calibration
    result["before"]["brier"] = round(brier([s.label for s in rows], [cal.probability(s.score) for s in rows]), 4) \
        if cal and rows else None
    result["before"]["ece"] = round(ece([s.label for s in rows], [cal.probability(s.score) for s in rows]), 4) \
        if cal and rows else None
    labels, probs = held_out_probabilities(oof)
    result["after"]["brier"] = None if not probs else round(brier(labels, probs), 4)
    result["after"]["ece"] = None if not probs else round(ece(labels, probs), 4)
    return result, oof


def replays(leads: int) -> int:
    """How many lead replays `tune` makes: in each of the FOLDS folds the training leads twice (for
    their features, then for the thresholds) and the test leads twice (current and proposed rules),
    then every lead twice more for the final proposal."""
    return leads * ((FOLDS - 1) * 2 + 2 + 2)


def tune(rules_dir: str, leads: list[LabelledLead], out_dir: str, target_precision: float | None = None,
         capacity: float | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the proposal for `rules_dir` into `out_dir` (a directory of its own: it is replaced)
    and return the report. The report's `rules_version` is the version the proposal was made from;
    applying it anywhere else is refused (see ruledir.overlay_rule_files). The proposal always has a
    calibration.yaml of its own (from the cross-validated scores), never the old rules' one."""
    if inside(rules_dir, out_dir):
        raise ValueError(f"the proposal directory {out_dir} would replace the rules it is made from")
    engine = Engine()
    leads = sorted((x for x in leads if x.label is not None), key=lambda x: x.id)
    total, done = replays(len(leads)), 0

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
        validation, oof = cross_validate(base, leads, target_precision, capacity, engine, on_lead)
        proposal, proposed_dir = propose(base, leads, target_precision, capacity, engine, work, on_lead, gains=True)
        write_proposal(base, out_dir, proposal)
    calibration = for_model(oof, proposal.intercept)
    old_calibration = os.path.join(out_dir, "calibration.yaml")
    if os.path.exists(old_calibration):
        os.remove(old_calibration)  # the old rules' table does not describe the new points
    if calibration is not None:
        write_calibration(out_dir, calibration, "written by leadflow rules tune: how often leads at each score "
                                                "bought, from cross-validated scores")
    report = {"leads": len(leads), "positives": sum(x.label for x in leads), "rules_version": version,
              "validation": validation, "labels": proposal.labels,
              "rules": [{"rule": rid, "old": proposal.old[rid], "new": proposal.points[rid],
                         "from_outcomes": proposal.from_outcomes.get(rid),
                         "fired": proposal.stats[rid][0],
                         "positive_rate_when_fired": None if proposal.stats[rid][1] is None else
                         round(proposal.stats[rid][1], 3), "note": proposal.notes.get(rid, "")}
                        for rid in proposal.points],
              "new_rules": [{"rule": c.id, "points": p, "from_outcomes": proposal.from_outcomes.get(c.id),
                             "when": c.condition, "on": c.event, "evidence": c.evidence(), "support": c.n,
                             "positive_rate": round(c.rate, 3), "base_rate": round(c.base, 3), "cv_gain": c.gain}
                            for c, p in proposal.candidates],
              "thresholds": proposal.thresholds,
              "calibration": None if calibration is None else
              [{"score": st.score, "probability": st.probability} for st in calibration.steps],
              "score_bands": score_bands(oof, proposal.intercept)}
    write_report(out_dir, report)
    return report


def score_bands(oof: list[OutOfFold], intercept: float, bands: int = 10) -> list[dict]:
    """Held-out leads in `bands` groups of equal size by score (on the final model's scale): the score
    range, how many leads, and how many of them bought. What TUNING.md shows a manager."""
    ordered = sorted(oof, key=lambda o: o.score + o.intercept - intercept)
    out = []
    for b in range(bands):
        part = ordered[b * len(ordered) // bands:(b + 1) * len(ordered) // bands]
        if not part:
            continue
        lo, hi = (round(part[i].score + part[i].intercept - intercept, 1) for i in (0, -1))
        out.append({"from": lo, "to": hi, "leads": len(part), "positives": sum(o.label for o in part),
                    "rate": round(sum(o.label for o in part) / len(part), 3)})
    return out
