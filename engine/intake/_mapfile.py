"""Mapping files: read and checked like rule files (every problem FILE:LINE:COL: CODE: message, an
unknown key anywhere with did-you-mean), into a `CsvMapping`. See _mapping.py for what rows become.

    leadflow_mapping: 1
    name: hubspot-contacts          # this mapping's part of every event id (default: the file's name)
    lead: Record ID
    times: { format: us, timezone: America/New_York }   # default for every time column below
    at: { column: Create Date }     # or one ISO time for every row
    missing: ["", Select]
    attributes: [{ column: Lead Source, as: source }, { column: Visits, type: number }]
    events: [{ column: Last Activity, type: from_value, field: activity }]
    owner: { column: Contact owner }                    # a rep's id, e-mail or name (reps: in routing)
    stages:                         # history: the date a lead entered each stage
      - { column: Became a Marketing Qualified Lead Date, stage: mql }
    stage: { column: Status, at: { column: Status Date }, values: { Working: sql } }  # or a stage + date pair
    outcome: { column: Deal Stage, won: [closedwon], lost: [closedlost], at: { column: Close Date },
               amount: { column: Amount } }
    feedback: { column: Tags, accept: [...], reject: { Ringing: no_answer } }
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from leadflow.core import LeadflowError, Problem, did_you_mean, load_file, parse_time

from ._times import NAMED_FORMATS, TimeFormat, format_problem, zone_names, zone_problem

STAGES = ("new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost", "disqualified")
TOP_KEYS = ("leadflow_mapping", "name", "lead", "at", "times", "missing", "attributes", "events", "owner",
            "stages", "stage", "outcome", "feedback", "ends_at_blank_line")
TIME_KEYS = ("column", "format", "timezone")


class MappedAttribute(NamedTuple):
    """A column that becomes a lead attribute."""

    column: str
    name: str
    kind: str  # text | number | boolean


class MappedEvent(NamedTuple):
    """A column whose non-missing value becomes an event of the lead."""

    column: str
    type: str | None  # None: the value, as lower_snake_case, is the type (`from_value`)
    field: str  # the data field that carries the value


@dataclass(frozen=True)
class TimeColumn:
    column: str
    format: TimeFormat


@dataclass(frozen=True)
class StageColumn:
    """A column holding the date the lead entered `stage` (HubSpot's "Became a ... Date")."""

    column: str
    stage: str
    format: TimeFormat


@dataclass(frozen=True)
class StagePair:
    """A stage column and its date column; `values` maps the CRM's words to leadflow stages."""

    column: str
    at: TimeColumn
    values: dict


@dataclass(frozen=True)
class MappedOutcome:
    column: str
    won: frozenset
    lost: frozenset
    at: TimeColumn | None = None  # when the deal was won or lost; None: a day after the row's time
    amount: str | None = None


@dataclass(frozen=True)
class MappedFeedback:
    column: str
    accept: frozenset
    reject: dict


@dataclass
class CsvMapping:
    """A checked mapping file: how each CSV row becomes a lead's events and labels."""

    lead: str
    at_value: float | None
    at_column: TimeColumn | None
    missing: set
    attributes: list[MappedAttribute]
    events: list[MappedEvent]
    outcome: MappedOutcome | None = None
    feedback: MappedFeedback | None = None
    name: str = "csv"
    owner: str | None = None
    stages: list[StageColumn] = field(default_factory=list)
    stage: StagePair | None = None
    ends_at_blank_line: bool = False  # what follows is the report's footer (Salesforce's CSV exports)

    @property
    def history(self) -> bool:
        """Rows are history (stages come from the file, the rules do not re-derive them) when the
        mapping names stage dates or the date of the outcome."""
        return bool(self.stages or self.stage or (self.outcome and self.outcome.at))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


class _Checker:
    """Walks the document, collecting every problem with its position."""

    def __init__(self, doc: Any, problems: list, header: list[str] | None) -> None:
        self.doc, self.problems = doc, problems
        self.header = header
        self.columns = set(header or [])

    def bad(self, code: str, message: str, p: tuple, hint: str = "", key: bool = False) -> None:
        self.problems.append(Problem(code, message, self.doc.at(p, key), hint))

    def keys(self, value: Any, p: tuple, allowed: tuple) -> dict:
        """`value` as a dict, each unknown key reported with the closest allowed one."""
        if not isinstance(value, dict):
            self.bad("WRONG_TYPE", f"expected a mapping with keys {', '.join(allowed)}", p)
            return {}
        for key in value:
            if key not in allowed:
                self.bad("UNKNOWN_KEY", f"unknown key '{key}'", (*p, key), did_you_mean(key, allowed) or
                         f"allowed here: {', '.join(allowed)}", key=True)
        return value

    def column(self, value: Any, p: tuple) -> str:
        if not isinstance(value, str) or not value:
            self.bad("WRONG_TYPE", "expected a column name", p)
            return ""
        if self.header is not None and value not in self.columns:
            self.bad("UNKNOWN_COLUMN", f"the CSV has no column '{value}'", p, did_you_mean(value, self.columns))
        return value

    def text(self, value: Any, p: tuple, default: str) -> str:
        if value is None:
            return default
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.bad("WRONG_TYPE", "expected text", p)
            return default
        return str(value)

    def words(self, value: Any, p: tuple, default: tuple = ()) -> frozenset:
        if value is None:
            return frozenset(default)
        if not isinstance(value, list):
            self.bad("WRONG_TYPE", "expected a list of values", p)
            return frozenset()
        return frozenset(str(v) for v in value)

    def time_format(self, value: dict, p: tuple, default: TimeFormat) -> TimeFormat:
        fmt = value.get("format", default.format)
        tz = value.get("timezone", default.timezone)
        problem = format_problem(fmt)
        if problem:
            self.bad("BAD_VALUE", problem, (*p, "format"), did_you_mean(fmt, NAMED_FORMATS) or
                     "names: iso, us (MM/DD/YYYY), eu (DD/MM/YYYY); or a strftime pattern")
            fmt = "iso"
        problem = zone_problem(tz)
        if problem:
            self.bad("BAD_VALUE", problem, (*p, "timezone"), did_you_mean(tz, zone_names()))
            tz = "UTC"
        return TimeFormat(fmt, tz)

    def time_column(self, value: Any, p: tuple, default: TimeFormat) -> TimeColumn:
        if isinstance(value, str):  # a bare column name takes the default format
            return TimeColumn(self.column(value, p), default)
        value = self.keys(value, p, TIME_KEYS)
        return TimeColumn(self.column(value.get("column"), (*p, "column")), self.time_format(value, p, default))

    def stage_name(self, value: Any, p: tuple) -> str:
        if value not in STAGES:
            self.bad("BAD_VALUE", f"unknown stage '{value}'", p, did_you_mean(str(value), STAGES) or
                     f"stages: {', '.join(STAGES)}")
            return "new"
        return value


def load_mapping(path: str, header: list[str] | None = None) -> CsvMapping:
    """The checked mapping, or LeadflowError with every problem found (each with its position)."""
    doc, problems = load_file(path)
    if doc is None:
        raise LeadflowError(problems)
    ck = _Checker(doc, problems, header)
    data = ck.keys(doc.data, (), TOP_KEYS) if isinstance(doc.data, dict) else {}
    if data.get("leadflow_mapping") != 1:
        ck.bad("MISSING_VERSION", "a mapping file starts with 'leadflow_mapping: 1'", ())
    name = ck.text(data.get("name"), ("name",), slug(os.path.splitext(os.path.basename(path))[0]) or "csv")
    times = ck.time_format(ck.keys(data.get("times", {}), ("times",), ("format", "timezone")), ("times",),
                           TimeFormat())
    lead = ck.column(data.get("lead"), ("lead",))
    at = data.get("at", "2026-01-05T09:00:00Z")
    at_value, at_column = None, None
    if isinstance(at, dict):
        at_column = ck.time_column(at, ("at",), times)
    else:
        try:
            at_value = parse_time(str(at))
        except ValueError as exc:
            ck.bad("BAD_TIME", str(exc), ("at",))
    attributes = _attributes(ck, data.get("attributes"))
    events = _events(ck, data.get("events"))
    owner = None
    if data.get("owner") is not None:
        owner = ck.column(ck.keys(data["owner"], ("owner",), ("column",)).get("column"), ("owner", "column"))
    stages = []
    for i, s in enumerate(_list(ck, data.get("stages"), ("stages",))):
        s = ck.keys(s, ("stages", i), TIME_KEYS + ("stage",))
        stages.append(StageColumn(ck.column(s.get("column"), ("stages", i, "column")),
                                  ck.stage_name(s.get("stage"), ("stages", i, "stage")),
                                  ck.time_format(s, ("stages", i), times)))
    stage = None
    if data.get("stage") is not None:
        s = ck.keys(data["stage"], ("stage",), ("column", "at", "values"))
        values = ck.keys(s.get("values", {}), ("stage", "values"), tuple(map(str, s.get("values") or {})))
        stage = StagePair(ck.column(s.get("column"), ("stage", "column")),
                          ck.time_column(s.get("at"), ("stage", "at"), times),
                          {str(k): ck.stage_name(v, ("stage", "values", k)) for k, v in values.items()})
    outcome = None
    if data.get("outcome") is not None:
        o = ck.keys(data["outcome"], ("outcome",), ("column", "won", "lost", "at", "amount"))
        amount = o.get("amount")
        if amount is not None:
            amount = ck.column(amount if isinstance(amount, str) else
                               ck.keys(amount, ("outcome", "amount"), ("column",)).get("column"), ("outcome", "amount"))
        outcome = MappedOutcome(ck.column(o.get("column"), ("outcome", "column")),
                                ck.words(o.get("won"), ("outcome", "won"), ("1",)),
                                ck.words(o.get("lost"), ("outcome", "lost"), ("0",)),
                                ck.time_column(o["at"], ("outcome", "at"), times) if o.get("at") is not None else None,
                                amount)
    feedback = None
    if data.get("feedback") is not None:
        f = ck.keys(data["feedback"], ("feedback",), ("column", "accept", "reject"))
        reject = ck.keys(f.get("reject", {}), ("feedback", "reject"), tuple(map(str, f.get("reject") or {})))
        feedback = MappedFeedback(ck.column(f.get("column"), ("feedback", "column")),
                                  ck.words(f.get("accept"), ("feedback", "accept")),
                                  {str(k): str(v) for k, v in reject.items()})
    missing = ck.words(data.get("missing"), ("missing",), ("",))
    ends = data.get("ends_at_blank_line", False)
    if not isinstance(ends, bool):
        ck.bad("BAD_MAPPING", "ends_at_blank_line is true or false", ("ends_at_blank_line",),
               "true when the export ends its rows with a blank line and a footer (Salesforce report CSVs)")
    if problems:
        raise LeadflowError(problems)
    return CsvMapping(lead, at_value, at_column, set(missing), attributes, events, outcome, feedback, name, owner,
                      stages, stage, ends is True)


def _list(ck: _Checker, value: Any, p: tuple) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        ck.bad("WRONG_TYPE", "expected a list", p)
        return []
    return value


def _attributes(ck: _Checker, value: Any) -> list[MappedAttribute]:
    out = []
    for i, a in enumerate(_list(ck, value, ("attributes",))):
        a = ck.keys(a, ("attributes", i), ("column", "as", "type")) if isinstance(a, dict) else {"column": a}
        kind = a.get("type", "text")
        if kind not in ("text", "number", "boolean"):
            ck.bad("BAD_VALUE", f"unknown type '{kind}'", ("attributes", i, "type"),
                   did_you_mean(str(kind), ("text", "number", "boolean")) or "types: text, number, boolean")
        col = ck.column(a.get("column"), ("attributes", i, "column") if isinstance(value[i], dict) else ("attributes", i))
        out.append(MappedAttribute(col, ck.text(a.get("as"), ("attributes", i, "as"), slug(col)), kind))
    return out


def _events(ck: _Checker, value: Any) -> list[MappedEvent]:
    out = []
    for i, e in enumerate(_list(ck, value, ("events",))):
        e = ck.keys(e, ("events", i), ("column", "type", "field"))
        col = ck.column(e.get("column"), ("events", i, "column"))
        etype = ck.text(e.get("type"), ("events", i, "type"), "from_value")
        out.append(MappedEvent(col, None if etype == "from_value" else etype,
                               ck.text(e.get("field"), ("events", i, "field"), "value")))
    return out
