"""Durations (`15m`, `4h`, `30d`, `2w`) and event timestamps.

Rules never read the wall clock: time comes from event timestamps, so the parsing here is the whole
notion of time the engine has.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: object) -> float:
    """Seconds in a duration such as `30d`; raises ValueError with the accepted forms."""
    if isinstance(text, str):
        m = _DURATION.match(text)
        if m:
            value = float(m.group(1)) * _UNITS[m.group(2)]
            if value > 0:
                return value
    raise ValueError(f"'{text}' is not a duration; write a positive number and a unit: 15m, 4h, 30d, 2w")


def format_duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def parse_time(text: object) -> float:
    """Unix seconds of an ISO-8601 time that carries a zone; raises ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("must be an ISO-8601 string such as 2026-11-02T09:00:00Z")
    raw = text.strip()
    if "\x00" in raw:  # CPython's fromisoformat stops reading at a trailing NUL and accepts the time
        raise ValueError(f"'{text}' is not an ISO-8601 time such as 2026-11-02T09:00:00Z")
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO-8601 time such as 2026-11-02T09:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"'{text}' has no time zone; add Z or an offset such as +01:00")
    return moment.timestamp()


def format_time(seconds: float) -> str:
    """ISO-8601 in UTC. A stored time outside what datetime can show (kept before ingest refused
    times before 1970) is printed as a number, so one old bad row never breaks `leads show`."""
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"{seconds:.0f} s from 1970 (out of range)"
