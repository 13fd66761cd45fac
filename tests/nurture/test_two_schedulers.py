"""Two workers' schedulers on one database (SQLite, then PostgreSQL), run at the same moments over the
same due nurture steps and decay timers: together they do what one does, each step and each tick once."""
from __future__ import annotations

from collections import Counter

from leadflow.nurture import Scheduler
from leadflow.service import LeadService
from tests.bundled_service import BUYER, DAY, T0
from tests.concurrency import together

ANALYST = {"title": "Analyst", "employees": 60, "country": "US"}  # an MQL by engagement only: it decays


def both(first: Scheduler, second: Scheduler, now: float) -> list[dict]:
    """first.run_due(now) and second.run_due(now) from one barrier in two threads; both counts."""
    return together([lambda: first.run_due(now), lambda: second.run_due(now)], timeout=120)


def test_two_schedulers_at_once_run_each_step_and_tick_once(bundled_db, db_url):
    service, clock = bundled_db.service, bundled_db.clock
    nurtured, decaying = [f"M{n}" for n in range(6)], [f"A{n}" for n in range(6)]
    for lead in nurtured:
        bundled_db.apply(f"{lead}-1", lead, "lead_updated", T0, BUYER)  # an MQL: enrolled in mql_education
    for lead in decaying:
        bundled_db.apply(f"{lead}-1", lead, "lead_updated", T0, ANALYST)
        bundled_db.apply(f"{lead}-2", lead, "webinar_attended", T0 + 60)
        bundled_db.apply(f"{lead}-3", lead, "demo_requested", T0 + 120)
    timers = service.store.due_timers(float("inf"))
    assert sorted(t.lead for t in timers) == decaying and len({t.due_at for t in timers}) == 1
    other = LeadService(db_url, str(bundled_db.rules), clock=clock)
    try:
        ticks = 0
        for day in (3, 10, 20, 40, 80):  # the track's waits, then the decay timers, come due on the way
            clock.now = T0 + day * DAY
            for counts in both(service.scheduler, other.scheduler, clock.now):
                ticks += counts["ticks"]
        store = service.store
        taken = Counter((r["enrollment"], r["pc"], r["op"]) for r in store.nurture_log())
        assert taken and max(taken.values()) == 1  # no step taken twice
        sends = Counter(o["lead"] for o in store.outbox("email"))
        for group in (nurtured, decaying):  # both are MQLs in mql_education; leads alike took the same steps
            histories = {lead: tuple((r["pc"], r["op"]) for r in store.nurture_steps(lead)) for lead in group}
            assert len(set(histories.values())) == 1, histories
            assert len({sends[lead] for lead in group}) == 1 and sends[group[0]] > 0, sends
        for lead in nurtured + decaying:  # each track ran to its end, as one worker runs it
            assert [r["op"] for r in store.nurture_steps(lead)][-2:] == ["set", "done"], lead
            assert store.load_state(lead).attrs["nurtured"] is True
        assert "failed" not in {r["op"] for r in store.nurture_log()}
        assert ticks == len(decaying)  # each timer ticked by one of the two
        assert sorted(r[0] for r in store.sql("SELECT lead FROM events WHERE type = 'decay_tick'")) == decaying
        assert store.dead_letters() == []  # no tick applied twice (its id would be refused)
        assert {store.load_state(lead).stage for lead in decaying} == {"new"}
    finally:
        other.store.close()
