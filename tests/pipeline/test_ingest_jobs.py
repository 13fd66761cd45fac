"""`leadflow ingest --jobs N` against `leadflow ingest`: the same database content and the same answer.

The differential test runs the same files through one process and through two into two fresh
databases (on each backend) and compares every table row by row, leaving out only surrogate integer
ids and wall-clock columns. Its input holds what could tell the two apart: a lead already in the
database, an event id the database already holds (sent for another lead), the same id for two leads
that go to different processes, a resent duplicate, a changed event under a used id, lines that
cannot be read, and a CRM history import through a mapping.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from leadflow.core import lead_share
from leadflow.demo import bundled_rules_dir
from leadflow.store import Store
from leadflow.store._merge import IGNORED, MERGED
from leadflow.store._schema import TABLES
from tests.leadflow_cli import Leadflow, clean_env, leadflow_command, rows, write

ROOT = Path(__file__).resolve().parents[2]
HUBSPOT = ROOT / "rules" / "examples" / "hubspot"
# columns that differ between two runs of the same input: surrogate keys and the wall clock at receipt
UNCOMPARED = {"events": {"seq", "received_at"}, "contributions": {"id"}, "stage_history": {"id"},
              "dead_letters": {"id", "received_at"}, "rule_versions": {"loaded_at"}, "outbox": {"id", "created_at"},
              "nurture": {"id"}, "nurture_log": {"id", "enrollment"}, "assignments": {"id"}, "feedback": {"id"},
              "proposals": {"id"}}


def test_the_merge_places_every_table_of_the_schema():
    """A table added to the schema must be merged (and say how) or be named as never written by an ingest."""
    names = {t.name for t in TABLES}
    assert set(MERGED) | IGNORED == names, "place the new table in store/_merge.py: MERGED or IGNORED"
    assert not set(MERGED) & IGNORED
    for table in TABLES:
        how = MERGED.get(table.name)
        if how is None:
            continue
        if isinstance(table.pk, str) and table.columns[table.pk] is int:  # an integer key is moved past the target's
            assert how.offset == table.pk, table.name
        for column, source in how.refs.items():
            assert table.columns[column] is int and MERGED[source].offset, (table.name, column)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_dbs(request, tmp_path):
    """Two fresh databases on one backend: one for `ingest`, one for `ingest --jobs 2`."""
    if request.param == "sqlite":
        return str(tmp_path / "one.db"), str(tmp_path / "jobs.db")
    server = request.getfixturevalue("postgres")
    urls = server.new_database(), server.new_database()
    for url in urls:
        request.addfinalizer(lambda url=url: server.drop(url))
    return urls


def _lead_in(share: int, start: int) -> str:
    return next(f"jobs-lead-{i}" for i in range(start, start + 1000) if lead_share(f"jobs-lead-{i}", 2) == share)


def _ev(eid: str, lead: str, etype: str, at: str, **data) -> dict:
    return {"id": eid, "lead": lead, "type": etype, "at": at, "data": data}


def _inputs(folder: Path) -> tuple[Path, Path]:
    from leadflow.demo._synthetic import bench_events

    first, second, third = _lead_in(0, 0), _lead_in(1, 0), _lead_in(1, 500)
    before = write(folder / "before.jsonl", [
        _ev("held-1", "old-lead", "lead_updated", "2026-01-05T09:00:00Z", title="VP Sales", employees=300),
        _ev("held-2", "old-lead", "page_view", "2026-01-05T10:00:00Z", path="/pricing"),
    ])
    events = list(bench_events(40, 5, 7))
    lines: list = [json.dumps(e) for e in events[:100]]
    lines += [
        _ev("old-1", "old-lead", "demo_requested", "2026-01-06T09:00:00Z"),  # a lead the database holds
        _ev("held-2", "new-lead-a", "page_view", "2026-01-06T09:00:00Z"),  # an id the database holds, another lead
        _ev("new-a-2", "new-lead-a", "lead_updated", "2026-01-06T10:00:00Z", title="CTO", employees=50),
        _ev("shared-1", first, "lead_updated", "2026-01-07T09:00:00Z", title="VP Marketing", employees=900),
        _ev("shared-1", second, "lead_updated", "2026-01-07T09:30:00Z", title="Intern"),  # its id taken by `first`
        _ev("second-2", second, "demo_requested", "2026-01-07T10:00:00Z"),
        _ev("third-1", third, "demo_requested", "2026-01-07T10:00:00Z"),
        "{not json",
        _ev("no-lead", "", "page_view", "2026-01-07T11:00:00Z"),
        json.dumps(events[3]),  # resent: a duplicate
        {**events[5], "data": {"changed": True}},  # its id again with other content: a conflict
        _ev("third-0", third, "lead_updated", "2026-01-06T10:00:00Z", title="VP Sales", employees=400),  # late
    ]
    lines += [json.dumps(e) for e in events[100:]]
    return before, write(folder / "events.jsonl", lines)


def _dump(db: str) -> dict[str, list]:
    """Every table's rows without the uncompared columns, sorted (a nurture log line names its
    enrolment by lead, track and enrolment time instead of its id)."""
    store = Store(db, upgrade=False)
    try:
        enrolments = {row[0]: row[1:] for row in store.sql("SELECT id, lead, track, enrolled_at FROM nurture")}
        out = {}
        for table in TABLES:
            kept = [c for c in table.columns if c not in UNCOMPARED.get(table.name, ())]
            rows = [list(r) for r in store.sql(f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in kept)}'
                                               f' FROM "{table.name}"')]
            if table.name == "nurture_log":
                ids = [r[0] for r in store.sql('SELECT enrollment FROM nurture_log ORDER BY id')]
                ordered = [list(r) for r in store.sql(f'SELECT {", ".join(kept)} FROM nurture_log ORDER BY id')]
                rows = [r + [enrolments.get(i)] for r, i in zip(ordered, ids)]
            out[table.name] = sorted(rows, key=repr)
        return out
    finally:
        store.close()


def test_ingest_with_two_jobs_gives_the_same_database_and_answer_as_one_process(two_dbs, tmp_path):
    before, events = _inputs(tmp_path)
    rules = Path(bundled_rules_dir())
    answers = []
    for db, jobs in zip(two_dbs, ("1", "2")):
        cli = Leadflow(db, rules)
        cli("ingest", before, "--json", check=True)
        proc = cli("ingest", events, "--json", "--jobs", jobs)
        assert proc.returncode == 1, proc.stderr  # the bad lines and the conflicts
        history = [cli("ingest", "--mapping", HUBSPOT / f"{name}.mapping.yaml", HUBSPOT / f"{name}.csv", "--json",
                       "--jobs", jobs, check=True).stdout for name in ("contacts", "deals")]
        answers.append((proc.stdout, [line for line in proc.stderr.splitlines() if ": " in line], history))
    one, jobs = answers
    assert json.loads(one[0])["conflicts"] == 3 and json.loads(one[0])["rejected"] == 2
    assert json.loads(one[0])["duplicates"] == 1
    assert one == jobs
    first, second = (_dump(db) for db in two_dbs)
    assert {t: len(rows) for t, rows in first.items()} == {t: len(rows) for t, rows in second.items()}
    for table in first:
        assert first[table] == second[table], table
    assert first["nurture"] and first["timers"] and first["outbox"] and first["dead_letters"]  # each table was used


def _workers_of(pid: int) -> list[int]:
    """The ingest processes a command started (spawned children; not its resource tracker)."""
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone meanwhile, or no longer a worker to find
    return found


def test_a_process_that_dies_fails_the_ingest_at_once_and_the_database_keeps_nothing(tmp_path):
    """One ingest process killed (as the kernel's out-of-memory killer would): the command does not
    hang, exits 1 naming the failed process, and the SQLite database holds nothing of the file."""
    db = tmp_path / "t.db"
    lines = [_ev(f"e{i}", f"l{i % 400}", "page_view", "2026-01-06T09:00:00Z", path=f"/p{i}") for i in range(4000)]
    events = write(tmp_path / "e.jsonl", lines)
    proc = subprocess.Popen(leadflow_command("--db", db, "--rules", bundled_rules_dir(), "ingest", events, "--json",
                                             "--jobs", "2"), cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (workers := _workers_of(proc.pid)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert workers, "the ingest processes never started"
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "INGEST_JOB_FAILED" in err and "exit code -9" in err and out == ""
    assert rows(db, "SELECT count(*) FROM events") == [(0,)]
    assert rows(db, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert not _workers_of(proc.pid)
