"""A lead's stored state and its score arithmetic: tallies as they are kept in the database, decay."""
from __future__ import annotations

import json

import pytest

from leadflow.rules import LeadState, Tally, TrackEntry, add_tally, may_count, rule_value
from leadflow.rules._model import ScoringRule

# A lead state as the store wrote it before tallies were named tuples (lists in the JSON): a page_view
# rule, a once_every rule with its firing times (the fifth item) and a `once` rule, under 30-day decay.
STORED = ('{"id":"L","stage":"mql","stage_at":1793613600.0,"attrs":{},"clock":1794564000.0,"base":1793610000.0,'
          '"fit_rules":{},"tallies":{"visit":[4.0,2,1793696400.0,4.04674778399355],"webinar":[20.0,2,1794477600.0,'
          '22.620977334560095,[1793613600.0,1794477600.0]],"demo":[20.0,1,1793782800.0,20.945882456412534]},'
          '"counts":{},"times":{},"bant":{"budget":false,"authority":false,"need":false,"timeline":false},"fit":0,'
          '"engagement":36.89,"score":36.89,"disqualified":null,"owner":null,"events":6,"rules_version":"750404fdf8ea",'
          '"tracks":{"welcome":["active",1793613600.0,"webinar_attended"],"recycle":["exited",1793610000.0,null]},'
          '"decay_due":null,"text_hits":{}}')
DAY = 86400.0


def test_a_state_stored_before_named_tallies_and_track_entries_loads_and_is_written_back_unchanged():
    state = LeadState.from_json(json.loads(STORED))
    assert state.tallies["visit"] == Tally(4.0, 2, 1793696400.0, 4.04674778399355)
    assert state.tallies["webinar"].fired_at == [1793613600.0, 1794477600.0]
    assert state.tallies["demo"].count == 1 and state.tallies["demo"].fired_at is None
    assert state.tracks["welcome"] == TrackEntry("active", 1793613600.0, "webinar_attended")
    assert state.tracks["recycle"].status == "exited" and state.tracks["recycle"].waiting_for is None
    assert json.dumps(state.to_json(), separators=(",", ":")) == STORED


def test_a_once_every_tally_stored_with_four_items_still_knows_its_latest_firing():
    # Tallies written before the firing times were kept hold only [raw, count, last_at, decay_acc].
    state = LeadState.from_json({"id": "L", "tallies": {"webinar": [10.0, 1, 100 * DAY, 0.0]}})
    rule = ScoringRule("webinar", "engagement", points=10, on="webinar_attended", repeat="once_every",
                       repeat_every=7 * DAY)
    assert may_count(rule, state.tallies["webinar"], 103 * DAY) == 0  # within 7 days of the stored firing
    assert may_count(rule, state.tallies["webinar"], 108 * DAY) == 10
    add_tally(state, rule, 10, 108 * DAY, None)
    assert state.tallies["webinar"] == Tally(20.0, 2, 108 * DAY, 0.0, [100 * DAY, 108 * DAY])
    assert state.to_json()["tallies"]["webinar"] == [20.0, 2, 108 * DAY, 0.0, [100 * DAY, 108 * DAY]]


def test_decay_keeps_its_value_when_the_base_time_moves_forward():
    # Past 300 half-lives the accumulators are rescaled to a new base time (they would overflow otherwise);
    # every tally's value, not only the one being added to, must stay what it was.
    half_life = 100.0
    old = ScoringRule("old", "engagement", points=10, on="visit")
    new = ScoringRule("new", "engagement", points=10, on="demo")
    state = LeadState("L")
    add_tally(state, old, 10, 0.0, half_life)
    add_tally(state, new, 10, 30100.0, half_life)
    assert state.base == 30100.0
    assert rule_value(state, "old", 30100.0, half_life) == pytest.approx(10 * 2.0 ** -301, rel=1e-9)
    assert rule_value(state, "new", 30100.0, half_life) == 10
    assert rule_value(state, "new", 30200.0, half_life) == pytest.approx(5)
