"""TUNING.md: the proposal explained for the person who approves it.

What it measured (cross-validated before/after), what a score means (held-out leads by score band,
and the calibration written beside the rules), what changed (points, with the part the reps' feedback
moved), what is new (each rule with its evidence) and the thresholds.
"""
from __future__ import annotations

import os
from typing import Any


def _f(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def _split(new: float, from_outcomes: int | None) -> tuple[str, str]:
    if from_outcomes is None:
        return "—", "—"
    return f"{from_outcomes:g}", f"{new - from_outcomes:+g}"


def write_report(directory: str, report: dict) -> None:
    b, a = report["validation"]["before"], report["validation"]["after"]
    labels = report.get("labels") or {}
    out, fb = labels.get("outcome", {}), labels.get("feedback", {})
    lines = ["# Tuning report", "",
             f"Learnt from {report['leads']} labelled leads ({report['positives']} positive): "
             f"{out.get('rows', 0)} outcomes (weight {out.get('weight', 0):g}) and {fb.get('rows', 0)} rep verdicts "
             f"(weight {fb.get('weight', 0):g}; see `feedback.weights`). Figures are "
             f"{report['validation']['folds']}-fold cross-validated: each proposal is measured on leads it was "
             "not fitted on.", "",
             "| measure | current rules | proposal |", "| --- | --- | --- |",
             f"| AUC | {_f(b['auc'])} | {_f(a['auc'])} |",
             f"| precision, top 10% | {_f(b['precision_at']['0.1'])} | {_f(a['precision_at']['0.1'])} |",
             f"| precision, top 30% | {_f(b['precision_at']['0.3'])} | {_f(a['precision_at']['0.3'])} |",
             f"| SQL precision | {_f(b['sql_precision'])} | {_f(a['sql_precision'])} |",
             f"| SQL recall | {_f(b['sql_recall'])} | {_f(a['sql_recall'])} |",
             f"| Brier score (likely to buy) | {_f(b.get('brier'))} | {_f(a.get('brier'))} |",
             f"| expected calibration error (10 bins) | {_f(b.get('ece'))} | {_f(a.get('ece'))} |", ""]
    bands = report.get("score_bands") or []
    if bands:
        lines += ["## What a score means", "",
                  "Held-out leads in ten equal groups by their proposed score, and how many of them bought. "
                  "`calibration.yaml` turns a score into \"likely to buy\" from the same held-out scores "
                  f"({len(report.get('calibration') or [])} steps).", "",
                  "| score | leads | bought | observed rate |", "| --- | --- | --- | --- |"]
        lines += [f"| {x['from']:g} to {x['to']:g} | {x['leads']} | {x['positives']} | {_pct(x['rate'])} |"
                  for x in bands]
        lines.append("")
    lines += ["## Points", "",
              "`from outcomes` is what the outcomes alone would give; `feedback` is what the reps' verdicts "
              "added on top.", "",
              "| rule | old | new | from outcomes | feedback | fired on | positive when fired |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["rules"]:
        mark = " (changed)" if r["old"] != r["new"] else ""
        note = f" {r['note']}" if r.get("note") else ""
        alone, moved = _split(r["new"], r.get("from_outcomes"))
        lines.append(f"| `{r['rule']}` | {r['old']:g} | {r['new']}{mark}{note} | {alone} | {moved} | {r['fired']} | "
                     f"{_pct(r['positive_rate_when_fired'])} |")
    lines += ["", f"## New rules ({len(report['new_rules'])})", ""]
    if report["new_rules"]:
        lines += ["| rule | points | from outcomes | feedback | evidence |", "| --- | --- | --- | --- | --- |"]
        for r in report["new_rules"]:
            alone, moved = _split(r["points"], r.get("from_outcomes"))
            lines.append(f"| `{r['rule']}` | {r['points']:+d} | {alone} | {moved} | {r['evidence']} |")
    else:
        lines.append("- none")
    lines += ["", "## Thresholds", ""]
    lines += [f"- {stage.upper()} gate: score at least {value:g}" for stage, value in report["thresholds"].items()] or [
        "- unchanged (pass --target-precision or --capacity)"]
    with open(os.path.join(directory, "TUNING.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
