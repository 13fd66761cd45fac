"""`leadflow bench --backtest`: the backtest of the log the benchmark ingested, next to the other figures,
against a candidate that really differs from the rules."""
from __future__ import annotations

import json
import textwrap

import pytest

from tests.leadflow_cli import SMALL_RULES, leadflow


def test_bench_backtest_reports_its_figures_next_to_the_others():
    result = json.loads(leadflow("bench", "--leads", "200", "--events-per-lead", "3", "--backtest", "--json",
                                 check=True).stdout)
    backtest = result["backtest"]
    assert {"events", "seconds", "events_per_s", "ratio", "jobs"} <= set(backtest)
    assert {"events", "events_per_s", "raw_engine_events_per_s", "ratio"} <= set(result)
    assert backtest["events"] == result["events"] == 600 and backtest["jobs"] == 1
    assert backtest["events_per_s"] > 0
    assert backtest["ratio"] == pytest.approx(backtest["events_per_s"] / result["raw_engine_events_per_s"], abs=0.01)
    assert backtest["changed"] > 0, "the candidate must move some leads, or the replay compares a rule set with itself"
    assert backtest["candidate"].startswith("qualification.yaml:")


def test_bench_backtest_needs_a_threshold_it_can_change(tmp_path):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(SMALL_RULES))
    r = leadflow("bench", "--leads", "20", "--events-per-lead", "2", "--backtest", "--rules", str(tmp_path), "--json")
    assert r.returncode == 1 and "BENCH_NO_CANDIDATE" in r.stderr and not r.stdout
