"""Leadflow's own events (decay ticks, reopenings, nurture steps, reps' decisions) are not held to the
rules for outside input, and when one is refused the record of it survives.

The bundled rules on both backends (db_url); data "from before the fix" is written with the store's
`sql`, past its methods, as an older release left it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leadflow.core import parse_time
from leadflow.nurture import Scheduler
from leadflow.pipeline import Pipeline
from leadflow.pipeline._files import intake_for

ROOT = Path(__file__).resolve().parents[2]
AT = "2026-11-02T09:00:00Z"
TO_MQL = [("page_view", {"url": "/docs"}), ("demo_requested", {}), ("page_view", {"url": "/pricing"})]


@pytest.fixture
def opened(db_url):
    """Pipeline.open on the test's database (each backend), closed after the test."""
    pipes: list[Pipeline] = []

    def open_() -> Pipeline:
        pipes.append(Pipeline.open(db_url, str(ROOT / "rules")))
        return pipes[-1]

    yield open_
    for pipe in pipes:
        pipe.store.close()


def send(pipe: Pipeline, lead: str, events: list, prefix: str = "e") -> None:
    for i, (etype, data) in enumerate(events):
        line = json.dumps({"id": f"{prefix}{i}", "lead": lead, "type": etype, "at": AT, "data": data})
        outcome = pipe.apply_text(line, "t", intake=intake_for())
        assert outcome.status == "applied", outcome.reason


def scheduler_of(pipe: Pipeline) -> Scheduler:
    return Scheduler(pipe.store, pipe.compiled.rules, pipe.apply_internal)


def run_days(pipe: Pipeline, days: int) -> None:
    scheduler, now = scheduler_of(pipe), parse_time(AT)
    for _ in range(days):
        now += 86400
        scheduler.run_due(now)


def test_a_decay_tick_reaches_a_lead_whose_id_is_near_the_limit(opened):
    # tick:<lead>:<due> is longer than the 200 characters an outside id may have: it was dead-lettered
    # and the lead stayed an MQL for ever.
    pipe = opened()
    lead = "x" * 200
    send(pipe, lead, TO_MQL)
    assert pipe.store.load_state(lead).stage == "mql"
    scheduler_of(pipe).run_due(4e9)
    assert pipe.store.load_state(lead).stage != "mql"
    assert pipe.store.count("dead_letters") == 0


def test_a_lead_stored_with_spaces_around_its_id_still_gets_its_decay_tick(opened):
    pipe = opened()
    send(pipe, "L", TO_MQL)
    store = pipe.store
    with store.transaction():  # an older release stored the id as sent
        state = json.loads(store.sql("SELECT state FROM leads WHERE id = 'L'")[0][0])
        store.sql("UPDATE leads SET id = ' L ', state = ?", (json.dumps({**state, "id": " L "}),))
        store.sql("UPDATE events SET lead = ' L '")
        store.sql("UPDATE timers SET lead = ' L '")
    store.close()
    pipe = opened()
    scheduler_of(pipe).run_due(4e9)
    assert pipe.store.load_state(" L ").stage != "mql"
    assert pipe.store.count("dead_letters") == 0
    outside = pipe.apply_text(json.dumps({"id": "o1", "lead": " L ", "type": "page_view", "at": AT}), "t",
                              intake=intake_for())
    assert (outside.status, outside.field) == ("rejected", "lead")  # outside senders are still held to the rule


def test_a_nurture_set_step_is_not_refused_by_the_attribute_cap(opened):
    # A lead at the attribute limit: the bundled track's last step sets `nurtured: true`.
    pipe = opened()
    attrs = {f"k{i}": i for i in range(196)}
    attrs.update({"name": "N", "email": "n@example.com", "title": "VP Marketing", "company_size": 500})
    send(pipe, "L", [("lead_updated", attrs)] + TO_MQL[1:])
    run_days(pipe, 40)
    assert pipe.store.load_state("L").attrs.get("nurtured") is True
    ops = [r[0] for r in pipe.store.sql("SELECT op FROM nurture_log ORDER BY id")]
    assert ops[-2:] == ["set", "done"] and "failed" not in ops
    assert pipe.store.count("dead_letters") == 0


def test_a_failing_nurture_step_is_recorded_at_its_own_step(opened):
    pipe = opened()
    send(pipe, "L", [("lead_updated", {"name": "N", "email": "n@example.com", "title": "VP Marketing",
                                       "company_size": 500})] + TO_MQL[1:])
    (enrollment,), = pipe.store.sql("SELECT id FROM nurture WHERE lead = 'L'")
    track = next(t for t in pipe.compiled.rules.nurture if t.id == "mql_education")
    set_pc = next(pc for pc, ins in enumerate(track.program) if ins.op == "set")
    assert track.program[set_pc - 1].op == "send"  # run in the same worker pass as the step before it
    # an outside sender used the id before ids were reserved
    pipe.store.sql("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) "
                   "VALUES (?, 'other', 'page_view', 0, ?, '{}', 'old', 0)", (f"nurture:{enrollment}:{set_pc}", AT))
    run_days(pipe, 40)
    (status, pc), = pipe.store.sql("SELECT status, pc FROM nurture WHERE id = ?", (enrollment,))
    failed = pipe.store.sql("SELECT pc FROM nurture_log WHERE op = 'failed'")
    assert (status, pc, failed) == ("failed", set_pc, [(set_pc,)])
    sent = pipe.store.sql("SELECT pc FROM nurture_log WHERE op = 'send' ORDER BY id")
    assert sent[-1] == (set_pc - 1,)  # the step before it ran and stays done


def test_a_refused_reps_decision_leaves_the_dead_letter_its_hint_points_to(routed_sql_db):
    service = routed_sql_db
    service.store.sql("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) "  # fb-1 taken
                      "VALUES ('fb-1', 'other', 'page_view', 0, ?, '{}', 'old', 0)", (AT,))  # before ids were reserved
    verdict = service.desk.decide(1, "accept", "U0ALICE01", "alice")
    assert verdict.status == "error"
    letters = service.store.dead_letters()
    assert len(letters) == 1 and json.loads(letters[0]["raw"])["id"] == "fb-1"
    assert letters[0]["source"] == "feedback"
    assert service.store.assignment(1)["decided_by"] is None  # nothing was decided


def test_a_reopening_id_made_of_two_long_ids_is_applied(opened):
    from leadflow.nurture import reopen_event

    pipe = opened()
    lead, cause = "L" * 200, "e" * 200
    send(pipe, lead, TO_MQL)
    outcome = pipe.apply_internal(reopen_event(lead, cause, parse_time(AT) + 60), "nurture")
    assert (outcome.status, outcome.event_id) == ("applied", f"reopen:{lead}:{cause}")
