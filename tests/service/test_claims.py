"""Several instances on one database share the desk's and the service's background work: two
LeadServices (two stores, two connection pools, as two processes would have) race in threads on
routing the same new SQLs, on the same SLA reminders and timeouts, on the digest and on the tuning
proposal, and each of these happens once (and no rep gets more leads than their capacity)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from leadflow.core import format_time
from leadflow.learning import schedule_proposal
from leadflow.service import LeadService, ManualClock
from tests.bot_harness import RULES
from tests.concurrency import together

T0 = 1_790_000_000.0  # 2026-09-21, a Monday
HOUR = 3600.0
DAY = 24 * HOUR


def _pair(db: str, tmp_path: Path, extra: str = "") -> tuple[LeadService, LeadService]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES + extra)
    return (LeadService(db, str(rules), clock=ManualClock(T0)), LeadService(db, str(rules), clock=ManualClock(T0)))


def _apply(service: LeadService, lead: str, events: list[tuple[str, float, dict]]) -> None:
    for n, (etype, at, data) in enumerate(events):
        outcome = service.pipeline.apply({"id": f"{lead}-{n}", "lead": lead, "type": etype, "at": format_time(at),
                                          "data": data})
        assert outcome.status == "applied", outcome.reason


def _race(services: tuple[LeadService, ...], now: float, work: Callable[[LeadService], object]) -> list:
    """`work` on every service at once (each in its own thread, its clock at `now`); their results."""
    for service in services:
        service.clock.now = now
    return together([lambda s=service: work(s) for service in services], timeout=120)


def test_two_instances_route_each_sql_once_within_capacity_and_act_on_each_sla_deadline_once(db_url, tmp_path):
    a, b = _pair(db_url, tmp_path)
    leads = [f"S{i:02d}" for i in range(14)]  # alice and bob hold 5 each: four go to the queue channel
    try:
        for lead in leads:
            _apply(a, lead, [("lead_updated", T0 - 120, {"title": "VP Sales", "budget": 20000, "country": "US"}),
                             ("demo_requested", T0 - 60, {})])
        assert {a.store.load_state(lead).stage for lead in leads} == {"sql"}

        routed = _race((a, b), T0, lambda s: s.desk.route_pending())
        store = a.store
        assignments = store.assignments()
        assert sorted(x["lead"] for x in assignments) == leads and sum(routed) == len(leads)  # each routed once
        held = Counter(x["rep"] for x in assignments)
        assert held == {"alice": 5, "bob": 5, None: 4}  # nobody over capacity, however the two interleaved
        assert len(store.outbox("card")) == len(leads)
        assert {row["status"] for row in store.outbox("route_sql")} == {"done"}

        reminded = _race((a, b), T0 + 2.5 * HOUR, lambda s: s.desk.tick())  # past remind_at (50% of 4h)
        assert sum(r["reminded"] for r in reminded) == 10 and len(store.outbox("remind")) == 10
        assert sum(r["reassigned"] + r["escalated"] for r in reminded) == 0

        timed_out = _race((a, b), T0 + 5 * HOUR, lambda s: s.desk.tick())  # past accept_within: 4h
        assert sum(r["reassigned"] for r in timed_out) == 10  # each expired once, and passed on once
        assert sum(r["escalated"] for r in timed_out) == 0  # escalate_after: 2, each expired once
        after = store.assignments()
        assert Counter(x["status"] for x in after)["expired"] == 10
        assert all(sum(1 for x in after if x["lead"] == lead and x["status"] == "pending") == 1 for lead in leads)
        assert len(after) == len(leads) + 10
        assert store.count("dead_letters") == 0  # an SLA event applied twice would be one (its id is taken)
    finally:
        a.store.close()
        b.store.close()


def test_one_digest_and_one_tuning_proposal_per_period_across_instances(db_url, tmp_path):
    a, b = _pair(db_url, tmp_path, "digest: { channel: C0DIGEST, every: 7d }\n"
                                   "tuning: { channel: C0MARKET1, every: 7d, min_labels: 10 }\n")
    try:
        for i in range(20):  # labelled leads: seniors buy, interns do not
            good = i % 2 == 0
            _apply(a, f"T{i:02d}", [("lead_updated", T0 - 3 * HOUR, {"title": "VP Sales" if good else "Intern"}),
                                    ("page_view", T0 - 2 * HOUR, {}),
                                    ("deal_won" if good else "deal_lost", T0 - HOUR, {})])

        def periodic(s: LeadService) -> tuple[int, int]:
            return s.schedule_digest(), schedule_proposal(s.store, s.pipeline.compiled.rules, s.rules_dir, s.clock())

        first = _race((a, b), T0, periodic)
        store = a.store
        assert sum(d for d, _ in first) == 1 and len(store.outbox("digest")) == 1
        assert sum(p for _, p in first) == 1  # one tuning proposal
        proposals = store.sql("SELECT dir FROM proposals")
        assert len(proposals) == 1 and len(store.outbox("proposal")) == 1
        # beside the rules directory (PostgreSQL) or the database file (SQLite): here both are tmp_path
        assert Path(proposals[0][0]).parent == tmp_path / "proposals" and Path(proposals[0][0]).is_dir()

        again = _race((a, b), T0 + 3 * DAY, periodic)  # the same period: nothing
        assert again == [(0, 0), (0, 0)]
        assert len(store.outbox("digest")) == 1 and store.count("proposals") == 1

        next_period = _race((a, b), T0 + 7 * DAY, periodic)
        assert sum(d for d, _ in next_period) == 1 and len(store.outbox("digest")) == 2
        assert sum(p for _, p in next_period) == 1 and store.count("proposals") == 2
    finally:
        a.store.close()
        b.store.close()
