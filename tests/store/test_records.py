"""What the store hands back: named records instead of bare tuples, and the reads and writes the demo
and the benchmark use instead of their own SQL; the same on both backends (db_url)."""
from __future__ import annotations

import pytest

from leadflow.rules import LeadState
from leadflow.runtime import Decision
from leadflow.store import StageChange, Store, StoredEvent, Timer


def record(store: Store, lead: str, event_id: str, at: float, to: str | None = None, fired: tuple = ()) -> None:
    """One real evaluated event, as the pipeline records it (an optional stage change from `new`)."""
    state = LeadState(lead, stage=to or "new", clock=at)
    decision = Decision(event_id, lead, at, "v1", fired=list(fired), added=[["r1", 5.0]],
                        transitions=[{"from": "new", "to": to, "reason": f"went {to}", "rule": "r1"}] if to else [])
    event = {"id": event_id, "lead": lead, "type": "page_view", "at": "t", "data": {"page": "/p"}}
    with store.transaction():
        store.record(event, at, "test", state, decision, created=store.load_state(lead) is None, digest="d" + event_id)


def test_a_stored_event_is_read_by_name(store):
    record(store, "a", "e1", 10.0)
    assert store.stored_event("e1") == StoredEvent("de1", "a", "page_view", 10.0, '{"page":"/p"}')
    assert store.stored_event("e1").digest == "de1" and store.stored_event("nope") is None
    assert store.has_event("e1") and not store.has_event("nope")


def test_stage_changes_and_decision_traces_are_the_whole_history_in_order(store):
    record(store, "a", "e1", 10.0, fired=("r1",))
    record(store, "b", "e2", 11.0, to="sql", fired=("r1", "r2"))
    record(store, "a", "e3", 12.0, to="disqualified")
    assert list(store.stage_changes()) == [
        StageChange("a", None, "new", "first event"), StageChange("b", None, "new", "first event"),
        StageChange("b", "new", "sql", "went sql"), StageChange("a", "new", "disqualified", "went disqualified")]
    assert [trace["fired"] for trace in store.decision_traces()] == [["r1"], ["r1", "r2"], []]
    assert [row["kind"] for row in store.outbox()] == ["route_sql"]  # the SQL's durable routing work


def test_latest_event_at_is_none_for_an_empty_log_then_the_newest_time(store):
    assert store.latest_event_at() is None
    record(store, "a", "e1", 30.0)
    record(store, "b", "e2", 20.0)
    assert store.latest_event_at() == 30.0


def test_timers_on_a_share_of_the_leads_replace_the_others_and_read_back_as_timers(store):
    for n in range(10):
        record(store, f"lead{n}", f"e{n}", float(n))
    with store.transaction():
        store.set_timer("lead1", "nurture", 5.0)  # replaced below
        assert store.set_timers_on_share("decay", 100.0, 3) == 3
    due = store.due_timers(100.0)
    assert all(isinstance(t, Timer) and t.kind == "decay" and t.due_at == 100.0 for t in due)
    assert sorted(t.lead for t in due) == ["lead2", "lead5", "lead8"]  # every third lead stored
    assert store.due_timers(99.0) == []
    with pytest.raises(ValueError):
        store.set_timers_on_share("decay", 100.0, 0)
    with store.transaction():
        store.clear_timers()
    assert store.count("timers") == 0 and store.next_due() is None


def test_the_nurture_log_of_all_leads_is_in_time_order(store):
    with store.transaction():
        first = {"id": store.enroll("a", "welcome", 1.0), "lead": "a", "track": "welcome"}
        second = {"id": store.enroll("b", "welcome", 1.0), "lead": "b", "track": "welcome"}
        store.log_step(first, 0, "send", 50.0, "late")
        store.log_step(second, 0, "send", 20.0, "early")
        store.log_step(first, 1, "wait", 50.0, "same time, taken after")
    assert [(row["lead"], row["detail"]) for row in store.nurture_log()] == [
        ("b", "early"), ("a", "late"), ("a", "same time, taken after")]
    assert [row["detail"] for row in store.nurture_steps("a")] == ["late", "same time, taken after"]


def test_hostile_text_is_kept_escaped_alike_on_both_backends(store):
    """PostgreSQL text cannot hold NUL and SQLite text must be valid UTF-8: a dead letter and a delivery
    error keep whatever they quote, with NUL and lone surrogates escaped, the same on both."""
    with store.transaction():
        store.dead_letter('{"id": "a\x00"}\ud800', "bad \x00", "id\x00", "in\x00.jsonl", 3)
        store.add_outbox("k", "test_only", "a", {"note": "\x00\ud800"})
    (letter,) = store.dead_letters()
    assert (letter["raw"], letter["reason"], letter["field"], letter["source"], letter["line"]) == \
        ('{"id": "a\\x00"}\\ud800', "bad \\x00", "id\\x00", "in\\x00.jsonl", 3)
    (row,) = store.outbox()
    assert row["payload"] == '{"note": "\\u0000\\ud800"}'  # JSON escapes: read back as sent
    with store.transaction():
        store.outbox_retry(row["id"], "refused: \x00\udcff", 5.0)
    assert store.outbox()[0]["last_error"] == "refused: \\x00\\udcff"
