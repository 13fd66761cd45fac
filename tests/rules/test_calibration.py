"""`calibration.yaml`: score -> probability of buying, loaded and checked with the rule set.

Lookups are checked against the step table written here (a score at least a step's score gets its
probability; below the first step, the first step's). Each problem of a hostile file is checked by
its code and the line and column it points at, through the shipped `leadflow rules check`.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from leadflow.core import LeadflowError
from leadflow.rules import copy_rule_dir, dir_version, load_calibration, load_rules
from tests.leadflow_cli import leadflow

RULES = """\
leadflow: 1
scoring:
  fit:
    - { id: big, when: { employees: { at_least: 100 } }, points: 10 }
"""
CALIBRATION = """\
# written by leadflow rules tune: probability of buying by score, from cross-validated outcomes
calibration:
  method: isotonic            # or platt
  fitted_on: 6424             # labelled leads
  positives: 2461
  steps:                      # score at least -> probability
    - {score: -20, probability: 0.03}
    - {score: 10, probability: 0.21}
    - {score: 35, probability: 0.72}
"""


def rule_dir(tmp_path: Path, calibration: str | None = CALIBRATION, name: str = "calibration.yaml") -> Path:
    directory = tmp_path / "rules"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(RULES)
    if calibration is not None:
        (directory / name).write_text(textwrap.dedent(calibration))
    return directory


@pytest.mark.parametrize("score, expected", [
    (-1000, 0.03),  # below the first step: the first step's probability
    (-20, 0.03),  # on a step
    (-19.99, 0.03),
    (9.5, 0.03),  # between two steps: the lower one's
    (10, 0.21),
    (34.99, 0.21),
    (35, 0.72),
    (10_000, 0.72),  # above the last step
])
def test_a_score_gets_the_probability_of_the_last_step_it_reaches(tmp_path, score, expected):
    rules = load_rules(str(rule_dir(tmp_path)))
    assert rules.likelihood(score) == expected
    assert rules.calibration.method == "isotonic"
    assert (rules.calibration.fitted_on, rules.calibration.positives) == (6424, 2461)


def test_without_a_calibration_there_is_no_likelihood(tmp_path):
    rules = load_rules(str(rule_dir(tmp_path, None)))
    assert rules.calibration is None and rules.likelihood(50) is None
    assert load_calibration(str(tmp_path / "rules")) is None


def test_a_score_that_is_not_a_number_has_no_likelihood(tmp_path):
    rules = load_rules(str(rule_dir(tmp_path)))
    assert rules.likelihood(float("nan")) is None
    assert rules.likelihood(float("inf")) is None


def test_one_step_and_a_platt_fit_without_counts_load(tmp_path):
    rules = load_rules(str(rule_dir(tmp_path, "calibration:\n  method: platt\n  steps: [{score: 0, probability: 0.5}]\n")))
    assert [rules.likelihood(s) for s in (-5, 0, 5)] == [0.5, 0.5, 0.5]
    assert rules.calibration.fitted_on is None


def test_the_calibration_counts_in_the_rules_version(tmp_path):
    without = load_rules(str(rule_dir(tmp_path / "a", None))).version
    with_it = load_rules(str(rule_dir(tmp_path / "b"))).version
    changed = load_rules(str(rule_dir(tmp_path / "c", CALIBRATION.replace("0.72", "0.73")))).version
    assert len({without, with_it, changed}) == 3
    assert dir_version(str(tmp_path / "b" / "rules")) == with_it  # what the service watches
    again = load_rules(str(rule_dir(tmp_path / "d"))).version
    assert again == with_it


def test_a_proposal_copy_keeps_the_calibration_and_the_version(tmp_path):
    source = rule_dir(tmp_path)
    copy_rule_dir(str(source), str(tmp_path / "copy"))
    copied = load_rules(str(tmp_path / "copy"))
    assert copied.version == load_rules(str(source)).version and copied.likelihood(40) == 0.72


def test_the_rule_files_come_first_so_rule_problems_never_point_at_the_calibration(tmp_path):
    rules = load_rules(str(rule_dir(tmp_path)))
    assert [Path(f).name for f in rules.files] == ["rules.yaml", "calibration.yaml"]


def test_a_calibration_alone_is_no_rule_set(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "calibration.yaml").write_text(CALIBRATION)
    with pytest.raises(LeadflowError) as err:
        load_rules(str(directory))
    assert [p.code for p in err.value.problems] == ["NO_RULE_FILES"]
    assert load_calibration(str(directory)).steps[-1].probability == 0.72  # it still reads on its own


def test_load_calibration_reports_a_bad_file(tmp_path):
    directory = rule_dir(tmp_path, CALIBRATION.replace("0.72", "1.72"))
    with pytest.raises(LeadflowError) as err:
        load_calibration(str(directory))
    assert [(p.code, p.location.line) for p in err.value.problems] == [("BAD_PROBABILITY", 9)]


STEPS = "calibration:\n  method: isotonic\n  steps:\n"
# (calibration.yaml, line, column, code, token at that position, hint fragment)
HOSTILE = [
    pytest.param(STEPS + "    - {score: 0, probability: 1.5}\n", 4, 31, "BAD_PROBABILITY", "1.5", "0.72 for 72%",
                 id="probability-above-1"),
    pytest.param(STEPS + "    - {score: 0, probability: -0.1}\n", 4, 31, "BAD_PROBABILITY", "-0.1", "share",
                 id="probability-below-0"),
    pytest.param(STEPS + "    - {score: 5, probability: 0.1}\n    - {score: 5, probability: 0.2}\n", 5, 15,
                 "SCORES_NOT_ASCENDING", "5", "lowest score up", id="score-repeated"),
    pytest.param(STEPS + "    - {score: 5, probability: 0.1}\n    - {score: 1, probability: 0.2}\n", 5, 15,
                 "SCORES_NOT_ASCENDING", "1", "lowest score up", id="score-descending"),
    pytest.param(STEPS + "    - {score: 1, probability: 0.3}\n    - {score: 5, probability: 0.2}\n", 5, 31,
                 "PROBABILITY_DECREASES", "0.2", "rules tune", id="probability-decreasing"),
    pytest.param(STEPS + "    - {score: .nan, probability: 0.2}\n", 4, 15, "BAD_VALUE", ".nan", None,
                 id="score-nan"),
    pytest.param(STEPS + "    - {score: 1, probability: .inf}\n", 4, 31, "BAD_VALUE", ".inf", None,
                 id="probability-inf"),
    pytest.param(STEPS + "    - {score: 1, probability: '0.2'}\n", 4, 31, "WRONG_TYPE", "'0.2'", None,
                 id="probability-text"),
    pytest.param(STEPS + "    - {score: 1, probabilty: 0.2}\n", 4, 18, "UNKNOWN_KEY", "probabilty",
                 "did you mean 'probability'?", id="step-key-misspelt"),
    pytest.param("calibration:\n  method: isotonic\n  steps: []\n", 3, 10, "NO_STEPS", "[]", "at least one",
                 id="no-steps"),
    pytest.param("calibration:\n  method: isotonic\n", 2, 3, "MISSING_KEY", "method", None, id="steps-missing"),
    pytest.param("calibration:\n  method: isotonic\n  steps: {score: 1}\n", 3, 10, "WRONG_TYPE", "{score", None,
                 id="steps-not-a-list"),
    pytest.param("calibration:\n  method: isotonik\n  steps: [{score: 0, probability: 0.5}]\n", 2, 11, "BAD_VALUE",
                 "isotonik", "did you mean 'isotonic'?", id="method-misspelt"),
    pytest.param("calibration:\n  method: isotonic\n  step: [{score: 0, probability: 0.5}]\n", 3, 3, "UNKNOWN_KEY",
                 "step", "did you mean 'steps'?", id="steps-misspelt"),
    pytest.param("calibrations:\n  method: isotonic\n", 1, 1, "UNKNOWN_KEY", "calibrations",
                 "did you mean 'calibration'?", id="top-key-misspelt"),
    pytest.param("calibration:\n  method: isotonic\n  fitted_on: 10\n  positives: 11\n"
                 "  steps: [{score: 0, probability: 0.5}]\n", 4, 14, "BAD_VALUE", "11", "positives are", id="positives-over-fitted"),
    pytest.param("calibration:\n  method: isotonic\n  fitted_on: -3\n  steps: [{score: 0, probability: 0.5}]\n",
                 3, 14, "BAD_VALUE", "-3", None, id="negative-count"),
    pytest.param("calibration:\n  method: isotonic\n  fitted_on: 10.5\n  steps: [{score: 0, probability: 0.5}]\n",
                 3, 14, "WRONG_TYPE", "10.5", None, id="count-not-integer"),
    pytest.param(STEPS + "".join(f"    - {{score: {i}, probability: 0.5}}\n" for i in range(101)), 104, 7,
                 "TOO_MANY_STEPS", "{score: 100", "merge", id="101-steps"),
    pytest.param("", 1, 1, "MISSING_KEY", "", "rules tune", id="empty-file"),
    pytest.param("- 1\n- 2\n", 1, 1, "WRONG_TYPE", "- 1", None, id="a-list"),
    pytest.param("calibration:\n  method: isotonic\n  steps: [{score: 0, probability: 0.5}\n", 4, 1, "YAML_SYNTAX",
                 "", None, id="yaml-syntax"),
]


@pytest.mark.parametrize("text, line, col, code, token, hint", HOSTILE)
def test_a_bad_calibration_fails_rules_check_at_its_position(tmp_path, text, line, col, code, token, hint):
    directory = rule_dir(tmp_path, None)
    (directory / "calibration.yaml").write_text(text)
    source = text.splitlines()
    if token:  # a guard against a typo in the hand-computed position
        assert source[line - 1][col - 1:].startswith(token), source[line - 1]
    proc = leadflow("rules", "check", str(directory), "--json", timeout=60)
    assert proc.returncode == 1, proc.stderr
    found = json.loads(proc.stdout)
    assert found["valid"] is False
    problems = [(Path(p["location"]["file"]).name, p["location"]["line"], p["location"]["column"], p["code"])
                for p in found["problems"]]
    assert ("calibration.yaml", line, col, code) in problems
    assert {name for name, *_ in problems} == {"calibration.yaml"}
    assert len(problems) <= 2  # a misspelt key is also a missing one; nothing else
    if hint:
        assert hint in found["problems"][problems.index(("calibration.yaml", line, col, code))]["hint"]


def test_text_output_names_the_file_line_and_column(tmp_path):
    directory = rule_dir(tmp_path, CALIBRATION.replace("{score: 35, probability: 0.72}",
                                                       "{score: 35, probability: 0.12}"))
    proc = leadflow("rules", "check", str(directory), timeout=60)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.endswith("calibration.yaml:9:32: PROBABILITY_DECREASES: probability 0.12 is below the previous "
                          "step's 0.21"), first
    assert "hint: a higher score cannot mean a lower chance of buying" in proc.stderr


def test_a_good_calibration_passes_rules_check_silently(tmp_path):
    proc = leadflow("rules", "check", str(rule_dir(tmp_path)), timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_two_calibration_files_are_refused(tmp_path):
    directory = rule_dir(tmp_path)
    (directory / "calibration.yml").write_text(CALIBRATION)
    with pytest.raises(LeadflowError) as err:
        load_rules(str(directory))
    assert [(Path(p.location.file).name, p.code) for p in err.value.problems] == [("calibration.yml", "SECTION_TWICE")]
