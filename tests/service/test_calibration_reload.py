"""A running service and calibration.yaml: adding, changing or removing it is a new rules version
like any rule file; a bad one is reported with its position and the last good rules keep running."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

from leadflow.service import LeadService
from tests.calibrations import calibration_yaml

RULES = textwrap.dedent("""\
    leadflow: 1
    events: { page_view: a page view }
    scoring:
      engagement:
        - { id: views, on: page_view, points: 5 }
    """)
CALIBRATION = calibration_yaml([(0, 0.1), (10, 0.4)])


def likelihood(svc: LeadService, score: float) -> float | None:
    return svc.pipeline.compiled.rules.likelihood(score)


def test_a_calibration_is_reloaded_like_a_rule_file_and_a_bad_one_keeps_the_last_good_rules(tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    svc = LeadService(str(tmp_path / "t.db"), str(rules))
    try:
        plain = svc.pipeline.version
        assert likelihood(svc, 12) is None

        (rules / "calibration.yaml").write_text(CALIBRATION)
        assert svc.reload_rules() is True
        calibrated = svc.pipeline.version
        assert calibrated != plain and likelihood(svc, 12) == 0.4

        (rules / "calibration.yaml").write_text(CALIBRATION.replace("0.4", "0.04"))  # lower than the step before
        assert svc.reload_rules() is False
        assert [(p.code, os.path.basename(p.location.file), p.location.line, p.location.column)
                for p in svc.rule_problems] == [("PROBABILITY_DECREASES", "calibration.yaml", 5, 32)]
        assert svc.pipeline.version == calibrated and likelihood(svc, 12) == 0.4  # the last good rules run on

        (rules / "calibration.yaml").unlink()
        assert svc.reload_rules() is True
        assert svc.rule_problems == [] and svc.pipeline.version == plain and likelihood(svc, 12) is None
    finally:
        svc.store.close()
