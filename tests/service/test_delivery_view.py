"""The read-only view delivery is given (`LeadService.view`): what a card shows comes from the live
rules and routing table, so a reload is seen by the next delivery without rebuilding any notifier."""
from __future__ import annotations

import textwrap
from pathlib import Path

from engine.service import LeadService

RULES = textwrap.dedent("""\
    leadflow: 1
    events: { page_view: a page view }
    scoring:
      engagement:
        - id: views
          on: page_view
          points: 5
    stages:
      mql:
        when: { score: { at_least: 10 } }
    reps:
      - { id: alice, name: Alice, slack: U0ALICE01 }
    routing:
      - { pool: [alice] }
    fallback: { channel: "#sales-queue" }
    feedback:
      reject_reasons:
        - { id: not_now, label: "Not now" }
    """)


def test_a_card_and_a_route_follow_the_rules_after_a_reload(tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES, encoding="utf-8")
    service = LeadService(str(tmp_path / "v.db"), str(rules))
    try:
        event = {"id": "e1", "lead": "L1", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {}}
        assert service.pipeline.apply(event).status == "applied"
        assignment = service.desk.assign("L1")
        view = service.view

        card = view.card(assignment["id"])
        assert (card.assignment["rep"], card.lead["id"], card.lead["score"]) == ("alice", "L1", 5)
        assert (card.route.slack, card.route.fallback) == ("U0ALICE01", "#sales-queue")
        assert card.reason_labels == {"not_now": "Not now"} and card.assignments == 1
        assert view.route("nobody").slack is None

        edited = RULES.replace("U0ALICE01", "U0ALICE02").replace("#sales-queue", "#new-queue") \
            .replace('"Not now"', '"Not this quarter"')
        (rules / "rules.yaml").write_text(edited, encoding="utf-8")
        assert service.reload_rules() is True

        again = view.card(assignment["id"])  # the same view object, as a notifier holds it
        assert (again.route.slack, again.route.fallback) == ("U0ALICE02", "#new-queue")
        assert again.reason_labels == {"not_now": "Not this quarter"}
        assert view.route("alice").slack == "U0ALICE02"
    finally:
        service.store.close()
