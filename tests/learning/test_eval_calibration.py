"""`leadflow eval` on rules with a calibration.yaml: the Brier score and the expected calibration error
of "likely to buy" against the outcomes, through the shipped CLI, and null for rules without one.

The rule set gives 10 points per visit up to three, so a lead's score is 10 * min(visits, 3), and the
calibration turns 0/10/20/30 into 0.1/0.3/0.55/1.0: four probabilities in four different tenths
(bins 1, 3, 5 and the last, where exactly 1 belongs), so the expected figures are computed here per
step, without binning.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.calibrations import calibration_yaml
from tests.leadflow_cli import leadflow

RULES = """\
leadflow: 1
scoring:
  fit:
    - { id: one, when: { visits: { at_least: 1 } }, points: 10 }
    - { id: two, when: { visits: { at_least: 2 } }, points: 10 }
    - { id: three, when: { visits: { at_least: 3 } }, points: 10 }
"""
CALIBRATION = calibration_yaml([(0, 0.1), (10, 0.3), (20, 0.55), (30, 1.0)])
PROBABILITY = {0: 0.1, 1: 0.3, 2: 0.55, 3: 1.0}  # by visits
MAPPING = """\
leadflow_mapping: 1
lead: id
at: 2026-11-02T09:00:00Z
attributes:
  - { column: visits, type: number }
outcome: { column: won, won: ['1'], lost: ['0'] }
"""


def _leads() -> list[tuple[str, int, int]]:
    """(id, visits, won) for 37 leads: visits cycle 0..3, and a lead wins on a fixed pattern that makes
    each step's observed rate differ from its probability (0 visits win 1 in 5, 3 visits 2 in 3)."""
    out = []
    for i in range(37):
        visits = i % 4
        won = {0: i % 5 == 0, 1: i % 3 == 0, 2: i % 2 == 0, 3: i % 3 != 0}[visits]
        out.append((f"c{i:02d}", visits, int(won)))
    return out


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    (tmp_path / "map.yaml").write_text(MAPPING)
    (tmp_path / "leads.csv").write_text("id,visits,won\n" + "".join(f"{i},{v},{w}\n" for i, v, w in _leads()))
    return {"rules": rules, "data": tmp_path / "leads.csv", "mapping": tmp_path / "map.yaml"}


def _eval(files: dict[str, Path], *flags: str) -> str:
    return leadflow("eval", "--data", files["data"], "--mapping", files["mapping"], "--rules", files["rules"],
                    *flags, check=True).stdout


def _expected() -> tuple[float, float]:
    leads = _leads()
    n = len(leads)
    brier = sum((PROBABILITY[v] - won) ** 2 for _, v, won in leads) / n
    gap = 0.0
    for visits, p in PROBABILITY.items():  # one step per bin: the bin's gap is the step's
        step = [won for _, v, won in leads if v == visits]
        gap += abs(p * len(step) - sum(step))
    return round(brier, 4), round(gap / n, 4)


def test_eval_gives_brier_and_ece_of_the_calibration(files):
    (files["rules"] / "calibration.yaml").write_text(CALIBRATION)
    result = json.loads(_eval(files, "--json"))
    brier, ece = _expected()
    assert result["leads"] == 37 and result["positives"] == sum(w for *_, w in _leads())
    assert (result["brier"], result["ece"]) == (brier, ece)
    assert 0 < ece and 0 < brier < 0.25  # the figures are not trivially zero
    text = _eval(files)
    assert f"brier: {brier}" in text and f"ece (10 bins): {ece}" in text


def test_eval_without_a_calibration_gives_null(files):
    result = json.loads(_eval(files, "--json"))
    assert result["brier"] is None and result["ece"] is None
    assert result["leads"] == 37 and result["auc"] is not None  # the rest is still there
