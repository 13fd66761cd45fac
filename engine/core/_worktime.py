"""Working hours and time zones: one notion of "business time" for SLA deadlines (and nurture waits).

Hours are written like `mon-fri 09:00-18:00` (or `mon,wed,fri 08:30-12:00`) in the rep's IANA time
zone. Deadlines are computed by walking the local calendar day by day and converting each day's
window to UTC with zoneinfo, so DST changes and weekends come out right.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*([a-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Hours:
    days: frozenset  # weekday numbers, Monday = 0
    start: dtime
    end: dtime | None  # None: midnight at the end of the day (24:00)
    zone: ZoneInfo

    def window(self, day: datetime) -> tuple[float, float] | None:
        """UTC seconds of the working window on a local calendar day, or None on a day off."""
        if day.weekday() not in self.days:
            return None
        opens = datetime.combine(day.date(), self.start, tzinfo=self.zone)
        if self.end is None:
            closes = datetime.combine(day.date() + timedelta(days=1), dtime(0, 0), tzinfo=self.zone)
        else:
            closes = datetime.combine(day.date(), self.end, tzinfo=self.zone)
        return opens.timestamp(), closes.timestamp()


def parse_hours(spec: str | None, timezone: str | None) -> Hours | None:
    """None means "always working"; raises ValueError naming what is wrong."""
    if not spec:
        return None
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{timezone}'; use an IANA name such as Europe/London") from None
    m = _SPEC.match(spec.lower())
    if not m:
        raise ValueError(f"'{spec}' is not working hours; write e.g. 'mon-fri 09:00-18:00'")
    days: set = set()
    for part in m.group(1).split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"unknown day in '{part}'; days are {', '.join(DAYS)}")
            i, j = DAYS.index(a), DAYS.index(b)
            days.update(range(i, j + 1) if i <= j else list(range(i, 7)) + list(range(0, j + 1)))
        elif part in DAYS:
            days.add(DAYS.index(part))
        else:
            raise ValueError(f"unknown day '{part}'; days are {', '.join(DAYS)}")
    h1, m1, h2, m2 = (int(g) for g in m.groups()[1:])
    if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60) or (h1, m1) >= (h2, m2):
        raise ValueError(f"'{spec}': the end of the day must come after its start")
    end = None if h2 == 24 else dtime(h2, m2)
    return Hours(frozenset(days), dtime(h1, m1), end, zone)


def is_working(hours: Hours | None, at: float) -> bool:
    if hours is None:
        return True
    local = datetime.fromtimestamp(at, hours.zone)
    win = hours.window(local)
    return win is not None and win[0] <= at < win[1]


def add_working_time(hours: Hours | None, start: float, seconds: float) -> float:
    """The moment `seconds` of working time after `start` (plain time when hours is None)."""
    if hours is None:
        return start + seconds
    remaining = seconds
    day = datetime.fromtimestamp(start, hours.zone)
    for _ in range(3700):  # ten years of days: a guard against a schedule with no working days
        win = hours.window(day)
        if win is not None:
            begin = max(win[0], start)
            if begin < win[1]:
                available = win[1] - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day = datetime.combine(day.date() + timedelta(days=1), dtime(0, 0), tzinfo=hours.zone)
    raise ValueError("working hours never open")


def rep_hours_problems(rep: dict) -> list[tuple[str, str, str]]:
    """(code, key, message) for a rep's `timezone` and `hours`, so `rules check` reports them where they
    are written instead of the service refusing the rules only when it builds the sales desk."""
    zone, spec = rep.get("timezone"), rep.get("hours")
    if isinstance(zone, str):
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return [("BAD_TIMEZONE", "timezone", f"unknown time zone '{zone}'; use an IANA name such as Europe/London")]
    if isinstance(spec, str) and not isinstance(zone, (dict, list)):
        try:
            parse_hours(spec, zone if isinstance(zone, str) else None)
        except ValueError as exc:
            return [("BAD_HOURS", "hours", str(exc))]
    return []
