"""`Store`: the one object the rest of leadflow reads and writes through.

It is assembled from one class per concern, each owning its tables' SQL: _leads (events, lead state,
decisions, stage history, dead letters, rule versions), _desk (assignments, feedback, owners),
_schedule (nurture, timers, periodic runs, proposals), _outbox (notifications and durable work),
_metrics (reads for reports); all build on _sqlite (connections, transactions, the schema from
_schema). Callers see one store and never a connection, so the database behind it can change here
alone.
"""
from __future__ import annotations

from ._desk import DeskTables
from ._leads import LeadTables
from ._metrics import MetricsReads
from ._schedule import ScheduleTables


class Store(LeadTables, DeskTables, ScheduleTables, MetricsReads):
    """A leadflow database in the SQLite file at `path` (made, or brought up to date, on opening).

    Everything one event causes is written in one transaction, and a batch of events is one
    transaction of per-event savepoints, so a crash loses whole events and an event id is never
    applied twice. Open one per process; it is safe to share between threads (one connection each)."""
