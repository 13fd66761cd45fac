"""`leads show` and `leads list` with and without the rules' calibration, through the shipped CLI.

Two leads on a one-rule set: `big` scores 40 (employees at least 100), `small` scores 0. With the
calibration below, 40 reaches the step at 35 (0.72) and 0 lies between -20 and 10 (0.03).
"""
from __future__ import annotations

import csv
import io
import json

import pytest

from tests.calibrations import calibration_yaml
from tests.leadflow_cli import Leadflow, ev, write

RULES = """\
leadflow: 1
scoring:
  fit:
    - { id: big, when: { employees: { at_least: 100 } }, points: 40 }
"""
CALIBRATION = calibration_yaml([(-20, 0.03), (10, 0.21), (35, 0.725)], fitted_on=6424, positives=2461)


@pytest.fixture
def leads(tmp_path) -> Leadflow:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    cli = Leadflow(tmp_path / "t.db", rules)
    events = [ev("1", "big", "lead_updated", employees=500), ev("2", "small", "lead_updated", employees=5)]
    cli("ingest", write(tmp_path / "in.jsonl", events), check=True)
    return cli


def calibrate(cli: Leadflow) -> None:
    (cli.rules / "calibration.yaml").write_text(CALIBRATION)


def test_show_gives_the_likelihood_next_to_the_score(leads):
    calibrate(leads)
    shown = json.loads(leads("leads", "show", "big", "--json", check=True).stdout)
    assert (shown["score"], shown["likely_to_buy"]) == (40, 0.725)
    assert json.loads(leads("leads", "show", "small", "--json", check=True).stdout)["likely_to_buy"] == 0.03
    text = leads("leads", "show", "big", check=True).stdout.splitlines()
    assert text[1].startswith("Score 40 = fit 40 + engagement 0, likely to buy: 72% (as of ")  # whole percent


def test_show_without_a_calibration_says_nothing_of_it(leads):
    shown = json.loads(leads("leads", "show", "big", "--json", check=True).stdout)
    assert "likely_to_buy" in shown and shown["likely_to_buy"] is None
    text = leads("leads", "show", "big", check=True).stdout
    assert text.splitlines()[1].startswith("Score 40 = fit 40 + engagement 0 (as of ")
    assert "likely" not in text.lower() and "None" not in text


def test_list_has_a_column_and_a_key_with_a_calibration(leads):
    calibrate(leads)
    rows = json.loads(leads("leads", "list", "--json", check=True).stdout)
    assert [(r["id"], r["score"], r["likely_to_buy"]) for r in rows] == [("big", 40, 0.725), ("small", 0, 0.03)]
    text = leads("leads", "list", check=True).stdout.splitlines()
    assert text[0].split() == ["LEAD", "STAGE", "SCORE", "LIKELY", "TO", "BUY", "OWNER"]
    assert text[1].split() == ["big", "new", "40.00", "72%", "-"]
    assert text[2].split() == ["small", "new", "0.00", "3%", "-"]
    table = list(csv.DictReader(io.StringIO(leads("leads", "list", "--csv", check=True).stdout)))
    assert [(r["id"], r["likely_to_buy"]) for r in table] == [("big", "0.725"), ("small", "0.03")]


def test_list_without_a_calibration_is_unchanged(leads):
    rows = json.loads(leads("leads", "list", "--json", check=True).stdout)
    assert rows == [{"id": "big", "stage": "new", "score": 40, "owner": None},
                    {"id": "small", "stage": "new", "score": 0, "owner": None}]
    text = leads("leads", "list", check=True).stdout
    assert text.splitlines()[0].split() == ["LEAD", "STAGE", "SCORE", "OWNER"]
    assert "%" not in text and "None" not in text


def test_list_refuses_a_bad_calibration_with_its_position(leads):
    (leads.rules / "calibration.yaml").write_text(CALIBRATION.replace("0.725", "7.25"))
    proc = leads("leads", "list")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "calibration.yaml:8:32: BAD_PROBABILITY: " in proc.stderr
