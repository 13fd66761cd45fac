"""Periods as people type them ("last month", "this quarter", "last 30 days", "2026-Q1", an ISO date)
and the calendar buckets of the trend. Everything is UTC, like the weekly buckets and stored times.
The stdlib's datetime does the calendar arithmetic; python-dateutil's fuzzy parser was not used
because it guesses ("may" becomes a date in May), and a report period must never be a guess."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from leadflow.core import parse_time

MONDAY = 345600.0  # 1970-01-05, a Monday: weeks run Monday to Sunday
WEEK = 604800.0
FORMS = ("today, yesterday, this/last week|month|quarter|year, last N days|weeks|months|quarters|years, "
         "YYYY, YYYY-MM, YYYY-Qn, YYYY-MM-DD or an ISO time with a zone")
_LIMIT = {"day": 3650, "week": 521, "month": 120, "quarter": 40, "year": 10}  # ten years back at most
_LAST_N = re.compile(r"(?:last|past)\s+(\d{1,6})\s+(day|week|month|quarter|year)s?")
_NAMED = re.compile(r"(this|last|previous)\s+(week|month|quarter|year)")


@dataclass(frozen=True)
class Period:
    start: float
    end: float | None  # None: up to now
    label: str


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _months(d: datetime, n: int) -> datetime:
    """The first of the month n months after d's month (n may be negative)."""
    year, month = divmod(d.year * 12 + d.month - 1 + n, 12)
    return datetime(year, month + 1, 1, tzinfo=timezone.utc)


def _span(start: datetime, unit: str, n: int = 1) -> datetime:
    if unit == "day":
        return start + timedelta(days=n)
    if unit == "week":
        return start + timedelta(weeks=n)
    return _months(start, n * {"month": 1, "quarter": 3, "year": 12}[unit])


def _start_of(d: datetime, unit: str) -> datetime:
    day = d.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    return day.replace(month=1, day=1)


def shown(text: str) -> str:
    """The value as typed, safe to print in an error: quoted, control characters escaped, cut short."""
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def period(text: str, now: float) -> Period:
    """The period a phrase or date names; ValueError with the value as typed and the forms understood."""
    t = " ".join(text.lower().split())
    today = _start_of(_utc(now), "day")
    m = _LAST_N.fullmatch(t)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if not 1 <= n <= _LIMIT[unit]:
            raise ValueError(f"{shown(text)}: from 1 to {_LIMIT[unit]} {unit}s back (ten years at most)")
        if unit in ("day", "week"):
            start = today - timedelta(days=n * (7 if unit == "week" else 1))
        else:  # the same day n months back (the 31st becomes the month's last day)
            start = _months(today, -n * {"month": 1, "quarter": 3, "year": 12}[unit])
            start = start.replace(day=min(today.day, (_months(start, 1) - timedelta(days=1)).day))
        return Period(start.timestamp(), None, f"last {n} {unit}{'s' if n > 1 else ''}")
    if t in ("today", "yesterday"):
        start = today - timedelta(days=t == "yesterday")
        return Period(start.timestamp(), _span(start, "day").timestamp(), t)
    m = _NAMED.fullmatch(t)
    if m:
        unit, current = m.group(2), _start_of(today, m.group(2))
        if m.group(1) == "this":
            return Period(current.timestamp(), None, t)
        return Period(_span(current, unit, -1).timestamp(), current.timestamp(), f"last {unit}")
    return _calendar(text, t)


def _calendar(text: str, t: str) -> Period:
    """YYYY, YYYY-MM, YYYY-Qn, YYYY-MM-DD (whole periods) or an ISO time with a zone (from that moment)."""
    try:
        if re.fullmatch(r"\d{4}", t):
            start, unit = datetime(int(t), 1, 1, tzinfo=timezone.utc), "year"
        elif re.fullmatch(r"\d{4}-\d{2}", t):
            start, unit = datetime(int(t[:4]), int(t[5:]), 1, tzinfo=timezone.utc), "month"
        elif re.fullmatch(r"\d{4}-q[1-4]", t):
            start, unit = datetime(int(t[:4]), 3 * int(t[6]) - 2, 1, tzinfo=timezone.utc), "quarter"
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            start, unit = datetime.fromisoformat(t).replace(tzinfo=timezone.utc), "day"
        else:
            return Period(parse_time(text.strip()), None, text.strip())
        return Period(start.timestamp(), _span(start, unit).timestamp(), t.upper() if "q" in t else t)
    except ValueError:
        raise ValueError(f"{shown(text)} is not a period or a date; use {FORMS}") from None


# ---- the trend's buckets ----------------------------------------------------------------------------

def _bucket(ts: float, unit: str) -> tuple[float, float]:
    if unit == "week":
        start = MONDAY + (ts - MONDAY) // WEEK * WEEK
        return start, start + WEEK
    first = _start_of(_utc(ts), "month")
    return first.timestamp(), _months(first, 1).timestamp()


def trend(days: dict, since: float | None, until: float | None, now: float, stages: tuple) -> dict:
    """Entries per week (when the data spans 26 weeks or less) or per month, from the first day with
    data to the last (or to `until`, if it is later and not in the future). A period the
    window [since, min(until, now)) cuts is `partial`, so a half-finished week is not read as a drop."""
    if not days:
        return {"unit": "week", "periods": []}
    first, last = min(days) * 86400.0, max(days) * 86400.0
    end = min(until if until is not None else now, now)
    if until is not None and end > first:
        last = max(last, end - 1)
    unit = "week" if last - first <= 26 * WEEK else "month"
    periods, at = [], _bucket(first, unit)[0]
    while at <= last:
        lo, hi = _bucket(at, unit)
        counts: dict = dict.fromkeys(stages, 0)
        for day in range(int(lo // 86400), int(hi // 86400)):
            for stage, n in days.get(day, {}).items():
                counts[stage] += n
        periods.append({"start": lo, "end": hi, **counts,
                        "partial": (since is not None and since > lo) or hi > end})
        at = hi
    return {"unit": unit, "periods": periods}
