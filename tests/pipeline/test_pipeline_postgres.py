"""What only several processes on one PostgreSQL database can do to an ingest: another instance holds a
lead the batch needs, the two wait on each other in a circle, or the connection is killed under the
batch. The "other instance" is a second Store on the same database, driven by the test thread; the
ingest runs in a thread of its own, as `leadflow ingest` runs it (ingest_file on a Pipeline)."""
from __future__ import annotations

import json
import logging
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from leadflow.pipeline import Pipeline, ingest_file
from leadflow.store import Store
from tests.leadflow_cli import SMALL_RULES, ev


class Ingest(threading.Thread):
    """ingest_file of `events` in a thread; `.counts` or `.error` once joined."""

    def __init__(self, pipe: Pipeline, path: Path, events: list[dict]):
        super().__init__()
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        self.pipe, self.path, self.counts, self.error = pipe, path, None, None

    def run(self) -> None:
        try:
            self.counts = ingest_file(self.pipe, str(self.path))
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc


@pytest.fixture
def setup(tmp_path, pg_url):
    """(pipeline, other instance's store, admin connection) on a fresh database whose sessions give up on
    a deadlock after 500 ms (the other instance, below, waits 30 s: the ingest is the one rolled back)."""
    admin = psycopg.connect(pg_url, autocommit=True)
    (name,) = admin.execute("SELECT current_database()").fetchone()
    admin.execute(f'ALTER DATABASE "{name}" SET deadlock_timeout = \'500ms\'')  # for connections made after
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(SMALL_RULES))
    pipe, other = Pipeline.open(pg_url, str(rules)), Store(pg_url)
    yield pipe, other, admin
    other.close()
    pipe.store.close()
    admin.close()


def waiting_pid(admin: psycopg.Connection, besides: int, timeout: float = 10.0) -> int:
    """The backend (other than `besides`) that comes to wait for an advisory lock; polled until one does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> %s",
                            (besides,)).fetchone()
        if row:
            return row[0]
        time.sleep(0.005)
    raise AssertionError("nobody came to wait for a lead's lock")


def test_a_batch_deadlocked_with_another_instance_is_rolled_back_and_applied_again_whole(setup, tmp_path, caplog):
    """The batch locks its leads up front in one order (by the lock's key). The other instance holds the
    second of the two, waits until the batch holds the first and waits for it, then asks for the first:
    a circle. PostgreSQL rolls the batch back; it is applied again once the other commits, and every
    event counts once. (Leads are locked as stored, in NFC: "Jose" + combining accent is "José".)"""
    pipe, other, admin = setup
    events = [ev("e1", lead="A"), ev("e2", lead="Jose\u0301"), ev("e3", lead="A", etype="demo_requested")]
    first, second = [lead for (lead,) in other.sql("SELECT l FROM unnest(CAST(? AS text[])) AS l ORDER BY hashtext(l)",
                                                     (["A", "Jos\u00e9"],))]
    with other.transaction():
        other.sql("SET LOCAL deadlock_timeout = '30s'")
        (mine,), = other.sql("SELECT pg_backend_pid()")
        other.lock_leads([second])
        ingest = Ingest(pipe, tmp_path / "in.jsonl", events)
        with caplog.at_level(logging.WARNING, logger="leadflow.pipeline"):
            ingest.start()
            waiting_pid(admin, mine)  # the batch holds `first` and waits for `second`
            other.lock_leads([first])  # ... and we for what it holds: the server breaks the circle
    ingest.join(30)
    assert ingest.error is None, ingest.error
    assert (ingest.counts.applied, ingest.counts.rejected, ingest.counts.duplicates) == (3, 0, 0)
    assert any("applying it again" in r.getMessage() for r in caplog.records)  # retried, not rejected
    assert other.sql("SELECT id, lead FROM events ORDER BY seq") == [("e1", "A"), ("e2", "Jos\u00e9"), ("e3", "A")]
    assert other.count("dead_letters") == 0


def test_a_connection_killed_under_a_batch_stops_the_ingest_and_keeps_nothing_of_it(setup, tmp_path):
    """A lost connection is no event's fault: the ingest stops with the database's error, rejects nothing,
    and the same file applies whole afterwards."""
    pipe, other, admin = setup
    events = [ev("e1", lead="A"), ev("e2", lead="L")]
    with other.transaction():
        (mine,), = other.sql("SELECT pg_backend_pid()")
        other.lock_leads(["L"])
        ingest = Ingest(pipe, tmp_path / "in.jsonl", events)
        ingest.start()
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (waiting_pid(admin, mine),))
        ingest.join(30)
    assert isinstance(ingest.error, psycopg.OperationalError) and pipe.store.is_system_failure(ingest.error)
    assert other.count("events") == 0 and other.count("dead_letters") == 0
    again = ingest_file(pipe, str(tmp_path / "in.jsonl"))
    assert (again.applied, again.rejected) == (2, 0)
