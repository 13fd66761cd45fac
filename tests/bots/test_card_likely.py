"""The rep's card says how likely the lead is to buy, next to the score, when the rules have a
calibration (calibration.yaml), and nothing of it without one. The harness's SQL lead scores 70
(senior 30 + demo 40), which reaches the calibration's step at 50."""
from __future__ import annotations

import json

import pytest

from tests.bot_harness import Service, sql_events
from tests.calibrations import calibration_yaml
from tests.slack_fake import SlackFake

CALIBRATION = calibration_yaml([(0, 0.05), (50, 0.64), (90, 0.9)], method="platt")


@pytest.fixture
def fake():
    with SlackFake() as f:
        yield f


def score_text(fake: SlackFake) -> str:
    """The text of the card's section that shows the score."""
    card = fake.wait_for("chat.postMessage", 1, where=lambda c: c["args"].get("blocks"))[0]["args"]
    found = [b["text"]["text"] for b in card["blocks"] if b["type"] == "section" and b.get("text")
             and b["text"]["text"].startswith("*Score")]
    assert len(found) == 1, json.dumps(card["blocks"])
    return found[0]


def test_the_card_shows_likely_to_buy_next_to_the_score(tmp_path, fake):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "calibration.yaml").write_text(CALIBRATION)
    with Service(tmp_path, fake) as svc:
        assert svc.send_events(sql_events("lead-1")).status_code == 200
        assert score_text(fake).startswith("*Score 70* · likely to buy: 64% (fit 30, engagement 40)\n")


def test_without_a_calibration_the_card_is_unchanged(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        assert svc.send_events(sql_events("lead-1")).status_code == 200
        text = score_text(fake)
        assert text.startswith("*Score 70* (fit 30, engagement 40)\n")
        assert "likely" not in text and "None" not in text
