"""What comes in: event validation (webhook bodies, JSONL lines, Segment payloads) and CSV mappings."""
from ._bodies import decode_body, read_jsonl, split_body
from ._events import (
    IMPORTED_TYPES,
    INTERNAL,
    OUTSIDE,
    Accepted,
    Intake,
    Rejection,
    Unreadable,
    check_id,
    content_digest,
    from_segment,
    parse_line,
    storable,
    validate,
)
from ._mapfile import STAGES, CsvMapping, load_mapping
from ._mapping import LabelledLead, csv_events, labelled_leads, mapped_events, readable
from ._rows import read_rows
from ._times import TimeFormat

__all__ = [
    "IMPORTED_TYPES",
    "INTERNAL",
    "OUTSIDE",
    "STAGES",
    "Accepted",
    "CsvMapping",
    "Intake",
    "LabelledLead",
    "Rejection",
    "TimeFormat",
    "Unreadable",
    "check_id",
    "content_digest",
    "csv_events",
    "decode_body",
    "from_segment",
    "labelled_leads",
    "load_mapping",
    "mapped_events",
    "parse_line",
    "read_jsonl",
    "read_rows",
    "readable",
    "split_body",
    "storable",
    "validate",
]
