"""`leadflow rules backtest --jobs N --sample P%`: the same answer whatever the number of processes, a
sample that is the same leads every time, and usage errors that say what is wrong.

The log is generated visit traffic (the benchmark's) plus reps' verdicts on some leads, ingested once per
backend; the candidate is the bundled rules with the MQL gate raised from 50 to 60, so some leads end in
another stage and some verdicts count as lost or filtered.
"""
from __future__ import annotations

import json
import shutil
from itertools import groupby
from pathlib import Path

import pytest

from leadflow.core import LeadflowError, format_time, in_sample, parse_time
from leadflow.demo._synthetic import bench_events
from leadflow.learning._backtest_jobs import replay_in_processes
from tests.leadflow_cli import Leadflow, write

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
LEADS = 240
TIMED = ("seconds", "events_per_s", "jobs")  # the only keys that may differ with the number of processes


def _log() -> list[dict]:
    """Visits of LEADS leads, then a rep's verdict an hour after the last event of every third lead."""
    events = list(bench_events(LEADS, 6, seed=11))
    out = list(events)
    for n, (lead, group) in enumerate(groupby(sorted(events, key=lambda e: (e["lead"], e["at"])), lambda e: e["lead"])):
        if n % 3 == 0:
            last = parse_time(list(group)[-1]["at"])
            out.append({"id": f"verdict-{lead}", "lead": lead, "type": "sql_accepted" if n % 2 else "sql_rejected",
                        "at": format_time(last + 3600), "data": {"rep": "ann"}})
    return out


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("candidate") / "rules"
    shutil.copytree(RULES, out, ignore=shutil.ignore_patterns("examples"))
    text = (out / "qualification.yaml").read_text()
    assert "when: { score: { at_least: 50 } }" in text
    (out / "qualification.yaml").write_text(text.replace("when: { score: { at_least: 50 } }",
                                                         "when: { score: { at_least: 60 } }"))
    return out


@pytest.fixture
def logged(db_url, tmp_path) -> Leadflow:
    """The generated log ingested into the test's database (each backend)."""
    cli = Leadflow(db_url, RULES)
    applied = json.loads(cli("ingest", "--trusted", str(write(tmp_path / "log.jsonl", _log())), "--json",
                             check=True).stdout)
    assert applied["rejected"] == 0
    return cli


def _backtest(cli: Leadflow, candidate: Path, *flags: str) -> dict:
    return json.loads(cli("rules", "backtest", "--candidate", str(candidate), "--json", *flags, check=True).stdout)


def _untimed(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMED}


def test_two_and_three_processes_give_what_one_gives(logged, candidate):
    one = _backtest(logged, candidate)
    assert one["jobs"] == 1 and one["sample"] == 1.0 and one["leads"] == LEADS
    assert one["changed"] > 0 and one["feedback"]["accepted"] > 0 and one["feedback"]["rejected"] > 0
    assert one["feedback"]["accepted_lost"] + one["feedback"]["rejected_filtered"] > 0
    assert one["changed_leads"] == sorted(one["changed_leads"], key=lambda c: c["lead"])
    for jobs in ("2", "3"):
        many = _backtest(logged, candidate, "--jobs", jobs)
        assert many["jobs"] == int(jobs)
        assert _untimed(many) == _untimed(one)


def test_a_sample_is_the_same_leads_every_time_and_part_of_the_whole(logged, candidate):
    whole = _backtest(logged, candidate)
    assert whole["changed"] < 100  # every changed lead is listed, so the sample's can be checked against them
    sample = _backtest(logged, candidate, "--sample", "30%")
    picked = {f"b{n}" for n in range(1, LEADS + 1) if in_sample(f"b{n}", 0.3)}
    assert sample["sample"] == 0.3 and sample["leads"] == len(picked) and 0 < len(picked) < LEADS
    assert sample["events"] < whole["events"]
    assert sum(sample["stages"]["current"].values()) == sum(sample["stages"]["candidate"].values()) == len(picked)
    assert sample["changed_leads"] == [c for c in whole["changed_leads"] if c["lead"] in picked]
    assert _untimed(_backtest(logged, candidate, "--sample", "30", "--jobs", "2")) == _untimed(sample)


def test_smaller_samples_lie_inside_larger_ones():
    leads = [f"lead-{n}" for n in range(4000)]
    small = {lead for lead in leads if in_sample(lead, 0.05)}
    large = {lead for lead in leads if in_sample(lead, 0.3)}
    assert small < large
    assert 0.03 < len(small) / len(leads) < 0.07 and 0.26 < len(large) / len(leads) < 0.34
    assert all(in_sample(lead, 1.0) for lead in leads)


@pytest.mark.parametrize("flags, says", [
    (("--jobs", "0"), "--jobs"), (("--jobs", "x"), "--jobs"),
    (("--sample", "0"), "--sample"), (("--sample", "0%"), "--sample"), (("--sample", "150%"), "--sample"),
    (("--sample", "-5"), "--sample"), (("--sample", "five"), "--sample"), (("--sample", "nan"), "--sample"),
])
def test_bad_jobs_or_sample_is_a_usage_error(small_log, candidate, flags, says):
    r = small_log("rules", "backtest", "--candidate", str(candidate), *flags)
    assert r.returncode == 2 and says in r.stderr and not r.stdout
    assert "Traceback" not in r.stderr


def test_a_sample_says_it_is_a_preview(small_log, candidate):
    r = small_log("rules", "backtest", "--candidate", str(candidate), "--sample", "50%", "--jobs", "2", check=True)
    assert r.stdout.startswith("a preview on 50.00% of the leads") and "events of" in r.stdout


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Leadflow:
    """A few leads in a SQLite file: enough for the checks of the command line."""
    folder = tmp_path_factory.mktemp("small")
    cli = Leadflow(folder / "t.db", RULES)
    cli("ingest", str(write(folder / "few.jsonl", _log()[:40])), check=True)
    return cli


def test_a_failing_process_fails_the_command_with_its_error(tmp_path, candidate):
    """A process that cannot open the database sends its error; the parent raises it, naming the process,
    rather than waiting for a tally that will never come."""
    with pytest.raises(LeadflowError) as failed:
        replay_in_processes(str(tmp_path / "nowhere" / "x.db"), (str(RULES), str(candidate)), ("?", "?"),
                            [["a"], ["b"]])
    assert "backtest process" in str(failed.value)


@pytest.mark.parametrize("jobs, sample", [(1, 1.0), (2, 1.0), (2, 0.5)])
def test_progress_counts_every_event_up_to_the_total_it_announced(logged, candidate, jobs, sample):
    from leadflow.learning import backtest
    from leadflow.store import Store

    store = Store(str(logged.db))
    seen: list[tuple[int, int]] = []
    try:
        result = backtest(store, str(RULES), str(candidate), jobs, sample,
                          progress=lambda done, total: seen.append((done, total)))
    finally:
        store.close()
    totals = {total for _, total in seen}
    assert totals == {result["events"]} and seen[0] == (0, result["events"]) and seen[-1][0] == result["events"]
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
