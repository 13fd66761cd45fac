"""`Store`: the one object the rest of leadflow reads and writes through.

It is assembled from one class per concern, each owning its tables' SQL: _leads (events, lead state,
decisions, stage history, dead letters, rule versions), _desk (assignments, feedback, owners),
_schedule (nurture, timers, periodic runs, proposals), _instances (the processes on the database),
_outbox (notifications and durable work), _claims (which process does which background work),
_metrics (reads for reports); all build on a `Database`: a SQLite file (_sqlite.py, the default) or a
PostgreSQL server (_postgres.py), chosen by the address. Callers see one store and never a connection.
"""
from __future__ import annotations

from ._claims import ClaimTables
from ._desk import DeskTables
from ._instances import InstanceTables
from ._leads import LeadTables
from ._metrics import MetricsReads
from ._migrations import Migration, SchemaStatus, status, upgrade
from ._postgres import PostgresDatabase, is_postgres_url
from ._schedule import ScheduleTables
from ._sqlite import SQLiteDatabase


def sqlite_path(url: str) -> str:
    """A path, or `sqlite:///path` (sqlite:////abs/path for an absolute one), as a file path."""
    return url[len("sqlite:///"):] if url.startswith("sqlite:///") else url


class Store(LeadTables, DeskTables, ScheduleTables, InstanceTables, ClaimTables, MetricsReads):
    """A leadflow database: `Store("leads.db")` (SQLite, the default) or
    `Store("postgresql://user:pass@host/db")`; made, or upgraded to this release's schema, on opening
    (upgrade=False leaves it as it is, for `db status`).

    Everything one event causes is written in one transaction, and a batch of events is one
    transaction of per-event savepoints, so a crash loses whole events and an event id is never
    applied twice. Open one per process; it is safe to share between threads."""

    def __new__(cls, url: str, upgrade: bool = True, **settings: object) -> "Store":
        if cls is Store:
            cls = PostgresStore if is_postgres_url(url) else SQLiteStore
        return super().__new__(cls)

    def schema_status(self) -> SchemaStatus:
        return status(self)

    def upgrade(self, to: int | None = None) -> list[Migration]:
        """Apply the pending migrations (under the database's lock); returns those applied."""
        return upgrade(self, to)


class SQLiteStore(Store, SQLiteDatabase):
    def __init__(self, url: str, upgrade: bool = True):
        SQLiteDatabase.__init__(self, sqlite_path(url))
        if upgrade:
            self.upgrade()


class PostgresStore(Store, PostgresDatabase):
    def __init__(self, url: str, upgrade: bool = True, pool_size: int = 10):
        PostgresDatabase.__init__(self, url, pool_size)
        if upgrade:
            self.upgrade()
