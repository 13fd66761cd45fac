"""`leadflow rules test`: the bundled tests pass and cover every rule; failures point at file:line."""
from __future__ import annotations

import json
import shutil

from tests.leadflow_cli import ROOT
from tests.leadflow_cli import leadflow as run


def test_bundled_rule_tests_pass_and_cover_every_rule():
    r = run("rules", "test", "rules", "--coverage", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["tests"] >= 8 and data["passed"] == data["tests"] and data["untested"] == []


def test_a_failing_expectation_points_at_its_line(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    (rules / "smoke_test.yaml").write_text(
        "leadflow: 1\n"
        "tests:\n"
        "  - name: a VP is not an SQL yet\n"
        "    attributes: { title: VP Sales }\n"
        "    expect:\n"
        "      stage: sql\n"
        "      fired: [senior_title, webinar]\n")
    r = run("rules", "test", str(rules), "--coverage")
    assert r.returncode == 1
    assert f"{rules}/smoke_test.yaml:6: expected stage sql, got new (test 'a VP is not an SQL yet')" in r.stderr
    assert f"{rules}/smoke_test.yaml:7: expected webinar to fire" in r.stderr
    assert "0 of 1 rule tests passed" in r.stderr
    assert "untested rules:" in r.stdout and "demo_request" in r.stdout


def test_malformed_test_files_are_problems_with_positions(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    (rules / "bad_test.yaml").write_text("leadflow: 1\ntests:\n  - name: x\n    expct: { stage: new }\n")
    r = run("rules", "test", str(rules))
    assert r.returncode == 1
    assert f"{rules}/bad_test.yaml:4:5: UNKNOWN_KEY: unknown key 'expct' in a test" in r.stderr
    assert "did you mean 'expect'?" in r.stderr
