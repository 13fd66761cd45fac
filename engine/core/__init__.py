"""Foundations every step shares: errors as values, durations and timestamps, working hours,
size limits, compact JSON, positioned YAML, request signing, who holds a claim and which process
takes a lead.
Imports nothing else from the engine."""
from ._errors import EngineError, LeadflowError, Location, Problem, did_you_mean, excerpt, printable
from ._holders import Claimer, holder_gone
from ._json import compact_json, read_json
from ._limits import (
    DEFAULT_MAX_FUTURE,
    GROUP_MAX_EVENTS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_ID,
    MIN_TIME,
)
from ._partition import in_sample, lead_share
from ._signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE, sign, verify
from ._times import format_duration, format_time, parse_duration, parse_time
from ._worktime import Hours, add_working_time, is_working, parse_hours, rep_hours_problems
from ._yamlfile import MAX_ALIAS_NODES, MAX_ALIASES, MAX_INTEGER, MAX_YAML_DEPTH, Document, load_bytes, load_file

__all__ = [
    "Claimer", "DEFAULT_MAX_FUTURE", "Document", "EngineError", "GROUP_MAX_EVENTS", "Hours", "LeadflowError",
    "Location", "MAX_ALIASES", "MAX_ALIAS_NODES", "MAX_ATTRIBUTES", "MAX_ATTRIBUTES_BYTES", "MAX_DEPTH",
    "MAX_EVENT_BYTES", "MAX_ID", "MAX_YAML_DEPTH", "MAX_INTEGER", "MIN_TIME", "Problem", "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER", "TOLERANCE", "add_working_time", "compact_json", "did_you_mean", "excerpt",
    "format_duration", "format_time", "holder_gone", "in_sample", "is_working", "lead_share", "load_bytes",
    "load_file", "parse_duration", "parse_hours", "parse_time", "printable", "read_json", "rep_hours_problems",
    "sign", "verify",
]
