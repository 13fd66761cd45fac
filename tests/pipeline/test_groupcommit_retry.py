"""The webhook's group commit with several instances on one PostgreSQL database: two instances'
group transactions lock their leads request by request, so they can deadlock; the request the server
picks as the victim is run again in the next group (after its own group committed and let the other
instance through), and its caller gets its answer, not an error. A request that keeps failing that
way gets the error after `RETRIES` more tries; one that fails otherwise is answered at once."""
from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from leadflow.pipeline import GroupCommit, Pipeline
from leadflow.rules import load_compiled
from leadflow.store import Store
from tests.concurrency import held
from tests.leadflow_cli import SMALL_RULES

RETRIES = 5  # the group commit's, as documented in engine/pipeline/_groupcommit.py


def _pipeline(url: str, rules: Path) -> Pipeline:
    return Pipeline(Store(url), load_compiled(str(rules)))


def _line(eid: str, lead: str) -> str:
    return json.dumps({"id": eid, "lead": lead, "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {}})


def test_a_request_that_deadlocked_with_another_instance_is_run_again_in_the_next_group(pg_url, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(SMALL_RULES))
    a, b = _pipeline(pg_url, rules), _pipeline(pg_url, rules)
    wa, wb = GroupCommit(a.store), GroupCommit(b.store)
    both_hold_one = threading.Barrier(2)

    def first(pipeline: Pipeline, eid: str, lead: str) -> Callable[[], str]:
        def job() -> str:  # this group now holds `lead`; wait until the other group holds its first lead too
            status = pipeline.apply_text(_line(eid, lead), source="webhook").status
            both_hold_one.wait(30)
            return status
        return job

    def then(pipeline: Pipeline, eid: str, lead: str) -> Callable[[], str]:
        return lambda: pipeline.apply_text(_line(eid, lead), source="webhook").status

    try:
        release_a, release_b = held(wa), held(wb)
        # instance A's next group: X then Y; instance B's: Y then X -> each waits for the other's lead
        futures = [wa.submit(first(a, "a1", "X")), wa.submit(then(a, "a2", "Y")),
                   wb.submit(first(b, "b1", "Y")), wb.submit(then(b, "b2", "X"))]
        release_a.set()
        release_b.set()
        assert [f.result(60) for f in futures] == ["applied"] * 4  # nobody was answered with the deadlock
        assert wa.retried + wb.retried == 1  # the server's victim, run once more
        victim = wa if wa.retried else wb
        assert victim.groups == 3  # the held group, the group that lost one request, and the retry
        store = a.store
        assert store.count("events") == 4 and store.count("dead_letters") == 0
        assert sorted(store.sql("SELECT lead, count(*) FROM events GROUP BY lead")) == [("X", 2), ("Y", 2)]
    finally:
        wa.close()
        wb.close()
        a.store.close()
        b.store.close()


def test_a_request_failing_as_retryable_again_and_again_gets_the_error_others_are_answered(pg_url):
    store = Store(pg_url)
    writer = GroupCommit(store)
    tries = {"stubborn": 0, "flaky": 0}

    def stubborn() -> None:
        tries["stubborn"] += 1
        raise psycopg.errors.DeadlockDetected("deadlock detected (forced)")

    def flaky() -> str:
        tries["flaky"] += 1
        if tries["flaky"] == 1:
            raise psycopg.errors.SerializationFailure("could not serialize access (forced)")
        return "done"

    def broken() -> None:
        raise ValueError("not retryable")

    try:
        release = held(writer)
        futures = [writer.submit(stubborn), writer.submit(flaky), writer.submit(broken),
                   writer.submit(lambda: store.sql("SELECT 1"))]
        release.set()
        writer.close()  # what was sent back to the next group is still run before the writer stops
        with pytest.raises(psycopg.errors.DeadlockDetected):
            futures[0].result(30)
        assert tries["stubborn"] == RETRIES + 1
        assert futures[1].result(30) == "done" and tries["flaky"] == 2
        with pytest.raises(ValueError):
            futures[2].result(30)
        assert futures[3].result(30) == [(1,)]
        assert writer.retried == RETRIES + 1
    finally:
        store.close()
