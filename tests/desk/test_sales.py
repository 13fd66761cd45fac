"""The sales desk as the in-process worker runs it on the bundled rules: what happens to an SQL's card
when the lead is disqualified, rejected or passed on, and what escalation counts."""
from __future__ import annotations

from tests.bundled_service import DAY, T0


def test_a_disqualified_lead_loses_its_pending_card_instead_of_being_reassigned(bundled_db):
    service = bundled_db.service
    bundled_db.sql("D")
    bundled_db.apply("c", "D", "lead_updated", T0 + 120, {"do_not_contact": True})
    bundled_db.clock.now = T0 + 10 * 3600
    service.work_once()
    assert [a["status"] for a in service.store.assignments(lead="D")] == ["closed"]
    assert "[update] D is closed" in bundled_db.out.getvalue()


def test_escalation_counts_expired_assignments_not_reassignments(bundled_db):
    service = bundled_db.service
    first = bundled_db.sql("E", country="GB")
    service.desk.decide(first["id"], "reject", "x", first["rep"], reason="wrong_rep")  # passed on, not expired
    bundled_db.clock.now = T0 + 3 * DAY
    counts = service.work_once()
    assert counts["reassigned"] == 1 and counts["escalated"] == 0
    assert not [o for o in service.store.outbox("escalate")]


def test_a_rejected_lead_that_buys_later_is_won(bundled_db):
    service = bundled_db.service
    service.desk.decide(bundled_db.sql("W")["id"], "reject", "x", "alice", reason="no_budget")
    bundled_db.apply("c", "W", "deal_won", T0 + 90 * DAY, {"amount": 12000})
    assert service.store.load_state("W").stage == "won"
