"""Incoming events (webhook, JSONL files, Segment): one raw item parsed, Segment payloads, validation.

`validate` returns either a clean event or a `Rejection` naming the field and the reason, so the
caller can keep the raw text as a dead letter; nothing here raises on bad input, however hostile.
What a sender may send depends on who it is: an `Intake` says whether leadflow's own event types
and ids are allowed and how far in the future an event may be dated (see RESERVED_TYPES).

The rules for ids, in one place: `id` and `lead` are strings (the number 7 is refused, not read
as "7", so 7 and "7" can never silently be one event), normalised to Unicode NFC (two spellings of
the same visible text are one id), and refused, never trimmed, when they have spaces at either end
or contain control, invisible (format) or line/paragraph separator characters.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

from leadflow.core import (
    DEFAULT_MAX_FUTURE,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_ID,
    MIN_TIME,
    did_you_mean,
    format_duration,
    parse_time,
    read_json,
)

FIELDS = ("id", "lead", "type", "at", "data")
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,99}")
# Types only leadflow produces: reps' decisions, their consequences, reopenings and decay ticks. From
# outside they would bypass "only the assigned rep or a manager decides". deal_won, deal_lost and
# lead_updated stay open to CRMs; a CRM disqualifies through attributes and `disqualify` rules.
RESERVED_TYPES = frozenset({"sql_accepted", "sql_rejected", "sql_reassigned", "lead_disqualified",
                            "lead_recycled", "lead_reopened", "decay_tick", "stage_imported", "owner_imported"})
# History a CRM import records as such (a stage entered at a date, the lead's owner): trusted input only.
IMPORTED_TYPES = frozenset({"stage_imported", "owner_imported"})
# Ids leadflow gives its own events (fb-12, fb-12-dq, reopen:..., tick:..., nurture:...): an outside
# event holding one in advance would turn leadflow's later event into a duplicate.
RESERVED_IDS = re.compile(r"fb-\d|reopen:|tick:|nurture:")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_MAX_FLOAT = sys.float_info.max


@dataclass(frozen=True)
class Intake:
    """Who sends: what they may send, and the clock that dates their receipt.

    clock None means no limit on future times (leadflow's own events, simulations, tests);
    trusted_types lets an operator import history that holds leadflow's own types (`ingest
    --trusted`, CSV mappings); internal is leadflow itself (its own ids, and an id it finds taken is
    an error for it, never a silent duplicate); history is a CRM export whose mapping names stage
    dates: its events are history, so the rules do not move stages on them (see pipeline/_history.py).
    """

    clock: Callable[[], float] | None = None
    max_future: float = DEFAULT_MAX_FUTURE
    trusted_types: bool = False
    internal: bool = False
    history: bool = False


OUTSIDE = Intake()
INTERNAL = Intake(trusted_types=True, internal=True)


@dataclass
class Rejection:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


@dataclass
class Unreadable:
    """A line its reader already refused (a CSV row with bytes that are not UTF-8, say): the pipeline
    keeps `text` as a dead letter with the rejection, like a line that failed parse_line."""

    text: str
    rejection: Rejection


@dataclass
class Accepted:
    event: dict
    at: float


# ---- raw text ------------------------------------------------------------------------------------

def parse_line(raw: str) -> Any | Rejection:
    """One JSONL line or webhook item: size, encoding and JSON syntax; never raises."""
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError as exc:
        ch = raw[exc.start]
        if "\udc80" <= ch <= "\udcff":  # a byte that was not UTF-8, kept by surrogateescape
            return Rejection("", f"not UTF-8: byte 0x{ord(ch) - 0xDC00:02X} at column {exc.start + 1}")
        return Rejection("", f"not valid Unicode: a lone surrogate at column {exc.start + 1}")
    if size > MAX_EVENT_BYTES:
        return Rejection("", f"event is larger than {MAX_EVENT_BYTES // 1024} KB")
    try:
        return loads(raw)
    except json.JSONDecodeError as exc:
        return Rejection("", f"not JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return Rejection("", f"nested too deeply (at most {MAX_DEPTH} levels)")
    except ValueError as exc:
        return Rejection("", f"not JSON: {exc}")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def loads(raw: str | bytes) -> Any:
    """Strict JSON: NaN and Infinity (which Python's json accepts) are errors."""
    return read_json(raw, parse_constant=_no_constant)


_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape_surrogate(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def storable(text: str) -> str:
    """Text SQLite and JSON answers can hold: a byte that was not UTF-8 (kept by surrogateescape)
    becomes \\xNN, any other lone surrogate \\uNNNN."""
    return text if _surrogate(text) is None else _SURROGATES.sub(_escape_surrogate, text)


# ---- objects -------------------------------------------------------------------------------------

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


def validate(obj: Any, intake: Intake = OUTSIDE) -> Accepted | Rejection:
    """A clean event, or the first problem with its field; never raises, whatever `obj` holds."""
    if not isinstance(obj, dict):
        return Rejection("", f"an event must be a JSON object, not {type(obj).__name__}")
    problem = check_values(obj)
    if problem:
        return problem
    obj = from_segment(obj)
    for name in ("id", "lead", "type", "at"):
        if name not in obj:
            close = [k for k in obj if k not in FIELDS and did_you_mean(name, [k])]
            return Rejection(name, "is missing" + (f" (is '{close[0]}' a typo for it?)" if close else ""))
    ids = {}
    for name in ("id", "lead"):
        checked = check_id(name, obj[name], intake.internal)
        if isinstance(checked, Rejection):
            return checked
        ids[name] = checked
    if not intake.internal and RESERVED_IDS.match(ids["id"]):
        return Rejection("id", "ids that start with fb-<digit>, reopen:, tick: or nurture: are leadflow's own "
                               "(decisions, reopenings, decay ticks, nurture steps); use another id")
    etype = obj["type"]
    if not isinstance(etype, str) or not _TYPE.fullmatch(etype):
        return Rejection("type", f"must be a name such as page_view (letters, digits, _ . : -), not {_short(etype)}")
    if etype in RESERVED_TYPES and not intake.trusted_types:
        return Rejection("type", f"'{etype}' is leadflow's own event type (made by a rep's decision, a nurture track "
                                 "or the scheduler) and cannot be sent from outside; a CRM sends deal_won, "
                                 "deal_lost or lead_updated")
    at = check_time(obj["at"], intake)
    if isinstance(at, Rejection):
        return at
    data = obj.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Rejection("data", f"must be a JSON object, not {type(data).__name__}")
    problem = check_money(etype, data)
    if problem:
        return problem
    event = {"id": ids["id"], "lead": ids["lead"], "type": etype, "at": obj["at"], "data": data}
    return Accepted(event, at)


def check_values(obj: Any) -> Rejection | None:
    """Walk every value (iteratively: depth is what is being checked) for what JSON cannot carry
    safely: non-finite or overflowing numbers, lone surrogates, nesting beyond MAX_DEPTH. Scalars are
    checked in the loop over their container and paths are only spelled out for a problem: this
    runs on every event."""
    problem = _scalar_problem(obj)
    if problem is not _CONTAINER:
        return Rejection("", problem) if problem else None
    stack: list = [("", obj, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return Rejection(path, f"is nested too deeply (at most {MAX_DEPTH} levels)")
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        nested = []
        for key, child in pairs:
            if type(key) is str and not key.isascii() and _surrogate(key) is not None:
                return Rejection(storable(_child(path, key)), "has a key with a lone surrogate, which is not "
                                                              "valid Unicode")
            kind = type(child)
            if (kind is str and child.isascii()) or child is None or kind is bool or \
                    (kind is int and -_MAX_INT <= child <= _MAX_INT) or (kind is float and math.isfinite(child)):
                continue  # the common case, decided without a call
            problem = _scalar_problem(child)
            if problem is _CONTAINER:
                nested.append((_child(path, key), child, depth + 1))
            elif problem:
                return Rejection(_child(path, key), problem)
        stack.extend(reversed(nested))
    return None


_CONTAINER = "container"
_MAX_INT = int(_MAX_FLOAT)


def _scalar_problem(value: Any) -> str | None:
    """What is wrong with one value; _CONTAINER for an object or array (walked by the caller)."""
    if isinstance(value, (dict, list, tuple)):
        return _CONTAINER
    if isinstance(value, str):
        bad = _surrogate(value)
        return None if bad is None else \
            f"contains a lone surrogate (U+{ord(value[bad]):04X}) at position {bad + 1}, which is not valid Unicode"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is not a finite number ({value}); numbers such as 1e400 overflow"
    if isinstance(value, int):
        return None if -_MAX_INT <= value <= _MAX_INT else "is a number too large to store (beyond 1.8e308)"
    return f"is a {type(value).__name__}, not a JSON value"


def _child(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def check_id(name: str, value: Any, internal: bool = False) -> str | Rejection:
    """A lead or event id as stored (NFC), or why it is refused (see the module docstring).

    Leadflow's own events (internal) are exempt from the shape and length rules: their ids are made
    from ids already stored (`tick:<lead>:<due>` is longer than the longest lead id allowed, and a lead
    stored by an older release may have spaces around its id), and must match those exactly.
    """
    if internal and isinstance(value, str) and value:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Rejection(name, f'must be a non-empty string: send "{value}" (in quotes), not the number {value}')
    if not isinstance(value, str) or not value.strip():
        return Rejection(name, f"must be a non-empty string, not {_short(value)}")
    if not (value.isascii() and value.isprintable()):
        value = unicodedata.normalize("NFC", value)
        for i, ch in enumerate(value):
            if unicodedata.category(ch) in _INVISIBLE:
                return Rejection(name, f"contains an invisible or control character (U+{ord(ch):04X}) at position "
                                       f"{i + 1}; ids are compared exactly, so send it without")
    if value != value.strip():
        return Rejection(name, "has spaces at the start or end; send it without them (ids are compared exactly)")
    if len(value) > MAX_ID:
        return Rejection(name, f"is longer than {MAX_ID} characters")
    return value


def check_time(text: Any, intake: Intake) -> float | Rejection:
    try:
        at = parse_time(text)
    except (ValueError, OverflowError) as exc:
        return Rejection("at", storable(str(exc))[:300])
    if at < MIN_TIME:
        return Rejection("at", "is before 1970-01-01T00:00:00Z; event times start in 1970")
    if intake.clock is not None and at > intake.clock() + intake.max_future:
        return Rejection("at", f"is more than {format_duration(intake.max_future)} in the future of the receiving "
                               "clock; send the time the event happened")
    return at


def check_money(etype: str, data: dict) -> Rejection | None:
    """campaign_cost needs a campaign and an amount; a deal_won amount, when given, is a number."""
    if etype == "campaign_cost":
        campaign = data.get("campaign")
        if not isinstance(campaign, str) or not campaign.strip():
            return Rejection("data.campaign", "must be the campaign's name (a non-empty string), not "
                                              f"{_short(campaign)}")
        if data.get("amount") is None:
            return Rejection("data.amount", "is missing; send the cost as a number such as 1200")
    if etype in ("campaign_cost", "deal_won") and data.get("amount") is not None:
        amount = data["amount"]
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            hint = ' (no thousands separators or currency: 1200.50, not "1,200.50")' if isinstance(amount, str) else ""
            return Rejection("data.amount", f"must be a number such as 1200{hint}, not {_short(amount)}")
        if amount < 0:
            return Rejection("data.amount", f"must not be negative, not {amount}")
    return None


def content_digest(lead: str, etype: str, at: float, data: Any) -> str:
    """What an event says, for telling a resent event (same digest) from a conflicting one. A float
    with an integral value counts as that integer (1.0 is 1): senders and JSON libraries write the
    same number both ways, and a resend must stay a duplicate. Digests stored before this rule are
    for the same content written differently: the caller compares the stored content again."""
    text = json.dumps([lead, etype, _integral(at), _integral(data)], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _integral(value: Any) -> Any:
    """`value` with every float that holds a whole number written as the int (depth is bounded by
    check_values)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _surrogate(text: str) -> int | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return exc.start


def _short(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return storable(text if len(text) <= 60 else text[:57] + "...")
