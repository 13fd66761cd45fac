"""Several instances on one database run nurture steps and decay ticks: two LeadServices (two stores,
two connection pools, as two processes would have) race on the same due work in threads, and every
step and tick happens once; an enrolment leased by a run that crashed is taken by another, once its
lease is over or at once when its process is provably gone, and a live lease is left alone."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from leadflow.core import Claimer, format_time
from leadflow.service import LeadService, ManualClock
from leadflow.store import Store
from tests.concurrency import together

T0 = 1_790_000_000.0  # 2026-09-21, a Monday
DAY = 86400.0
SENDS = 5
TRACK = "leadflow: 1\nevents: { signup: a signup }\nnurture:\n  - id: drip\n    enroll: { event: signup }\n" \
        "    steps:\n" + "".join(f'      - send: {{ channel: email, subject: "step {i}", text: "body {i} for {{name}}" }}\n'
                                  "      - wait: 1d\n" for i in range(SENDS))


def _service(db: str, rules: Path, now: float) -> LeadService:
    return LeadService(db, str(rules), clock=ManualClock(now))


def _enrol(service: LeadService, leads: list[str]) -> None:
    for lead in leads:
        for eid, etype, at, data in ((f"{lead}-1", "lead_updated", T0, {"name": lead, "email": f"{lead}@x.example"}),
                                     (f"{lead}-2", "signup", T0 + 60, {})):
            outcome = service.pipeline.apply({"id": eid, "lead": lead, "type": etype, "at": format_time(at),
                                              "data": data})
            assert outcome.status == "applied", outcome.reason


def _race(services: list[LeadService], now: float) -> list[list[dict]]:
    """Each service's scheduler runs what is due at `now` in its own thread, all starting together,
    until nothing is due (or leased) any more; what each run did, per service."""
    def work(service: LeadService) -> list[dict]:
        done: list[dict] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = service.scheduler.run_due(now)
            done.append(counts)
            due = service.store.next_due(assignments=False)
            if not counts["steps"] and not counts["ticks"] and (due is None or due > now):
                break
        return done

    return together([lambda s=service: work(s) for service in services])


def test_two_instances_racing_run_each_nurture_step_and_each_tick_once(db_url, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(TRACK)
    leads = [f"L{i:02d}" for i in range(30)]
    a = _service(db_url, rules, T0)
    b = _service(db_url, rules, T0)
    try:
        _enrol(a, leads)
        for lead in leads:  # and a decay timer due on every lead
            a.store.set_timer(lead, "decay", T0 + 120)
        now = T0 + (SENDS + 2) * DAY  # every step of every track is due, in turn
        runs = _race([a, b], now)
        store = a.store
        log = store.nurture_log()
        steps = [r for r in log if r["op"] != "enroll"]
        assert Counter((r["enrollment"], r["pc"], r["op"]) for r in steps).most_common(1)[0][1] == 1
        for lead in leads:
            mine = [(r["op"], r["pc"]) for r in store.nurture_steps(lead) if r["op"] != "enroll"]
            assert mine == [(op, pc) for i in range(SENDS) for op, pc in (("send", 2 * i), ("wait", 2 * i + 1))] + \
                [("done", 2 * SENDS)], lead
        # each step was counted by the one run that committed it: none ran twice, none was lost
        assert sum(c["steps"] for r in runs for c in r) == len(steps) == len(leads) * (2 * SENDS + 1)
        assert len(store.outbox("email")) == len(leads) * SENDS
        assert sum(c["ticks"] for r in runs for c in r) == len(leads)
        ticks = [row for row in store.event_log() if row[1] == "decay_tick"]
        assert sorted(row[0] for row in ticks) == leads  # one tick per lead, applied once
        assert store.count("dead_letters") == 0  # a second tick of the same timer would be one (its id is taken)
        assert store.due_timers(float("inf")) == []
        assert store.sql("SELECT count(*) FROM nurture WHERE claimed_by IS NOT NULL OR lease_until IS NOT NULL") \
            == [(0,)]  # every lease was given back
    finally:
        a.store.close()
        b.store.close()


def _lease(store: Store, enrollment: int, holder: Claimer, until: float) -> None:
    store.sql("UPDATE nurture SET claimed_by = ?, lease_until = ? WHERE id = ?", (holder.to_text(), until, enrollment))


def _sends(store: Store, lead: str) -> list[int]:
    return [r["pc"] for r in store.nurture_steps(lead) if r["op"] == "send"]


@pytest.fixture
def enrolled(db_url, tmp_path):
    """A service on the drip track, its clock at T0 + 60, whose lead A has just enrolled."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(TRACK)
    service = _service(db_url, rules, T0 + 60)
    try:
        _enrol(service, ["A"])
        yield service
    finally:
        service.store.close()


def test_an_enrolment_leased_by_a_crashed_run_is_taken_over_and_a_live_lease_is_left_alone(enrolled):
    service, store = enrolled, enrolled.store
    enrollment = store.active_enrollment("A", "drip")["id"]
    elsewhere = dataclasses.replace(Claimer.here(), machine="another-host|boot|ns")  # nobody here can tell
    _lease(store, enrollment, elsewhere, time.time() + 3600)
    assert service.scheduler.run_due(T0 + 60)["steps"] == 0  # its holder may still be working on it
    assert _sends(store, "A") == []

    _lease(store, enrollment, elsewhere, time.time() - 1)  # the holder crashed: its lease ran out
    assert service.scheduler.run_due(T0 + 60)["steps"] == 2  # send step 0, then wait 1d
    assert _sends(store, "A") == [0]
    assert store.hold_enrollment(enrollment, elsewhere.to_text(), time.time(), 60) is None  # it lost it

    # a run of a process on this machine that is gone: taken at once, its lease notwithstanding
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    gone = dataclasses.replace(Claimer.here(), pid=int(dead.stdout))
    _lease(store, enrollment, gone, time.time() + 3600)
    assert service.scheduler.run_due(T0 + 60 + 2 * DAY)["steps"] == 2
    assert _sends(store, "A") == [0, 2]
    row = store.active_enrollment("A", "drip")
    assert row["claimed_by"] is None and row["lease_until"] is None and row["pc"] == 4


def test_a_run_that_lost_its_lease_writes_nothing(enrolled):
    """The claim and the step's check, as two processes see them: B takes an expired lease from A;
    A's next step finds it gone, while B's goes through."""
    store = enrolled.store
    wall = time.time()
    a, b = Claimer.here().to_text(), Claimer.here().to_text()
    with store.transaction():
        assert [r["lead"] for r in store.claim_enrollments(T0 + 60, a, wall, wall - 1, 10)] == ["A"]
    with store.transaction():
        assert store.claim_enrollments(T0 + 60, b, wall - 2, wall + 60, 10) == []  # A's lease still runs then
        assert [r["claimed_by"] for r in store.claim_enrollments(T0 + 60, b, wall, wall + 60, 10)] == [b]
    with store.transaction():
        enrollment = store.active_enrollment("A", "drip")["id"]
        assert store.hold_enrollment(enrollment, a, wall, 60) is None
        assert store.hold_enrollment(enrollment, b, wall, 60)["lease_until"] == wall + 60  # more than half left: kept
        assert store.hold_enrollment(enrollment, b, wall + 40, 60)["lease_until"] == wall + 100  # renewed


def test_a_tick_whose_lead_another_instance_holds_is_left_for_the_next_pass(pg_url, tmp_path):
    """The tick takes its lead's lock without waiting (the same lock an event's transaction holds):
    while another instance applies an event to that lead, the timer stays, and the next pass ticks it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(TRACK)
    service = _service(pg_url, rules, T0 + 600)
    other = Store(pg_url)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.transaction():
            other.lock_leads(["B"])
            holding.set()
            release.wait(30)

    try:
        outcome = service.pipeline.apply({"id": "b1", "lead": "B", "type": "lead_updated", "at": format_time(T0),
                                          "data": {"name": "B"}})
        assert outcome.status == "applied"
        service.store.set_timer("B", "decay", T0 + 120)
        thread = threading.Thread(target=hold)
        thread.start()
        assert holding.wait(30)
        try:
            assert service.scheduler.run_due(T0 + 600)["ticks"] == 0  # busy: not waited for, not taken
            assert [t.lead for t in service.store.due_timers(T0 + 600)] == ["B"]
        finally:
            release.set()
            thread.join(30)
        assert service.scheduler.run_due(T0 + 600)["ticks"] == 1
        assert service.store.due_timers(float("inf")) == []
    finally:
        other.close()
        service.store.close()
