"""The desk's tables on each backend (SQLite, then PostgreSQL): ids, types and order as the desk reads
them, and decisions that stay single when two processes race for them (two Store objects on one
database, one thread each, as two leadflow instances are)."""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from leadflow.core import parse_time
from leadflow.service import LeadService, ManualClock
from leadflow.store import Store
from tests.bot_harness import RULES, sql_events
from tests.concurrency import together


def assignment(lead: str, **extra: object) -> dict:
    return {"lead": lead, "rep": "alice", "channel": None, "status": "pending", "why": "test", "attempt": 0,
            "assigned_at": 100, "remind_at": 150, "due_at": 200, **extra}


def race(first: Callable[[], object], second: Callable[[], object]) -> list:
    """Run both at once, from a barrier, in two threads; their results once both are done."""
    return together([first, second], timeout=60)


def test_ids_types_and_order_are_the_same_on_both_backends(store):
    ids = [store.add_assignment(assignment(lead)) for lead in ("a", "b", "a")]
    assert ids == [1, 2, 3]  # the id the insert gave, as the card and the feedback refer to it
    row = store.assignment(3)
    assert row["lead"] == "a" and row["attempt"] == 0 and isinstance(row["attempt"], int)
    # an int given to a time column comes back as a float, as the desk compares and prints it
    assert [type(row[c]) for c in ("assigned_at", "remind_at", "due_at")] == [float, float, float]
    assert row["decided_at"] is None
    assert [a["id"] for a in store.assignments(lead="a")] == [1, 3]
    assert [a["id"] for a in store.assignments(status="pending", rep="alice")] == [1, 2, 3]
    assert store.assignment_totals() == {"alice": 3}
    assert [a["id"] for a in store.due_assignments(150)] == [1, 2, 3]  # reminders due, in id order
    assert store.due_assignments(149) == []
    assert store.assignment(99) is None


def test_feedback_keeps_who_decided_in_its_by_column(store):
    store.add_feedback({"assignment": 1, "lead": "a", "rep": "alice", "verdict": "reject", "reason": "no_budget",
                        "comment": "later", "by": "U0ALICE01", "at": 500})
    assert store.sql("SELECT by, at FROM feedback") == [("U0ALICE01", 500.0)]  # `by` is a column on both
    (row,) = store.feedback_rows()
    assert row["by"] == "U0ALICE01" and row["verdict"] == "reject" and row["id"] == 1
    with pytest.raises(ValueError, match="not a column name"):
        store.add_feedback({"by; DROP TABLE feedback": 1})


def test_a_nul_in_a_reps_comment_is_kept_escaped_alike_on_both_backends(store):
    """PostgreSQL text cannot hold NUL; a comment typed (or pasted) with one is kept as the text \\x00 on
    both backends, where it once failed the rep's decision on PostgreSQL only."""
    store.add_feedback({"assignment": 1, "lead": "a", "rep": "alice", "verdict": "reject", "reason": "no\x00budget",
                        "comment": "call\x00back", "by": "U0ALICE01", "at": 500})
    with store.transaction():
        row_id = store.add_assignment(assignment("a"))
        assert store.close_assignment(row_id, "rejected", 600, "U0ALICE01", "no\x00budget", "x\x00")
    assert store.sql("SELECT reason, comment FROM feedback") == [("no\\x00budget", "call\\x00back")]
    assert store.sql("SELECT reason, comment FROM assignments") == [("no\\x00budget", "x\\x00")]


def test_a_decision_and_a_reminder_are_taken_once(store):
    store.add_assignment(assignment("a"))
    assert store.mark_reminded(1) is True
    assert store.mark_reminded(1) is False  # the reminder went out once
    assert store.close_assignment(1, "accepted", 300, "U1", None, "mine") is True
    assert store.close_assignment(1, "rejected", 301, "U2", "no_budget", None) is False
    row = store.assignment(1)
    assert (row["status"], row["decided_by"], row["decided_at"], row["remind_at"]) == ("accepted", "U1", 300.0, None)
    assert store.close_assignment(2, "accepted", 300, "U1", None, None) is False  # no such assignment


def test_two_stores_racing_for_the_same_decisions_get_one_each(db_url, store):
    """Two instances decide, remind and decide the same proposals at the same moments: for every row
    exactly one of them is told it did."""
    other = Store(db_url)
    try:
        rounds = 12
        for i in range(rounds):
            store.add_assignment(assignment(f"l{i}"))
            store.add_proposal("/rules", 100, {"round": i})

        def each(s: Store, who: str) -> Callable[[], list]:
            def calls() -> list:
                return [(s.mark_reminded(i), s.close_assignment(i, "accepted", 300, who, None, None),
                         s.decide_proposal(i, "accepted", who, 300)) for i in range(1, rounds + 1)]
            return calls

        mine, theirs = race(each(store, "one"), each(other, "two"))
        for i, (a, b) in enumerate(zip(mine, theirs), start=1):
            assert [x + y for x, y in zip(a, b)] == [1, 1, 1], (i, a, b)  # one True and one False each time
            row = store.assignment(i)
            assert row["decided_by"] == ("one" if a[1] else "two") and row["remind_at"] is None
            assert store.proposal(i)["decided_by"] == ("one" if a[2] else "two")
    finally:
        other.close()


def test_the_second_of_two_racing_decisions_waits_for_the_first_and_is_told_already(pg_url):
    """On PostgreSQL the loser of the race is not the one that reads first but the one that writes
    second: its UPDATE waits on the row the first holds and, once that commits, finds it decided."""
    first, second = Store(pg_url), Store(pg_url)
    try:
        first.add_assignment(assignment("a"))
        updated, results = threading.Event(), {}

        def hold() -> None:
            with first.transaction():
                results["first"] = first.close_assignment(1, "accepted", 300, "one", None, None)
                updated.set()
                # commit only once the second caller's UPDATE is waiting for this row
                while not first.sql("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
                    threading.Event().wait(0.005)

        def decide() -> None:
            updated.wait(30)
            results["second"] = second.close_assignment(1, "rejected", 301, "two", "no_budget", None)

        threads = [threading.Thread(target=hold), threading.Thread(target=decide)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == {"first": True, "second": False}
        assert first.assignment(1)["decided_by"] == "one"
    finally:
        first.close()
        second.close()


def test_setting_the_owner_waits_for_an_event_of_the_lead_being_applied(pg_url, tmp_path):
    """Routing in one instance while another applies an event of the same lead: the owner is written
    after the event's state, not under it (where the event's commit would drop it)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    service, router = LeadService(pg_url, str(rules)), Store(pg_url)
    try:
        for event in sql_events("a"):
            assert service.pipeline.apply(event).status == "applied"
        store, applying, done = service.store, threading.Event(), threading.Event()

        def event_of_the_lead() -> None:  # what the pipeline does with an event: lock, read, write the state
            with store.transaction():
                store.lock_leads(("a",))
                state = store.load_state("a")
                applying.set()
                while not done.is_set() and not store.sql("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
                    threading.Event().wait(0.005)  # until set_owner waits for the lead (or, wrongly, is done)
                state.attrs["seen"] = True
                store.save_state(state)

        def route() -> None:
            applying.wait(30)
            router.set_owner("a", "bob")
            done.set()

        threads = [threading.Thread(target=event_of_the_lead), threading.Thread(target=route)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        state = store.load_state("a")
        assert (state.owner, state.attrs.get("seen")) == ("bob", True)
        assert store.sql("SELECT owner FROM leads WHERE id = 'a'") == [("bob",)]
    finally:
        service.store.close()
        router.close()


def test_two_instances_route_and_expire_each_sql_once(db_url, tmp_path):
    """Two workers on one database route the same new SQLs and then check the same SLA deadlines at
    the same moment: one assignment (and one card) per SQL, each expired once and passed on once."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    clock = ManualClock(parse_time("2026-11-02T09:00:00Z"))
    one, two = LeadService(db_url, str(rules), clock=clock), LeadService(db_url, str(rules), clock=clock)
    leads = [f"l{n}" for n in range(6)]
    try:
        for lead in leads:
            for event in sql_events(lead):
                assert one.pipeline.apply(event).status == "applied"
        routed = race(one.desk.route_pending, two.desk.route_pending)
        assert sum(routed) == len(leads)
        first = one.store.assignments()
        assert sorted(a["lead"] for a in first) == leads and {a["attempt"] for a in first} == {0}
        assert sorted(o["key"] for o in one.store.outbox("card")) == sorted(f"card:{a['id']}" for a in first)
        assert sorted(o["lead"] for o in one.store.outbox("route_sql") if o["status"] == "done") == leads
        clock.now += 5 * 3600  # past the 4 h to accept (the bot rules' reps work around the clock)
        ticks = race(one.desk.tick, two.desk.tick)
        assert ticks[0]["reassigned"] + ticks[1]["reassigned"] == len(leads)
        assert ticks[0]["escalated"] + ticks[1]["escalated"] == 0  # one expiry each: under escalate_after
        for lead in leads:
            mine = one.store.assignments(lead=lead)
            assert [(a["status"], a["attempt"]) for a in mine] == [("expired", 0), ("pending", 1)], (lead, mine)
            assert mine[0]["rep"] != mine[1]["rep"]  # passed on to the other rep
        assert len(one.store.outbox("card")) == 2 * len(leads)
    finally:
        one.store.close()
        two.store.close()


def test_two_instances_deciding_one_card_record_one_decision(db_url, tmp_path):
    """Two services on one database (two `leadflow serve`): a rep's Accept reaches both at once; one
    records it, the other answers `already`, and the lead has one feedback row and one event of it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    one = LeadService(db_url, str(rules))
    two = LeadService(db_url, str(rules))
    try:
        for lead in ("a", "b", "c"):
            for event in sql_events(lead):
                assert one.pipeline.apply(event).status == "applied"
        assert one.desk.route_pending() == 3
        assert [a["rep"] for a in one.store.assignments()] == ["alice", "alice", "bob"]  # weights 2:1
        assert one.store.load_state("c").owner == "bob" and one.store.sql(
            "SELECT owner FROM leads WHERE id = 'c'") == [("bob",)]
        for a in one.store.assignments():
            verdicts = race(lambda a=a: one.desk.decide(a["id"], "accept", "U1", a["rep"]),
                            lambda a=a: two.desk.decide(a["id"], "accept", "U2", a["rep"]))
            assert sorted(v.status for v in verdicts) == ["already", "done"], verdicts
        assert len(one.store.feedback_rows()) == 3
        accepted = one.store.sql("SELECT lead FROM events WHERE type = 'sql_accepted' ORDER BY lead")
        assert accepted == [("a",), ("b",), ("c",)]
        assert {one.store.load_state(lead).stage for lead in ("a", "b", "c")} == {"accepted"}
    finally:
        one.store.close()
        two.store.close()
