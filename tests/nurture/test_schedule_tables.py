"""The scheduler's tables on each backend (SQLite, then PostgreSQL): enrolments and their log, timers,
periodic runs and rule proposals, read back with the same ids, types and order on both, since the
worker decides what is due from them alone."""
from __future__ import annotations

import pytest

from leadflow.store import Store, Timer


def lead(store: Store, lead_id: str) -> None:
    """A lead row, as the pipeline leaves one (the tables below refer to leads by id)."""
    store.sql("INSERT INTO leads (id, stage, created_at, updated_at, state) VALUES (?, 'new', ?, ?, '{}')",
              (lead_id, 0.0, 0.0))


def test_enrolments_are_due_by_time_then_in_the_order_they_were_made(store):
    ids = [store.enroll(who, "drip", at) for who, at in (("a", 200), ("b", 100), ("c", 200), ("d", 300))]
    assert ids == [1, 2, 3, 4]
    assert [r["lead"] for r in store.due_enrollments(250)] == ["b", "a", "c"]  # a and c tie: by id
    assert [r["lead"] for r in store.due_enrollments(250, limit=2)] == ["b", "a"]
    row = store.active_enrollment("a", "drip")
    assert (row["id"], row["pc"], row["status"], row["next_at"]) == (1, 0, "active", 200.0)
    assert isinstance(row["pc"], int) and isinstance(row["next_at"], float)
    store.update_enrollment(1, 3, "active", None, "page_view", 210)
    store.update_enrollment(3, 1, "done", None, None, 220)
    assert store.active_enrollment("c", "drip") is None
    assert [r["lead"] for r in store.due_enrollments(float("inf"))] == ["b", "d"]  # `a` waits for an event
    assert store.active_enrollment("a", "drip")["waiting_for"] == "page_view"


def test_the_nurture_log_is_read_in_the_order_steps_were_due_and_taken(store):
    enrollment = {"id": store.enroll("a", "drip", 100), "lead": "a", "track": "drip"}
    other = {"id": store.enroll("b", "drip", 100), "lead": "b", "track": "drip"}
    store.log_step(enrollment, 0, "send", 300, "email: one")
    store.log_step(other, 0, "send", 200, "email: two")
    store.log_step(enrollment, 1, "wait", 300, "wait until later")  # same time as the send: taken after it
    assert [(r["op"], r["pc"], r["at"]) for r in store.nurture_steps("a")] == [("send", 0, 300.0), ("wait", 1, 300.0)]
    assert [(r["lead"], r["op"]) for r in store.nurture_log()] == [("b", "send"), ("a", "send"), ("a", "wait")]


def test_timers_are_set_moved_cleared_and_due_in_one_order(store):
    store.set_timer("b", "decay", 100)
    store.set_timer("a", "decay", 100)
    store.set_timer("a", "other", 100)
    store.set_timer("c", "decay", 50)
    store.set_timer("c", "decay", 400)  # moved: still one timer of that kind
    assert store.due_timers(float("inf")) == [Timer("a", "decay", 100.0), Timer("a", "other", 100.0),
                                              Timer("b", "decay", 100.0), Timer("c", "decay", 400.0)]
    assert store.due_timers(100, limit=2) == [Timer("a", "decay", 100.0), Timer("a", "other", 100.0)]
    assert type(store.due_timers(99.5)) is list and store.due_timers(99.5) == []
    store.set_timer("a", "other", None)
    assert [t.lead + ":" + t.kind for t in store.due_timers(1000)] == ["a:decay", "b:decay", "c:decay"]
    store.clear_timers()
    assert store.due_timers(float("inf")) == []


def test_the_next_due_time_is_the_earliest_of_steps_timers_and_deadlines(store):
    assert store.next_due() is None  # nothing scheduled: the worker sleeps until woken
    store.set_timer("a", "decay", 500)
    assert store.next_due() == 500.0
    store.enroll("a", "drip", 400)
    assert store.next_due() == 400.0
    store.add_assignment({"lead": "a", "rep": "alice", "status": "pending", "assigned_at": 0, "remind_at": 300,
                          "due_at": 350})
    store.add_assignment({"lead": "b", "rep": None, "status": "pending", "assigned_at": 0, "due_at": 10})
    assert store.next_due() == 300.0  # the reminder; the queue's card (no rep) has no deadline
    assert store.next_due(assignments=False) == 400.0
    assert store.mark_reminded(1) and store.next_due() == 350.0


def test_timers_on_a_share_of_the_leads_in_the_order_they_came(store):
    for n in range(1, 8):
        lead(store, f"l{n}")
    assert store.set_timers_on_share("decay", 10, 3) == 2
    assert [t.lead for t in store.due_timers(10)] == ["l3", "l6"]
    assert store.set_timers_on_share("decay", 20, 1) == 7
    assert {t.due_at for t in store.due_timers(20)} == {20.0}
    with pytest.raises(ValueError, match="every must be 1 or more"):
        store.set_timers_on_share("decay", 10, 0)


def test_periodic_runs_and_proposals(store):
    assert store.last_run("digest") is None
    store.mark_run("digest", 100)
    store.mark_run("digest", 200)
    assert store.last_run("digest") == 200.0 and store.count("schedule") == 1
    first, second = store.add_proposal("/rules/a", 100, {"changes": [1]}), store.add_proposal("/rules/b", 101, {})
    assert (first, second) == (1, 2)
    assert store.proposal(2)["dir"] == "/rules/b" and store.proposal(3) is None
    assert store.decide_proposal(1, "accepted", "U1", 300) is True
    assert store.decide_proposal(1, "rejected", "U2", 301) is False
    row = store.proposal(1)
    assert (row["status"], row["decided_by"], row["decided_at"]) == ("accepted", "U1", 300.0)
