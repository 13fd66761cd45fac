"""`leadflow bench`: the figures it reports have the contract's shape and agree with each other. The
long runs behind the README's figures are marked slow (run them with `-m slow`)."""
from __future__ import annotations

import json

import pytest

from tests.leadflow_cli import leadflow


def test_bench_small_run_reports_the_contract_shape():
    out = leadflow("bench", "--leads", "200", "--events-per-lead", "5", "--json", check=True)
    result = json.loads(out.stdout)
    assert {"events", "leads", "events_per_s", "raw_engine_events_per_s", "ratio", "peak_rss_mb"} <= set(result)
    assert result["events"] == 1000 and result["leads"] == 200 and result["rejected"] == 0
    assert result["events_per_s"] > 0 and result["raw_engine_events_per_s"] > result["events_per_s"]
    assert result["ratio"] == pytest.approx(result["events_per_s"] / result["raw_engine_events_per_s"], abs=0.01)
    slices = result["raw_engine_slices"]  # a short run: the baseline is topped up to 3,000 facts, 1,000 a slice
    assert slices["count"] == 3 and slices["p10"] <= slices["p90"]


def test_the_baseline_goes_round_its_facts_on_fresh_hosts_and_counts_every_slice():
    from leadflow.rules import load_compiled
    from leadflow.runtime import Baseline
    from tests.datasets import ROOT

    compiled = load_compiled(str(ROOT / "rules"))
    facts = [{"sid": "0", "id": f"f{i}", "k": "i", "t": "page_view", "u": 0} for i in range(250)]
    baseline = Baseline(compiled, facts)
    assert baseline.run(600) > 0 and baseline.run(400) > 0  # four passes over the 250 facts
    assert baseline.asserted == 1000 and len(baseline.slices) == 2
    assert baseline.rate == pytest.approx(1000 / baseline.seconds)


@pytest.mark.slow
def test_bench_at_100k_leads_meets_the_targets():
    out = leadflow("bench", "--leads", "100000", "--events-per-lead", "10", "--json", check=True, timeout=3600)
    result = json.loads(out.stdout)
    assert result["events_per_s"] >= 3000 and result["peak_rss_mb"] <= 1024


def test_scheduler_bench_small_run(tmp_path):
    db = str(tmp_path / "b.db")
    leadflow("bench", "--leads", "400", "--events-per-lead", "5", "--db", db, "--json", check=True)
    out = leadflow("bench", "--scheduler", "--db", db, "--json", check=True)
    result = json.loads(out.stdout)
    assert result["leads"] == 400 and result["timers_due"] == 4 and result["ticks"] == 4
    assert result["nurture_steps"] > 0 and result["steps_per_s"] > 0
    assert result["ticks_per_s"] > 0  # the figures themselves are measured and written in the README


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bench_jobs_compares_n_processes_with_one_in_the_same_run_and_leaves_nothing_behind(backend, request):
    """`--jobs 2`: the same events ingested by one process and by two, each on a fresh scratch database
    (on PostgreSQL a schema of the database given, dropped after)."""
    args = ["bench", "--leads", "200", "--events-per-lead", "5", "--jobs", "2", "--json"]
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        args += ["--db", url]
    result = json.loads(leadflow(*args, check=True, timeout=600).stdout)
    parallel = result["parallel"]
    assert result["backend"] == parallel["backend"] == backend
    assert parallel["jobs"] == 2 and parallel["events"] == 1000 == result["events"]
    assert parallel["speedup"] == pytest.approx(parallel["events_per_s"] / parallel["one_process_events_per_s"],
                                                abs=0.01)
    if url:
        from leadflow.store import Store

        store = Store(url, upgrade=False)
        try:
            left = store.sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?",
                             ("leadflow_bench%",))
            assert left == []
            assert store.count("events") == 1000  # the in-process run wrote into the database given
        finally:
            store.close()


def test_bench_refuses_a_database_that_already_holds_events(tmp_path):
    """Its events would all be duplicates and the rate 0: an error that says so, not a figure."""
    db = str(tmp_path / "b.db")
    leadflow("bench", "--leads", "20", "--events-per-lead", "2", "--db", db, "--json", check=True)
    again = leadflow("bench", "--leads", "20", "--events-per-lead", "2", "--db", db, "--json")
    assert again.returncode == 1 and "BENCH_DB_NOT_EMPTY" in again.stderr and again.stdout == ""


def test_bench_webhook_drives_a_real_server_and_counts_every_acknowledged_event():
    """`--webhook`: a real `leadflow serve` on loopback gets every event as its own request over several
    connections; the run fails unless each answer is a 200, so the count is of acknowledged events."""
    out = leadflow("bench", "--webhook", "--leads", "30", "--events-per-lead", "3", "--connections", "4", "--json",
                   check=True, timeout=120)
    result = json.loads(out.stdout)["webhook"]
    assert result["events"] == 90 and result["connections"] == 4
    # `seconds` is rounded to 0.01 s, which on a run this short is several percent of it
    seconds = result["seconds"]
    assert 90 / (seconds + 0.005) - 1 <= result["events_per_s"] <= 90 / max(seconds - 0.005, 0.001) + 1
    # the raw engine, timed in the same run (before the server starts and after it stops), as the ratio's base
    assert result["raw_engine_events_per_s"] > 0 and result["raw_engine_slices"]["count"] >= 2
    assert result["ratio"] == pytest.approx(result["events_per_s"] / result["raw_engine_events_per_s"], abs=0.001)


def test_bench_webhook_runs_alone():
    out = leadflow("bench", "--webhook", "--jobs", "2")
    assert out.returncode == 2 and "--webhook runs alone" in out.stderr

