"""Every size, shape and time limit on incoming events, in one place.

The limits exist so that one sender cannot make the service slow or stuck for everyone: a lead's
state row is read and rewritten on every event, so its attributes must stay small; a nested value is
walked and serialised several times per event, so its depth is bounded; an event dated far in the
future would become the lead's clock and freeze its decay. The README's Events section lists them.
"""
from __future__ import annotations

MAX_EVENT_BYTES = 64 * 1024  # one JSONL line, or one item of a webhook body, as UTF-8 bytes
MAX_ID = 200  # characters in an event id or a lead id
MAX_DEPTH = 32  # nesting of objects and arrays inside one event
MAX_ATTRIBUTES = 200  # keys in a lead's merged attributes
MAX_ATTRIBUTES_BYTES = 32 * 1024  # a lead's merged attributes as compact JSON
DEFAULT_MAX_FUTURE = 86400.0  # seconds an event may be dated after the receiving clock (clock skew)
MIN_TIME = 0.0  # 1970-01-01T00:00:00Z: nothing in a lead's life happened before
GROUP_MAX_EVENTS = 5000  # events one group commit takes from waiting webhook requests before committing
