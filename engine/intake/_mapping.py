"""CSV import: what each row of a CRM export becomes, given its checked mapping (_mapfile.py).

A row becomes ordinary events, so they are validated, idempotent and explained like any other:
- `lead_updated` with the row's attributes at the row's time, and one event per `events:` column;
- with `stages:` / `stage:`, one `stage_imported` event per stage date (history, see below);
- with `owner:`, an `owner_imported` event (the pipeline matches it against the rule files' reps);
- the outcome (`deal_won` with its amount / `deal_lost`) at its own date, and the rep's verdict.

Event ids come from the mapping's name, the lead and the event's content (`LEAD:NAME:KIND:HASH`):
importing the same file again gives the same ids (nothing changes), a contacts file and a deals file
for the same leads never share an id, and a row whose values changed since the last export is new
information, applied as such. A time that does not parse rejects its whole row (a dead letter naming
the column and the expected format); the other rows go on.

`labelled_leads` gives the same rows to `eval` and `rules tune` with their labels apart.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from leadflow.core import MAX_ID, format_time, parse_time

from ._events import RESERVED_TYPES, Rejection, Unreadable
from ._mapfile import STAGES, CsvMapping, TimeColumn, load_mapping, slug
from ._rows import BLANK, BadRow, read_rows

TRUE = {"yes", "true", "1", "y"}
FALSE = {"no", "false", "0", "n"}


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
    history: list = field(default_factory=list)  # stage_imported / owner_imported events (ingest only)
    outcome_at: float | None = None  # the outcome's own date, when the mapping names it
    amount: float | int | None = None
    name: str = "csv"  # the mapping's name, part of every event id

    @property
    def label(self) -> int | None:
        if self.outcome is not None:
            return self.outcome
        return None if self.verdict is None else int(self.verdict == "accept")


def event_id(name: str, lead: str, kind: str, at: str, data: dict) -> str:
    """An id from the mapping's name and the event's content: the same row imported again has the same
    id, another file's (or a changed row's) event a different one."""
    digest = hashlib.sha256(json.dumps([name, lead, kind, at, data], sort_keys=True, default=str)
                            .encode("utf-8", "surrogatepass")).hexdigest()
    eid = f"{lead}:{name}:{kind}:{digest[:16]}"
    return eid if len(eid) <= MAX_ID else f"{name[:60]}:{kind}:{digest[:40]}"


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


class _RowError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


def _cell(mapping: CsvMapping, row: dict, column: str) -> str | None:
    raw = row.get(column)
    return None if raw is None or raw in mapping.missing or not raw.strip() else raw


def _time(mapping: CsvMapping, row: dict, tc: TimeColumn, required: bool = False) -> float | None:
    raw = _cell(mapping, row, tc.column)
    if raw is None:
        if required:
            raise _RowError(tc.column, f"column '{tc.column}' is empty; it holds the row's time "
                                       f"({tc.format.expected})")
        return None
    try:
        return tc.format.parse(raw)
    except ValueError as exc:
        raise _RowError(tc.column, f"column '{tc.column}': {exc}") from None


def _row_lead(mapping: CsvMapping, row: dict, line: int) -> LabelledLead:
    lead = (row.get(mapping.lead) or "").strip()
    at = mapping.at_value if mapping.at_column is None else _time(mapping, row, mapping.at_column, required=True)
    attrs = {}
    for col, name, kind in mapping.attributes:
        raw = row.get(col)
        if raw is None or raw in mapping.missing:
            continue
        value = _typed(raw, kind)
        if value is not None:
            attrs[name] = value
    name = mapping.name
    when = format_time(at)
    events = [{"id": event_id(name, lead, "attributes", when, attrs), "lead": lead, "type": "lead_updated",
               "at": when, "data": attrs}]
    item = LabelledLead(lead, events, row=row, line=line, name=name)
    for i, (col, etype, fld) in enumerate(mapping.events):
        raw = row.get(col)
        if raw is None or raw in mapping.missing:
            continue
        etype = etype or slug(raw) or "unknown"
        when = format_time(at + i + 1)
        event = {"id": event_id(name, lead, slug(col), when, {fld: raw}), "lead": lead, "type": etype, "at": when,
                 "data": {fld: raw}}
        if mapping.events[i][1] is None and etype in RESERVED_TYPES:  # the cell's text is not trusted, the mapping is
            item.refused.append(Unreadable(json.dumps(event), Rejection("type", (
                f"'{etype}' (from the value of column '{col}') is leadflow's own event type; a CSV "
                "value cannot make it (only the mapping's outcome and feedback columns make verdicts)"))))
        else:
            events.append(event)
    _history(mapping, row, item, at)
    _labels(mapping, row, item)
    return item


def _history(mapping: CsvMapping, row: dict, item: LabelledLead, at: float) -> None:
    if mapping.owner:  # first: it is dated at the row's time, before its stage dates
        raw = _cell(mapping, row, mapping.owner)
        if raw is not None:
            data = {"owner": raw.strip(), "column": mapping.owner}
            text = format_time(at)
            item.history.append({"id": event_id(item.name, item.id, "owner", text, data), "lead": item.id,
                                 "type": "owner_imported", "at": text, "data": data})
    entries = []  # (time, stage, column)
    for sc in mapping.stages:
        when = _time(mapping, row, TimeColumn(sc.column, sc.format))
        if when is not None:
            entries.append((when, sc.stage, sc.column))
    if mapping.stage:
        raw = _cell(mapping, row, mapping.stage.column)
        if raw is not None:
            stage = mapping.stage.values.get(raw, slug(raw))
            if stage not in STAGES:
                raise _RowError(mapping.stage.column, f"column '{mapping.stage.column}': '{raw}' is no leadflow stage;"
                                                      " map it under stage: values:")
            entries.append((_time(mapping, row, mapping.stage.at, required=True), stage, mapping.stage.column))
    for when, stage, column in sorted(entries):
        text = format_time(when)
        data = {"stage": stage, "column": column}
        item.history.append({"id": event_id(item.name, item.id, f"stage_{stage}", text, data), "lead": item.id,
                             "type": "stage_imported", "at": text, "data": data})


def _labels(mapping: CsvMapping, row: dict, item: LabelledLead) -> None:
    if mapping.outcome:
        o = mapping.outcome
        raw = row.get(o.column, "")
        item.outcome = 1 if raw in o.won else 0 if raw in o.lost else None
        if item.outcome is not None and o.at:
            item.outcome_at = _time(mapping, row, o.at)
        if item.outcome == 1 and o.amount:
            text = _cell(mapping, row, o.amount)
            if text is not None:
                value = _typed(text.strip(), "number")
                if value is None or value < 0:
                    raise _RowError(o.amount, f"column '{o.amount}': '{text}' is not an amount (a number >= 0 "
                                              "without currency or thousands separators, such as 1200.50)")
                item.amount = value
    if mapping.feedback:
        raw = row.get(mapping.feedback.column, "")
        if raw in mapping.feedback.accept:
            item.verdict = "accept"
        elif raw in mapping.feedback.reject:
            item.verdict, item.reason = "reject", mapping.feedback.reject[raw]


def labelled_leads(mapping: CsvMapping, rows: Iterator[dict | BadRow]) -> Iterator[LabelledLead | BadRow]:
    """The leads the rows make, in file order; a row that cannot be read, or whose time does not
    parse, is a BadRow (csv_events makes it a dead letter; eval and tune use `readable`)."""
    for n, row in enumerate(rows, 2):
        if isinstance(row, BadRow):
            yield row
            continue
        n = getattr(row, "line", 0) or n  # a CsvRow knows its line; a plain dict is counted
        if not (row.get(mapping.lead) or "").strip():
            continue
        try:
            yield _row_lead(mapping, row, n)
        except _RowError as exc:
            yield BadRow(n, json.dumps(row, ensure_ascii=False), exc.reason, exc.column)


def label_events(item: LabelledLead) -> list[dict]:
    """The labels as events (for ingest): the rep's verdict after half a day; the outcome at its own
    date, or a day after the row's time when the mapping gives none."""
    base = parse_time(item.events[0]["at"])
    out = []
    if item.verdict:
        data = {"reason": item.reason} if item.reason else {}
        at = format_time(base + 43200)
        out.append({"id": event_id(item.name, item.id, "feedback", at, data), "lead": item.id, "at": at,
                    "type": "sql_accepted" if item.verdict == "accept" else "sql_rejected", "data": data})
    if item.outcome is not None:
        at = format_time(item.outcome_at if item.outcome_at is not None else base + 86400)
        data = {"amount": item.amount} if item.amount is not None else {}
        etype = "deal_won" if item.outcome else "deal_lost"
        out.append({"id": event_id(item.name, item.id, etype, at, data), "lead": item.id, "at": at, "type": etype,
                    "data": data})
    return out


def readable(items: Iterator[LabelledLead | BadRow]) -> list[LabelledLead]:
    """The leads of the rows that could be read (eval and tune learn from those)."""
    return [item for item in items if isinstance(item, LabelledLead)]


def _until_footer(mapping: CsvMapping, rows: Iterator) -> Iterator[dict | BadRow]:
    """The rows up to the first blank line when the mapping says the export ends there (what follows
    is a footer: a report name, a copyright line, who generated it), else every row."""
    for row in rows:
        if row is BLANK:
            if mapping.ends_at_blank_line:
                return
            continue
        yield row


def mapped_events(mapping: CsvMapping, rows: Iterator[dict | BadRow]) -> Iterator[tuple[int, dict | Unreadable]]:
    """(CSV line, event) for every event the rows make, so rejections name the CSV line."""
    for item in labelled_leads(mapping, _until_footer(mapping, rows)):
        if isinstance(item, BadRow):
            yield item.line, Unreadable(item.text, Rejection(item.field, item.reason))
            continue
        for refused in item.refused:
            yield item.line, refused
        try:
            labels = label_events(item)
        except ValueError:
            labels = []
        # oldest first (a stable sort: the attributes lead at equal times), so a row is not late to itself
        for event in sorted(item.events + item.history + labels, key=lambda e: e["at"]):
            yield item.line, event


def csv_events(mapping_path: str, csv_path: str) -> Iterator[tuple[int, dict | Unreadable]]:
    """The events of a CSV file read through a mapping file."""
    header, rows = read_rows(csv_path, blank_lines=True)
    return mapped_events(load_mapping(mapping_path, header), rows)
