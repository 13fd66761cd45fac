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
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import LeadflowError, Problem, did_you_mean
from .timeutil import format_time, parse_time
from .yamlfile import load_file

TOP_KEYS = ("leadflow_mapping", "lead", "at", "missing", "attributes", "events", "outcome", "feedback")
TRUE = {"yes", "true", "1", "y"}
FALSE = {"no", "false", "0", "n"}


@dataclass
class Mapping:
    path: str
    lead: str
    at_value: float | None
    at_column: str | None
    missing: set
    attributes: list  # (column, name, type)
    events: list  # (column, type or None for from_value, data field)
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

    @property
    def label(self) -> int | None:
        if self.outcome is not None:
            return self.outcome
        return None if self.verdict is None else int(self.verdict == "accept")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def load_mapping(path: str, header: list[str] | None = None) -> Mapping:
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
        attributes.append((col, a.get("as") or slug(col), kind))
    events = []
    for i, e in enumerate(data.get("events") or []):
        col = column((e or {}).get("column"), ("events", i, "column"))
        etype = e.get("type", "from_value")
        events.append((col, None if etype == "from_value" else etype, e.get("field", "value")))
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
    return Mapping(path, lead, at_value, at_column, {str(m) for m in data.get("missing", [""])}, attributes, events,
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


def read_rows(csv_path: str) -> tuple[list[str], Iterator[dict]]:
    fh = open(csv_path, newline="", encoding="utf-8-sig")
    reader = csv.DictReader(fh)
    header = list(reader.fieldnames or [])

    def rows() -> Iterator[dict]:
        with fh:
            yield from reader

    return header, rows()


def labelled_leads(mapping: Mapping, rows: Iterator[dict]) -> Iterator[LabelledLead]:
    for n, row in enumerate(rows, 2):
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
        for i, (col, etype, fld) in enumerate(mapping.events):
            raw = row.get(col)
            if raw is None or raw in mapping.missing:
                continue
            events.append({"id": f"{lead}:{slug(col)}", "lead": lead, "type": etype or slug(raw) or "unknown",
                           "at": format_time(at + i + 1), "data": {fld: raw}})
        item = LabelledLead(lead, events, row=row, line=n)
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


def csv_events(mapping_path: str, csv_path: str) -> Iterator[tuple[int, dict]]:
    """(CSV line, event) for every event the rows make, so rejections name the CSV line."""
    header, rows = read_rows(csv_path)
    mapping = load_mapping(mapping_path, header)
    for item in labelled_leads(mapping, rows):
        for event in item.events:
            yield item.line, event
        try:
            labels = label_events(item)
        except ValueError:
            labels = []
        for event in labels:
            yield item.line, event
