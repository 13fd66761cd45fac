"""CSV import: a mapping file says which column is the lead id, which are attributes (renamed and
typed, with values that mean "missing"), which become events, and which hold the outcome and the
reps' verdicts. Rows become ordinary events, so they are validated, idempotent and explained like
any other; `labelled_leads` gives the same rows to `eval` and `rules tune` with their labels apart.

    leadflow_mapping: 1
    lead: Prospect ID
    at: 2026-01-05T09:00:00Z        # one time for every row, or { column: Created }
    missing: ["", Select]
    attributes:
      - { column: Lead Origin, as: lead_origin }
      - { column: TotalVisits, as: total_visits, type: number }
      - { column: Do Not Email, as: do_not_email, type: boolean }   # Yes/No, true/false, 1/0
    events:
      - { column: Last Activity, type: from_value }   # the value, as lower_snake_case, is the type
    outcome: { column: Converted, won: ["1"], lost: ["0"] }
    feedback: { column: Tags, accept: [...], reject: { Ringing: no_answer } }
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple, TextIO

from leadflow.core import MAX_EVENT_BYTES, LeadflowError, Problem, did_you_mean, format_time, load_file, parse_time

from ._events import RESERVED_TYPES, Rejection, Unreadable, storable

TOP_KEYS = ("leadflow_mapping", "lead", "at", "missing", "attributes", "events", "outcome", "feedback")
TRUE = {"yes", "true", "1", "y"}
FALSE = {"no", "false", "0", "n"}


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


@dataclass
class CsvMapping:
    """A checked mapping file: how each CSV row becomes a lead's events and labels."""

    lead: str
    at_value: float | None
    at_column: str | None
    missing: set
    attributes: list[MappedAttribute]
    events: list[MappedEvent]
    outcome: dict | None
    feedback: dict | None


@dataclass
class LabelledLead:
    id: str
    events: list  # scoring input: lead_updated + activity events, time-ordered
    outcome: int | None = None  # 1 won, 0 lost
    verdict: str | None = None  # accept | reject
    reason: str | None = None
    row: dict = field(default_factory=dict)
    line: int = 0  # the CSV line the lead came from
    refused: list = field(default_factory=list)  # Unreadable: events the row may not make (leadflow's own types)

    @property
    def label(self) -> int | None:
        if self.outcome is not None:
            return self.outcome
        return None if self.verdict is None else int(self.verdict == "accept")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def load_mapping(path: str, header: list[str] | None = None) -> CsvMapping:
    doc, problems = load_file(path)
    if doc is None:
        raise LeadflowError(problems)
    data = doc.data if isinstance(doc.data, dict) else {}

    def bad(code: str, message: str, p: tuple, hint: str = "", key: bool = False) -> None:
        problems.append(Problem(code, message, doc.at(p, key), hint))

    if data.get("leadflow_mapping") != 1:
        bad("MISSING_VERSION", "a mapping file starts with 'leadflow_mapping: 1'", ())
    for key in data:
        if key not in TOP_KEYS:
            bad("UNKNOWN_KEY", f"unknown key '{key}'", (key,), did_you_mean(key, TOP_KEYS), key=True)
    columns = set(header or [])

    def column(value: Any, p: tuple) -> str:
        if not isinstance(value, str) or not value:
            bad("WRONG_TYPE", "expected a column name", p)
            return ""
        if header is not None and value not in columns:
            bad("UNKNOWN_COLUMN", f"the CSV has no column '{value}'", p, did_you_mean(value, columns))
        return value

    lead = column(data.get("lead"), ("lead",))
    at = data.get("at", "2026-01-05T09:00:00Z")
    at_value, at_column = None, None
    if isinstance(at, dict):
        at_column = column(at.get("column"), ("at", "column"))
    else:
        try:
            at_value = parse_time(str(at))
        except ValueError as exc:
            bad("BAD_TIME", str(exc), ("at",))
    attributes = []
    for i, a in enumerate(data.get("attributes") or []):
        a = a if isinstance(a, dict) else {"column": a}
        kind = a.get("type", "text")
        if kind not in ("text", "number", "boolean"):
            bad("BAD_VALUE", f"unknown type '{kind}'", ("attributes", i, "type"), "types: text, number, boolean")
        col = column(a.get("column"), ("attributes", i, "column"))
        attributes.append(MappedAttribute(col, a.get("as") or slug(col), kind))
    events = []
    for i, e in enumerate(data.get("events") or []):
        col = column((e or {}).get("column"), ("events", i, "column"))
        etype = e.get("type", "from_value")
        events.append(MappedEvent(col, None if etype == "from_value" else etype, e.get("field", "value")))
    outcome = data.get("outcome")
    if outcome is not None:
        column(outcome.get("column"), ("outcome", "column"))
        outcome = {"column": outcome["column"], "won": {str(v) for v in outcome.get("won", ["1"])},
                   "lost": {str(v) for v in outcome.get("lost", ["0"])}}
    feedback = data.get("feedback")
    if feedback is not None:
        column(feedback.get("column"), ("feedback", "column"))
        feedback = {"column": feedback["column"], "accept": {str(v) for v in feedback.get("accept") or []},
                    "reject": {str(k): str(v) for k, v in (feedback.get("reject") or {}).items()}}
    if problems:
        raise LeadflowError(problems)
    return CsvMapping(lead, at_value, at_column, {str(m) for m in data.get("missing", [""])}, attributes, events,
                      outcome, feedback)


def _typed(raw: str, kind: str) -> Any:
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            return None
        if not math.isfinite(value):  # "nan", "inf" are not numbers a rule can use
            return None
        return int(value) if value.is_integer() else value
    if kind == "boolean":
        low = raw.strip().lower()
        return True if low in TRUE else False if low in FALSE else None
    return raw


@dataclass
class BadRow:
    """A CSV row that cannot be read (a byte that is not UTF-8, a field over MAX_EVENT_BYTES): it is
    refused on its own, as a dead letter holding its text, and the other rows go on."""

    line: int
    text: str  # the row as it was in the file, non-UTF-8 bytes written as \\xNN
    reason: str


class CsvRow(dict):
    """One row as {column: value}, with the file line it starts on (quoted cells may span lines)."""

    line = 0


class _RecordLines:
    """The file's lines, decoded one by one (a byte that is not UTF-8 is kept by surrogateescape, so it
    rejects its row, not the file), remembering the text and first line of the record being read."""

    def __init__(self, fh: TextIO) -> None:
        self.fh, self.number, self.start, self.text = fh, 0, 1, []

    def __iter__(self) -> "_RecordLines":
        return self

    def __next__(self) -> str:
        line = next(self.fh)
        self.number += 1
        self.text.append(line)
        return line

    def begin(self) -> None:
        self.start, self.text = self.number + 1, []


def _row_problem(header: list[str], values: list[str]) -> str | None:
    for name, value in zip(header + [""] * len(values), values):
        if len(value) > MAX_EVENT_BYTES // 4 and len(value.encode("utf-8", "surrogateescape")) > MAX_EVENT_BYTES:
            return f"column '{storable(name)}' holds more than {MAX_EVENT_BYTES // 1024} KB"
        bad = _SURROGATE.search(value)
        if bad:
            byte = ord(bad.group()) - 0xDC00
            return f"not UTF-8: byte 0x{byte:02X} in column '{storable(name)}'"
    return None


_SURROGATE = re.compile("[\udc80-\udcff]")


def read_rows(csv_path: str) -> tuple[list[str], Iterator[dict | BadRow]]:
    """The header, and each row as {column: value} (None for missing cells) or as a BadRow. Rows are
    read one at a time and a bad one never stops the file: fields are at most MAX_EVENT_BYTES (64 KB,
    the size limit of one event); Python's csv refuses beyond 128 KB and that row is refused too."""
    fh = open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape")  # a bad byte stays in its row
    lines = _RecordLines(fh)
    reader = csv.reader(lines)

    def record() -> list[str] | BadRow | None:
        lines.begin()
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            reason = f"a field holds more than {MAX_EVENT_BYTES // 1024} KB" if "field limit" in str(exc) \
                else f"not CSV: {exc}"
            return BadRow(lines.start, _text(lines), reason)

    first = record()
    header = first if isinstance(first, list) else []
    header = [storable(name) for name in header]

    def rows() -> Iterator[dict | BadRow]:
        with fh:
            while (values := record()) is not None:
                if isinstance(values, BadRow):
                    yield values
                elif values:  # blank lines are no rows
                    problem = _row_problem(header, values)
                    if problem:
                        yield BadRow(lines.start, _text(lines), problem)
                    else:
                        row = CsvRow(zip(header, values))
                        row.update((name, None) for name in header[len(values):])
                        row.line = lines.start
                        yield row

    return header, rows()


def _text(lines: _RecordLines) -> str:
    return storable("".join(lines.text).rstrip("\r\n"))[:MAX_EVENT_BYTES]


def labelled_leads(mapping: CsvMapping, rows: Iterator[dict | BadRow]) -> Iterator[LabelledLead | BadRow]:
    """The leads the rows make, in file order; a BadRow passes through (csv_events makes it a dead
    letter; eval and tune use `readable`)."""
    for n, row in enumerate(rows, 2):
        if isinstance(row, BadRow):
            yield row
            continue
        n = getattr(row, "line", 0) or n  # a CsvRow knows its line; a plain dict is counted
        lead = (row.get(mapping.lead) or "").strip()
        if not lead:
            continue
        if mapping.at_column is None:
            at = mapping.at_value
        else:
            try:
                at = parse_time(row.get(mapping.at_column) or "")
            except ValueError:  # the row becomes a dead letter naming the field, the rest goes on
                bad = {"id": f"{lead}:attributes", "lead": lead, "type": "lead_updated",
                       "at": row.get(mapping.at_column) or "", "data": {}}
                yield LabelledLead(lead, [bad], row=row, line=n)
                continue
        attrs = {}
        for col, name, kind in mapping.attributes:
            raw = row.get(col)
            if raw is None or raw in mapping.missing:
                continue
            value = _typed(raw, kind)
            if value is not None:
                attrs[name] = value
        events = [{"id": f"{lead}:attributes", "lead": lead, "type": "lead_updated", "at": format_time(at),
                   "data": attrs}]
        refused = []
        for i, (col, etype, fld) in enumerate(mapping.events):
            raw = row.get(col)
            if raw is None or raw in mapping.missing:
                continue
            event = {"id": f"{lead}:{slug(col)}", "lead": lead, "type": etype or slug(raw) or "unknown",
                     "at": format_time(at + i + 1), "data": {fld: raw}}
            if etype is None and event["type"] in RESERVED_TYPES:  # the cell's text is not trusted, the mapping is
                refused.append(Unreadable(json.dumps(event), Rejection("type", (
                    f"'{event['type']}' (from the value of column '{col}') is leadflow's own event type; a CSV "
                    "value cannot make it (only the mapping's outcome and feedback columns make verdicts)"))))
            else:
                events.append(event)
        item = LabelledLead(lead, events, row=row, line=n, refused=refused)
        if mapping.outcome:
            raw = row.get(mapping.outcome["column"], "")
            item.outcome = 1 if raw in mapping.outcome["won"] else 0 if raw in mapping.outcome["lost"] else None
        if mapping.feedback:
            raw = row.get(mapping.feedback["column"], "")
            if raw in mapping.feedback["accept"]:
                item.verdict = "accept"
            elif raw in mapping.feedback["reject"]:
                item.verdict, item.reason = "reject", mapping.feedback["reject"][raw]
        yield item


def label_events(item: LabelledLead) -> list[dict]:
    """The labels as events (for ingest): the rep's verdict after half a day, the outcome after a day."""
    base = parse_time(item.events[0]["at"])
    out = []
    if item.verdict:
        out.append({"id": f"{item.id}:feedback", "lead": item.id, "at": format_time(base + 43200),
                    "type": "sql_accepted" if item.verdict == "accept" else "sql_rejected",
                    "data": {"reason": item.reason} if item.reason else {}})
    if item.outcome is not None:
        out.append({"id": f"{item.id}:outcome", "lead": item.id, "at": format_time(base + 86400),
                    "type": "deal_won" if item.outcome else "deal_lost", "data": {}})
    return out


def readable(items: Iterator[LabelledLead | BadRow]) -> list[LabelledLead]:
    """The leads of the rows that could be read (eval and tune learn from those)."""
    return [item for item in items if isinstance(item, LabelledLead)]


def csv_events(mapping_path: str, csv_path: str) -> Iterator[tuple[int, dict | Unreadable]]:
    """(CSV line, event) for every event the rows make, so rejections name the CSV line."""
    header, rows = read_rows(csv_path)
    mapping = load_mapping(mapping_path, header)
    for item in labelled_leads(mapping, rows):
        if isinstance(item, BadRow):
            yield item.line, Unreadable(item.text, Rejection("", item.reason))
            continue
        for refused in item.refused:
            yield item.line, refused
        for event in item.events:
            yield item.line, event
        try:
            labels = label_events(item)
        except ValueError:
            labels = []
        for event in labels:
            yield item.line, event
