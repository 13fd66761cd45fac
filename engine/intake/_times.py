"""Times in CRM exports: each time column says its `format` and the `timezone` of naive values.

CRMs write times the way their user's locale does: HubSpot "2024-03-04 15:02", Salesforce reports
"3/4/2024" or "3/4/2024 3:02 PM", a European export "04/03/2024". A format is either a strftime
pattern (anything holding '%') or one of the names below, which try a few layouts of the same
field order. A value with its own offset ("...+01:00", "Z") keeps it; a naive value is read in the
column's zone (zoneinfo, IANA names; UTC when none is given), and a date without a time means
midnight in that zone. The stdlib does the parsing (datetime.fromisoformat / strptime): these
layouts are fixed, so nothing needs python-dateutil's guessing, which would read 03/04 both ways.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_US_DAYS = ("%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y")
_EU_DAYS = ("%d/%m/%Y", "%d/%m/%y", "%d.%m.%Y", "%d-%m-%Y")
_CLOCKS = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")

# name -> (the layouts tried in order, how the expected format is written in a rejection)
NAMED_FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "iso": ((), "ISO-8601: YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]"),
    "us": (tuple(f"{d} {c}" for d in _US_DAYS for c in _CLOCKS) + _US_DAYS,
           "us: MM/DD/YYYY, MM/DD/YYYY HH:MM[:SS] or MM/DD/YYYY H:MM AM/PM"),
    "eu": (tuple(f"{d} {c}" for d in _EU_DAYS for c in _CLOCKS) + _EU_DAYS,
           "eu: DD/MM/YYYY, DD.MM.YYYY, DD/MM/YYYY HH:MM[:SS]"),
}


@dataclass(frozen=True)
class TimeFormat:
    """How one column's times are written: a named format or a strftime pattern, and a zone."""

    format: str = "iso"
    timezone: str = "UTC"

    @property
    def expected(self) -> str:
        named = NAMED_FORMATS.get(self.format)
        text = named[1] if named else f"strftime '{self.format}'"
        return f"{text}, naive times in {self.timezone}"

    def parse(self, text: str) -> float:
        """Unix seconds of `text`; ValueError naming the expected format when it does not fit."""
        raw = text.strip()
        moment = _parse(raw, self.format)
        if moment is None:
            raise ValueError(f"'{text}' is not a time in the expected format ({self.expected})")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone(self.timezone))
        try:
            return moment.timestamp()
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"'{text}' is out of range") from None


def _parse(raw: str, fmt: str) -> datetime | None:
    if fmt == "iso":
        text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None
    layouts = NAMED_FORMATS[fmt][0] if fmt in NAMED_FORMATS else (fmt,)
    for layout in layouts:
        try:
            return datetime.strptime(raw, layout)
        except ValueError:
            continue
    return None


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def format_problem(fmt: object) -> str | None:
    """Why `fmt` is not a usable format, or None."""
    if not isinstance(fmt, str) or not fmt:
        return "a format is a name (iso, us, eu) or a strftime pattern such as '%d.%m.%Y %H:%M'"
    if "%" in fmt:
        try:
            datetime(2024, 1, 2, 3, 4, 5).strftime(fmt)
        except ValueError as exc:
            return f"'{fmt}' is not a strftime pattern: {exc}"
        return None
    if fmt not in NAMED_FORMATS:
        return f"unknown time format '{fmt}'"
    return None


def zone_problem(name: object) -> str | None:
    """Why `name` is not an IANA time zone, or None."""
    if not isinstance(name, str) or not name:
        return "a timezone is an IANA name such as Europe/Paris or America/New_York"
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone '{name}'"
    return None


def zone_names() -> set[str]:
    return available_timezones()
