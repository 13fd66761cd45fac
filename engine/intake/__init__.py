"""What comes in: event validation (webhook bodies, JSONL lines, Segment payloads) and CSV mappings."""
from ._bodies import decode_body, read_jsonl, split_body
from ._events import (
    INTERNAL,
    OUTSIDE,
    Accepted,
    Intake,
    Rejection,
    Unreadable,
    content_digest,
    parse_line,
    storable,
    validate,
)
from ._mapping import CsvMapping, LabelledLead, csv_events, labelled_leads, load_mapping, read_rows, readable

__all__ = [
    "Accepted", "CsvMapping", "INTERNAL", "Intake", "LabelledLead", "OUTSIDE", "Rejection", "Unreadable",
    "content_digest", "csv_events", "decode_body", "labelled_leads", "load_mapping", "parse_line",
    "read_jsonl", "read_rows", "readable", "split_body", "storable", "validate",
]
