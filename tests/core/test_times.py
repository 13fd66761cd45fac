"""Durations and timestamps: the engine's whole notion of time, so every form users write is pinned."""
from __future__ import annotations

import pytest

from leadflow.core import format_duration, format_time, parse_duration, parse_time


@pytest.mark.parametrize("text, seconds", [("15m", 900), ("4h", 14400), ("30d", 2592000), ("2w", 1209600),
                                           ("1.5h", 5400), (" 10 s ", 10)])
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0d", "-1d", "1y", "d", "", None, 30, "1 day"])
def test_a_duration_that_is_not_one_says_which_forms_are(text):
    with pytest.raises(ValueError, match="15m, 4h, 30d, 2w"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [60, 3600, 86400, 604800, 90, 7200, 1209600])
def test_a_formatted_duration_reads_back_as_itself(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_times_need_a_zone_and_any_zone_is_the_same_instant():
    assert parse_time("2026-11-02T09:00:00Z") == parse_time("2026-11-02T10:00:00+01:00") == 1793610000.0
    assert parse_time("2026-11-02t09:00:00z") == 1793610000.0
    with pytest.raises(ValueError, match="no time zone"):
        parse_time("2026-11-02T09:00:00")
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("yesterday")
    with pytest.raises(ValueError, match="ISO-8601 string"):
        parse_time(1793610000)


def test_a_time_outside_what_a_calendar_shows_prints_as_a_number_instead_of_failing():
    assert format_time(1793610000.0) == "2026-11-02T09:00:00Z"
    assert format_time(1e20).endswith("(out of range)")
