"""Regressions found in review: each test is a situation that once went wrong."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from bots.notifier import ConsoleNotifier
from engine.delivery import ChannelSender, ChannelSettings
from engine.service import LeadService, ManualClock
from engine.reports import compute
from engine.core import format_time, parse_time
from tests.bot_harness import Service, sql_events
from tests.slack_fake import SlackFake

ROOT = Path(__file__).resolve().parent.parent
T0 = parse_time("2026-11-02T15:00:00Z")  # a Monday afternoon in Europe, morning in New York
BUYER = {"email": "ann@acme.example", "title": "VP Sales", "employees": 300, "country": "US", "industry": "saas",
         "name": "Ann"}


@pytest.fixture
def desk(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests", "examples", "REFERENCE.md", "schema.json"))
    clock = ManualClock(T0)
    out = io.StringIO()
    service = LeadService(str(tmp_path / "db.sqlite"), str(rules), clock=clock)
    service.deliver_through([ConsoleNotifier(out, service.view), ChannelSender(ChannelSettings(), service.store, out)])
    service.out, service.clock_obj, service.rules_path = out, clock, rules
    yield service
    service.store.close()


def ev(service, eid: str, lead: str, etype: str, at: float, data: dict | None = None) -> None:  # noqa: ANN001
    out = service.pipeline.apply({"id": eid, "lead": lead, "type": etype, "at": format_time(at), "data": data or {}})
    assert out.status == "applied", out.reason


def test_a_lead_that_became_sql_by_pricing_inquiry_is_still_nurtured_after_not_now(desk):
    ev(desk, "a", "L", "lead_updated", T0, BUYER)
    ev(desk, "b", "L", "pricing_inquiry", T0 + 60)
    desk.work_once()
    assignment = desk.store.assignments(lead="L")[0]
    assert desk.desk.decide(assignment["id"], "reject", "x", "alice", reason="not_now").status == "done"
    tracks = desk.store.load_state("L").tracks
    assert tracks["recycle"][0] == "active"  # the old inquiry does not count as the track's goal
    ev(desk, "c", "L", "pricing_inquiry", T0 + 20 * 86400)
    state = desk.store.load_state("L")
    assert state.stage == "sql" and state.tracks["recycle"][0] == "exited"


def test_a_template_that_cannot_format_a_value_does_not_stop_the_worker(desk):
    (desk.rules_path / "templates" / "case_study.md").write_text("Subject: {employees:,} people\n\nHi {name}\n")
    ev(desk, "a", "A", "lead_updated", T0, {**BUYER, "employees": "200-500"})  # text, not a number
    ev(desk, "a2", "A", "webinar_attended", T0 + 60)  # an MQL: enrolled in mql_education
    ev(desk, "b", "B", "lead_updated", T0, BUYER)
    ev(desk, "c", "B", "pricing_inquiry", T0 + 60)
    desk.run_until(T0 + 5 * 86400, desk.clock_obj)
    sends = [json.loads(o["payload"]) for o in desk.store.outbox("email") if o["lead"] == "A"]
    assert sends[0]["subject"] == "200-500 people"
    assert desk.store.assignments(lead="B")  # the unrelated SQL was routed


def test_a_timed_out_wait_until_does_not_cut_a_later_wait_short(desk):
    ev(desk, "a", "M", "lead_updated", T0, BUYER)  # an MQL, not sales-ready
    desk.run_until(T0 + 8 * 86400, desk.clock_obj)  # the page_view wait timed out; now in `wait: 7d`
    row = desk.store.active_enrollment("M", "mql_education")
    due = row["next_at"]
    ev(desk, "pv", "M", "page_view", T0 + 8 * 86400 + 3600, {"url": "/blog"})
    assert desk.store.active_enrollment("M", "mql_education")["next_at"] == due


def test_a_disqualified_lead_loses_its_pending_card_instead_of_being_reassigned(desk):
    ev(desk, "a", "D", "lead_updated", T0, BUYER)
    ev(desk, "b", "D", "pricing_inquiry", T0 + 60)
    desk.work_once()
    ev(desk, "c", "D", "lead_updated", T0 + 120, {"do_not_contact": True})
    desk.clock_obj.now = T0 + 10 * 3600
    desk.work_once()
    assert [a["status"] for a in desk.store.assignments(lead="D")] == ["closed"]
    assert "[update] D is closed" in desk.out.getvalue()


def test_escalation_counts_expired_assignments_not_reassignments(desk):
    ev(desk, "a", "E", "lead_updated", T0, {**BUYER, "country": "GB"})
    ev(desk, "b", "E", "pricing_inquiry", T0 + 60)
    desk.work_once()
    first = desk.store.assignments(lead="E")[0]
    desk.desk.decide(first["id"], "reject", "x", first["rep"], reason="wrong_rep")  # passed on, not expired
    desk.clock_obj.now = T0 + 3 * 86400
    counts = desk.work_once()
    assert counts["reassigned"] == 1 and counts["escalated"] == 0
    assert not [o for o in desk.store.outbox("escalate")]


def test_revenue_counts_each_deal_in_its_own_period(desk):
    ev(desk, "a", "R", "lead_updated", T0, BUYER)
    ev(desk, "w1", "R", "deal_won", parse_time("2027-01-03T00:00:00Z"), {"amount": 1000})
    ev(desk, "w2", "R", "deal_won", parse_time("2027-03-02T00:00:00Z"), {"amount": 5000})
    jan = compute(desk.store, parse_time("2027-01-01T00:00:00Z"), parse_time("2027-03-01T00:00:00Z"))
    mar = compute(desk.store, parse_time("2027-03-01T00:00:00Z"), parse_time("2027-04-01T00:00:00Z"))
    assert (jan["revenue"], mar["revenue"]) == (1000, 5000)


def test_a_rejected_lead_that_buys_later_is_won(desk):
    ev(desk, "a", "W", "lead_updated", T0, BUYER)
    ev(desk, "b", "W", "pricing_inquiry", T0 + 60)
    desk.work_once()
    desk.desk.decide(desk.store.assignments(lead="W")[0]["id"], "reject", "x", "alice", reason="no_budget")
    ev(desk, "c", "W", "deal_won", T0 + 90 * 86400, {"amount": 12000})
    assert desk.store.load_state("W").stage == "won"


def test_a_card_whose_answer_was_lost_is_not_posted_twice(tmp_path):
    with SlackFake() as fake:
        fake.lose_answer.add("chat.postMessage")
        with Service(tmp_path, fake) as svc:
            svc.send_events(sql_events("lead-1"))
            fake.wait_for("conversations.history", timeout=15)  # the retry looks before it posts again
            svc.drain()
            cards = [c for c in fake.calls if c["method"] == "chat.postMessage"]
            assert len(cards) == 1 and cards[0].get("lost_answer")
            assert svc.service.store.outbox_result("card:1")["ts"] == fake.messages["D0ALICE01"][0]["ts"]


def test_strangers_cannot_read_why_a_lead_is_where_it_is(tmp_path):
    with SlackFake() as fake, Service(tmp_path, fake) as svc:
        svc.send_events([sql_events("lead-1")[0]])  # an MQL nobody owns yet
        r = svc.command("why was lead-1 an SQL", "U0STRANGR").json()
        assert "not assigned to you" in json.dumps(r["blocks"])


def test_csv_rows_with_a_bad_time_or_nan_are_dead_letters_or_missing_not_fatal(tmp_path):
    import subprocess
    import sys

    (tmp_path / "leads.csv").write_text("id,created,visits,city\n"
                                        "l1,2026-11-02T09:00:00Z,5,Paris\n"
                                        "l2,,3,Lyon\n"
                                        "l3,2026-11-02T10:00:00Z,nan,Nice\n")
    (tmp_path / "map.yaml").write_text("leadflow_mapping: 1\nlead: id\nat: { column: created }\nattributes:\n"
                                       "  - { column: visits, type: number }\n  - { column: city }\n")
    cmd = [sys.executable, "-m", "engine.cli", "--db", str(tmp_path / "x.db"), "--rules", str(ROOT / "rules")]
    r = subprocess.run(cmd + ["ingest", "--mapping", str(tmp_path / "map.yaml"), str(tmp_path / "leads.csv"), "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and json.loads(r.stdout)["applied"] == 2 and json.loads(r.stdout)["rejected"] == 1
    assert f"{tmp_path / 'leads.csv'}:3: rejected: at:" in r.stderr  # the CSV line of l2
    shown = json.loads(subprocess.run(cmd + ["leads", "show", "l3", "--json"], capture_output=True, text=True,
                                      cwd=ROOT, check=True).stdout)
    assert shown["attributes"] == {"city": "Nice"}  # nan is missing; the rest of the row is kept


def test_a_wait_until_run_late_sees_the_event_that_came_meanwhile(desk):
    ev(desk, "a", "M", "lead_updated", T0, BUYER)  # MQL: case study after 2 business days, then wait for a visit
    desk.run_until(T0 + 2 * 86400 - 3600, desk.clock_obj)  # the worker stops just before the case study
    visit = T0 + 3 * 86400
    ev(desk, "pv", "M", "page_view", visit, {"url": "/pricing"})  # arrives while the worker is down
    desk.run_until(T0 + 4 * 86400, desk.clock_obj)  # back: the wait step runs late, at its own time
    steps = [(r["op"], r["at"]) for r in desk.store.nurture_steps("M")]
    assert ("wait", visit) in steps  # woken by the visit (the next wait starts then), not by the 5-day limit
