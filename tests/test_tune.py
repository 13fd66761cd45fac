"""CSV import, eval, tune and backtest, on the real X Education leads."""
from __future__ import annotations

import csv
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datasets import ROOT, dataset

EXAMPLE = ROOT / "rules" / "examples" / "x-education"
MAPPING = str(EXAMPLE / "mapping.yaml")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, cwd=ROOT)
    if check and r.returncode != 0:
        raise AssertionError(r.stdout + r.stderr)
    return r


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The first 1,500 rows: enough to learn from, quick enough for CI."""
    path = tmp_path_factory.mktemp("data") / "sample.csv"
    with open(dataset("x-education", "leads_train.csv"), newline="") as src, open(path, "w", newline="") as dst:
        rows = csv.reader(src)
        writer = csv.writer(dst)
        for i, row in enumerate(rows):
            if i > 1500:
                break
            writer.writerow(row)
    return path


def test_eval_reports_the_contract_shape_and_the_tuned_rules_do_better(sample):
    start = json.loads(cli("eval", "--rules", str(EXAMPLE / "start"), "--data", str(sample), "--mapping", MAPPING,
                           "--json").stdout)
    assert set(start) >= {"leads", "positives", "auc", "precision_at", "stages", "sql_precision", "sql_recall"}
    assert start["leads"] == 1500 and 0 < start["positives"] < 1500 and set(start["precision_at"]) == {"0.1", "0.3"}
    tuned = json.loads(cli("eval", "--rules", str(EXAMPLE / "tuned"), "--data", str(sample), "--mapping", MAPPING,
                           "--json").stdout)
    assert tuned["auc"] > start["auc"] and tuned["sql_recall"] > start["sql_recall"]


def test_tune_is_deterministic_cross_validated_and_keeps_the_files_readable(sample, tmp_path):
    args = ["rules", "tune", "--rules", str(EXAMPLE / "start"), "--data", str(sample), "--mapping", MAPPING,
            "--capacity", "30%", "--target-precision", "0.8", "--json"]
    first = json.loads(cli(*args, "--out", str(tmp_path / "a")).stdout)
    second = json.loads(cli(*args, "--out", str(tmp_path / "b")).stdout)
    assert first == second
    for name in ("scoring.yaml", "qualification.yaml", "TUNING.md"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    v = first["validation"]
    assert v["folds"] == 5 and v["after"]["auc"] > v["before"]["auc"]
    assert cli("rules", "check", str(tmp_path / "a")).returncode == 0
    original = (EXAMPLE / "start" / "scoring.yaml").read_text().splitlines()
    proposed = (tmp_path / "a" / "scoring.yaml").read_text().splitlines()
    comments = [line for line in original if line.strip().startswith("#")]
    assert comments and all(c in proposed for c in comments)  # the marketer's comments survive
    changed = [(a, b) for a, b in zip(original, proposed) if a != b]
    assert changed and all(a.strip().startswith("points:") and b.strip().startswith("points:") for a, b in changed)
    changed_rules = {r["rule"] for r in first["rules"] if r["old"] != r["new"]}
    assert changed_rules and all(r["fired"] >= 0 for r in first["rules"])
    assert first["thresholds"].keys() <= {"mql", "sql"} and "mql" in first["thresholds"]
    report = (tmp_path / "a" / "TUNING.md").read_text()
    assert "cross-validated" in report and "| AUC |" in report


def test_the_shipped_tuned_rules_are_what_the_documented_command_produces(tmp_path):
    out = tmp_path / "tuned"
    cli("rules", "tune", "--rules", str(EXAMPLE / "start"), "--data", str(dataset("x-education", "leads_train.csv")),
        "--mapping", MAPPING, "--out", str(out), "--target-precision", "0.8", "--capacity", "30%")
    for name in ("scoring.yaml", "qualification.yaml", "TUNING.md"):
        assert (out / name).read_text() == (EXAMPLE / "tuned" / name).read_text(), name


def test_csv_ingest_is_idempotent_and_tune_learns_from_the_database(sample, tmp_path):
    db = str(tmp_path / "x.db")
    base = ["--db", db, "--rules", str(EXAMPLE / "start")]
    first = json.loads(cli(*base, "ingest", "--mapping", MAPPING, str(sample), "--json").stdout)
    assert first["applied"] > 1500 and first["rejected"] == 0
    again = json.loads(cli(*base, "ingest", "--mapping", MAPPING, str(sample), "--json").stdout)
    assert again["applied"] == 0 and again["duplicates"] == first["applied"]
    shown = json.loads(cli(*base, "leads", "show", "2a272436-5132-4136-86fa-dcc88c88f482", "--json").stdout)
    assert shown["attributes"]["lead_origin"] == "API" and "specialization" not in shown["attributes"]  # "Select"
    report = json.loads(cli(*base, "rules", "tune", "--out", str(tmp_path / "fromdb"), "--json").stdout)
    assert report["leads"] == 1500 and report["validation"]["after"]["auc"] > 0.5
    bt = json.loads(cli(*base, "rules", "backtest", "--candidate", str(tmp_path / "fromdb"), "--json").stdout)
    assert bt["leads"] == 1500 and bt["events"] == first["applied"]
    assert sum(bt["stages"]["current"].values()) == sum(bt["stages"]["candidate"].values()) == 1500
    fb = bt["feedback"]
    assert fb["accepted"] > 0 and 0 <= fb["accepted_lost"] <= fb["accepted"]
    assert 0 <= fb["rejected_filtered"] <= fb["rejected"]
    assert json.loads(cli(*base, "ingest", "--mapping", MAPPING, str(sample), "--json").stdout)["applied"] == 0


def test_mapping_problems_point_at_the_mapping(tmp_path, sample):
    bad = tmp_path / "m.yaml"
    bad.write_text("leadflow_mapping: 1\nlead: Prospect Id\nattributes:\n  - { column: Lead Origin, type: txt }\n")
    r = cli("eval", "--data", str(sample), "--mapping", str(bad), "--rules", str(EXAMPLE / "start"), check=False)
    assert r.returncode == 1
    assert f"{bad}:2:7: UNKNOWN_COLUMN: the CSV has no column 'Prospect Id'" in r.stderr
    assert "did you mean 'Prospect ID'?" in r.stderr
    assert f"{bad}:4:34: BAD_VALUE: unknown type 'txt'" in r.stderr
