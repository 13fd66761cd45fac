"""Routing choices and working-hours arithmetic (pure parts: no server, no database)."""
from __future__ import annotations

import pytest

from leadflow.core import add_working_time, format_time, is_working, parse_hours, parse_time
from leadflow.desk._routing import Rep, RoutingTable, choose


def table(**reps: Rep) -> RoutingTable:
    return RoutingTable(reps=reps, entries=[(None, list(reps), "all")], fallback="#queue", sla={}, reasons={}, managers=[])


NOW = parse_time("2026-11-04T15:00:00Z")  # a Wednesday


def test_weighted_round_robin_follows_the_weights():
    d = table(alice=Rep("alice", weight=2), bob=Rep("bob", weight=1))
    totals: dict = {}
    picks = []
    for _ in range(9):
        rep = choose(d, {}, NOW, {}, totals).rep.id
        totals[rep] = totals.get(rep, 0) + 1
        picks.append(rep)
    assert picks.count("alice") == 6 and picks.count("bob") == 3
    assert picks[:3] == ["alice", "alice", "bob"]


def test_away_capacity_hours_and_fallback():
    london = parse_hours("mon-fri 09:00-17:30", "Europe/London")
    d = table(alice=Rep("alice", away=True), bob=Rep("bob", capacity=2), chen=Rep("chen", hours=london))
    choice = choose(d, {}, NOW, {"bob": 2}, {})
    assert choice.rep.id == "chen" and "alice is away" in choice.why and "bob is at capacity (2)" in choice.why
    night = parse_time("2026-11-04T22:00:00Z")
    nobody = choose(d, {}, night, {"bob": 2}, {})
    assert nobody.rep is None and nobody.channel == "#queue" and "chen is outside working hours" in nobody.why
    assert choose(d, {}, NOW, {}, {}, exclude={"bob", "chen"}).rep is None


def test_first_matching_entry_wins():
    from leadflow.rules import ConditionParser

    cond = ConditionParser("attributes", [], lambda p, k=False: None).parse({"country": {"in": ["US", "CA"]}}, ())
    d = RoutingTable(reps={"alice": Rep("alice"), "bob": Rep("bob")},
             entries=[(cond, ["alice"], "NA"), (None, ["bob"], "rest")], fallback=None, sla={}, reasons={}, managers=[])
    assert choose(d, {"country": "CA"}, NOW, {}, {}).rep.id == "alice"
    assert choose(d, {"country": "FR"}, NOW, {}, {}).rep.id == "bob"
    assert choose(d, {}, NOW, {}, {}).why.startswith("rest")


@pytest.mark.parametrize("start, hours, expected", [
    # Friday 17:00 BST, 4 working hours: 30 min on Friday, DST ends on Sunday, 3.5 h on Monday (GMT)
    ("2026-10-23T16:00:00Z", 4, "2026-10-26T12:30:00Z"),
    # Friday 16:00 GMT: 1.5 h, DST starts on Sunday, Monday opens 09:00 BST = 08:00Z
    ("2026-03-27T16:00:00Z", 4, "2026-03-30T10:30:00Z"),
    # Saturday: nothing until Monday 09:00
    ("2026-11-07T12:00:00Z", 1, "2026-11-09T10:00:00Z"),
    # within one day
    ("2026-11-04T10:00:00Z", 2, "2026-11-04T12:00:00Z"),
])
def test_working_time_across_weekends_and_dst(start, hours, expected):
    london = parse_hours("mon-fri 09:00-17:30", "Europe/London")
    assert format_time(add_working_time(london, parse_time(start), hours * 3600)) == expected


def test_hours_parsing_and_errors():
    ny = parse_hours("mon,wed,fri 08:30-12:00", "America/New_York")
    assert is_working(ny, parse_time("2026-11-04T14:00:00Z"))  # Wed 09:00 EST
    assert not is_working(ny, parse_time("2026-11-05T14:00:00Z"))  # Thursday
    assert add_working_time(None, 100.0, 50) == 150.0
    for spec, zone, message in [("weekdays 9-5", "UTC", "not working hours"), ("mon-fri 18:00-09:00", "UTC", "after"),
                                ("mon-fri 09:00-17:00", "Mars/Olympus", "time zone"), ("mon-fry 09:00-17:00", "UTC", "day")]:
        with pytest.raises(ValueError, match=message):
            parse_hours(spec, zone)
