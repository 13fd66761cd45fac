"""Nurture steps as the in-process worker runs them on the bundled tracks, the clock fast-forwarded:
waits that time out or run late, a template that cannot format a value, a recycled SQL's track goal."""
from __future__ import annotations

import json

from tests.bundled_service import BUYER, DAY, T0


def test_a_lead_that_became_sql_by_pricing_inquiry_is_still_nurtured_after_not_now(bundled_db):
    service = bundled_db.service
    assignment = bundled_db.sql("L")
    assert service.desk.decide(assignment["id"], "reject", "x", "alice", reason="not_now").status == "done"
    tracks = service.store.load_state("L").tracks
    assert tracks["recycle"].status == "active"  # the old inquiry does not count as the track's goal
    bundled_db.apply("c", "L", "pricing_inquiry", T0 + 20 * DAY)
    state = service.store.load_state("L")
    assert state.stage == "sql" and state.tracks["recycle"].status == "exited"


def test_a_template_that_cannot_format_a_value_does_not_stop_the_worker(bundled_db):
    (bundled_db.rules / "templates" / "case_study.md").write_text("Subject: {employees:,} people\n\nHi {name}\n")
    bundled_db.apply("a", "A", "lead_updated", T0, {**BUYER, "employees": "200-500"})  # text, not a number
    bundled_db.apply("a2", "A", "webinar_attended", T0 + 60)  # an MQL: enrolled in mql_education
    bundled_db.apply("b", "B", "lead_updated", T0, BUYER)
    bundled_db.apply("c", "B", "pricing_inquiry", T0 + 60)  # an SQL, to be routed while A's step fails
    bundled_db.run_until(T0 + 5 * DAY)
    store = bundled_db.service.store
    sends = [json.loads(o["payload"]) for o in store.outbox("email") if o["lead"] == "A"]
    assert sends[0]["subject"] == "200-500 people"
    assert store.assignments(lead="B")  # the unrelated SQL was routed


def test_a_timed_out_wait_until_does_not_cut_a_later_wait_short(bundled_db):
    store = bundled_db.service.store
    bundled_db.apply("a", "M", "lead_updated", T0, BUYER)  # an MQL, not sales-ready
    bundled_db.run_until(T0 + 8 * DAY)  # the page_view wait timed out; now in `wait: 7d`
    due = store.active_enrollment("M", "mql_education")["next_at"]
    bundled_db.apply("pv", "M", "page_view", T0 + 8 * DAY + 3600, {"url": "/blog"})
    assert store.active_enrollment("M", "mql_education")["next_at"] == due


def test_a_wait_until_run_late_sees_the_event_that_came_meanwhile(bundled_db):
    bundled_db.apply("a", "M", "lead_updated", T0, BUYER)  # MQL: case study after 2 business days, then wait for a visit
    bundled_db.run_until(T0 + 2 * DAY - 3600)  # the worker stops just before the case study
    visit = T0 + 3 * DAY
    bundled_db.apply("pv", "M", "page_view", visit, {"url": "/pricing"})  # arrives while the worker is down
    bundled_db.run_until(T0 + 4 * DAY)  # back: the wait step runs late, at its own time
    steps = [(r["op"], r["at"]) for r in bundled_db.service.store.nurture_steps("M")]
    assert ("wait", visit) in steps  # woken by the visit (the next wait starts then), not by the 5-day limit
