"""Incoming events (DESIGN.md section 4): validation, Segment payloads, and JSONL reading.

`validate` returns either a clean event or a `Rejection` naming the field and the reason, so the
caller can keep the raw text as a dead letter; nothing here raises on bad input.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import did_you_mean
from .timeutil import parse_time

MAX_EVENT_BYTES = 64 * 1024
MAX_ID = 200
FIELDS = ("id", "lead", "type", "at", "data")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")


@dataclass
class Rejection:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


@dataclass
class Accepted:
    event: dict
    at: float


def parse_line(raw: str) -> Any | Rejection:
    if len(raw.encode("utf-8", "replace")) > MAX_EVENT_BYTES:
        return Rejection("", f"event is larger than {MAX_EVENT_BYTES // 1024} KB")
    try:
        return loads(raw)
    except json.JSONDecodeError as exc:
        return Rejection("", f"not JSON: {exc.msg} at column {exc.colno}")
    except ValueError as exc:
        return Rejection("", f"not JSON: {exc}")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def loads(raw: str | bytes) -> Any:
    """Strict JSON: NaN and Infinity (which Python's json accepts) are errors."""
    return json.loads(raw, parse_constant=_no_constant)


def from_segment(obj: dict) -> dict:
    """Segment `identify`/`track` payloads as leadflow events (other objects pass through)."""
    kind = obj.get("type")
    if kind not in ("identify", "track") or "messageId" not in obj:
        return obj
    lead = obj.get("userId") or obj.get("anonymousId")
    if kind == "identify":
        return {"id": obj.get("messageId"), "lead": lead, "type": "lead_updated",
                "at": obj.get("timestamp") or obj.get("sentAt"), "data": obj.get("traits") or {}}
    name = obj.get("event")
    etype = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_") if isinstance(name, str) else name
    return {"id": obj.get("messageId"), "lead": lead, "type": etype,
            "at": obj.get("timestamp") or obj.get("sentAt"), "data": obj.get("properties") or {}}


def validate(obj: Any) -> Accepted | Rejection:
    if not isinstance(obj, dict):
        return Rejection("", f"an event must be a JSON object, not {type(obj).__name__}")
    obj = from_segment(obj)
    for name in ("id", "lead", "type", "at"):
        if name not in obj:
            close = [k for k in obj if k not in FIELDS and did_you_mean(name, [k])]
            return Rejection(name, "is missing" + (f" (is '{close[0]}' a typo for it?)" if close else ""))
    for name in ("id", "lead"):
        value = obj[name]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return Rejection(name, f"must be a non-empty string, not {json.dumps(value)}")
        if len(value) > MAX_ID:
            return Rejection(name, f"is longer than {MAX_ID} characters")
        obj[name] = value
    if not isinstance(obj["type"], str) or not _TYPE.match(obj["type"]):
        return Rejection("type", f"must be a name such as page_view (letters, digits, _ . : -), "
                                 f"not {json.dumps(obj['type'])}")
    try:
        at = parse_time(obj["at"])
    except ValueError as exc:
        return Rejection("at", str(exc))
    data = obj.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Rejection("data", f"must be a JSON object, not {type(data).__name__}")
    event = {"id": obj["id"], "lead": obj["lead"], "type": obj["type"], "at": obj["at"], "data": data}
    return Accepted(event, at)


def read_jsonl(path: str) -> Iterator[tuple[int, str]]:
    """(line number, raw text) for every non-blank line; '-' reads standard input."""
    import sys

    fh = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")
    try:
        for number, line in enumerate(fh, 1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield number, text
    finally:
        if fh is not sys.stdin:
            fh.close()
