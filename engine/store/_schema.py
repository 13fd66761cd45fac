"""Every table of the store, declared once as data.

Declared rather than written as CREATE statements so that one list says what the store holds (a
reader looks here, not through the code), and so that opening an older database can bring it up to
date by comparing: the ordered migrations (_migrations.py) say when each part came, and build it
from here. Column types are Python types; each backend maps them to its own (_sqlite.py,
_postgres.py). A test checks that a database taken through every migration has exactly this.
"""
from __future__ import annotations

from typing import NamedTuple


class Index(NamedTuple):
    columns: tuple[str, ...]
    unique: bool = False
    name: str | None = None  # None: the backend's default name for these columns


class Table(NamedTuple):
    name: str
    columns: dict[str, type]  # in order; a column added later goes last, as an upgrade puts it
    pk: str | tuple[str, ...]
    indexes: tuple[Index, ...] = ()


TABLES: tuple[Table, ...] = (
    # the event log, the truth; `digest` tells a resent event from a changed one (NULL in old rows)
    Table("events", {"seq": int, "id": str, "lead": str, "type": str, "at": float, "at_text": str, "data": str,
                     "source": str, "received_at": float, "digest": str}, "seq",
          (Index(("id",), unique=True), Index(("lead", "at")), Index(("type",)))),
    # one row per lead, derived from its events: `state` is the LeadState as JSON
    Table("leads", {"id": str, "stage": str, "score": float, "fit": float, "engagement": float, "owner": str,
                    "disqualified": str, "created_at": float, "updated_at": float, "rules_version": str,
                    "state": str}, "id", (Index(("stage",)),)),
    Table("contributions", {"id": int, "event_id": str, "lead": str, "rule": str, "points": float, "at": float},
          "id", (Index(("lead",)),)),
    Table("stage_history", {"id": int, "lead": str, "from_stage": str, "to_stage": str, "at": float, "reason": str,
                            "rule": str, "rules_version": str, "event_id": str}, "id",
          (Index(("lead",)), Index(("to_stage", "at")),
           # reading the history lead by lead in time order is the metrics' hot path
           Index(("lead", "at", "id"), name="stage_history_lead_at"))),
    Table("decisions", {"event_id": str, "lead": str, "at": float, "rules_version": str, "trace": str}, "event_id",
          (Index(("lead",)),)),
    Table("dead_letters", {"id": int, "received_at": float, "source": str, "line": int, "raw": str, "reason": str,
                           "field": str}, "id"),
    Table("rule_versions", {"version": str, "loaded_at": float, "files": str}, "version"),
    # notifications to deliver and durable work (route_sql); a `sending` row is leased to claimed_by
    Table("outbox", {"id": int, "key": str, "kind": str, "lead": str, "payload": str, "created_at": float,
                     "status": str, "attempts": int, "next_at": float, "last_error": str, "claimed_by": str,
                     "lease_until": float}, "id",
          (Index(("key",), unique=True), Index(("status", "next_at")))),
    Table("assignments", {"id": int, "lead": str, "rep": str, "channel": str, "status": str, "why": str,
                          "attempt": int, "assigned_at": float, "remind_at": float, "due_at": float,
                          "decided_at": float, "decided_by": str, "reason": str, "comment": str}, "id",
          (Index(("lead",)), Index(("rep", "status")), Index(("status", "due_at")))),
    Table("feedback", {"id": int, "assignment": int, "lead": str, "rep": str, "verdict": str, "reason": str,
                       "comment": str, "by": str, "at": float}, "id", (Index(("lead",)),)),
    # nurture enrollments: where each lead is in each track
    # a due enrolment is leased to one worker (claimed_by, until lease_until) while it runs its steps
    Table("nurture", {"id": int, "lead": str, "track": str, "pc": int, "status": str, "next_at": float,
                      "enrolled_at": float, "waiting_for": str, "updated_at": float, "claimed_by": str,
                      "lease_until": float}, "id",
          (Index(("status", "next_at")), Index(("lead", "track")))),
    Table("nurture_log", {"id": int, "enrollment": int, "lead": str, "track": str, "pc": int, "op": str,
                          "at": float, "detail": str}, "id", (Index(("lead",)),)),
    Table("timers", {"lead": str, "kind": str, "due_at": float}, ("lead", "kind"), (Index(("due_at",)),)),
    Table("proposals", {"id": int, "dir": str, "created_at": float, "status": str, "report": str,
                        "decided_by": str, "decided_at": float}, "id"),
    # when each periodic job (digest, tuning) last ran
    Table("schedule", {"name": str, "last_at": float}, "name"),
    # every process serving this database, with the rules it runs (for /healthz and `db status`)
    Table("instances", {"id": str, "host": str, "pid": int, "role": str, "rules_version": str,
                        "started_at": float, "seen_at": float}, "id"),
)
