"""Schema versions: ordered migrations, applied once each, recorded in `schema_migrations`.

Each migration names what it brings and builds it from the declaration in _schema.py, with steps
that are safe to repeat (create a table or index if missing, add a column if missing). That makes
migration 1 ("the tables of release 0.1") bring any database of that release, including one made
before an event's digest or an outbox lease were kept, to the same place; a database made today
runs every migration on a fresh file. A later release that must move data, not only add to the
schema, adds a migration with code of its own here.

An upgrade runs under the database's own lock (SQLite's write lock, a PostgreSQL advisory lock),
re-reading the version once it holds it, so two instances starting together apply each migration
once. Opening a store upgrades it; a database newer than this leadflow is refused, never changed.

Written here rather than with Alembic: the schema is already declared once as data for both
backends, Alembic would bring SQLAlchemy and a second description of every table, and what the
store needs (an ordered list, a version table, a lock) is this module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

from leadflow.core import LeadflowError, Location, Problem

from ._schema import TABLES, Index, Table

VERSIONS = Table("schema_migrations", {"version": int, "name": str, "applied_at": float}, "version")


def _declared(name: str) -> Table:
    return next(t for t in TABLES if t.name == name)


def _ensure(db, names: tuple[str, ...]) -> None:
    """Create these declared tables, or add the columns and indexes an older copy lacks."""
    have = db.table_names()
    for name in names:
        table = _declared(name)
        if table.name not in have:
            db.create_table(table)
        else:
            for column, kind in table.columns.items():
                db.add_column(table.name, column, kind)
        for index in table.indexes:
            db.create_index(table.name, index)


def _release_0_1(db) -> None:
    _ensure(db, ("events", "leads", "contributions", "stage_history", "decisions", "dead_letters", "rule_versions",
                 "outbox", "assignments", "feedback", "nurture", "nurture_log", "timers", "proposals", "schedule"))


def _instances(db) -> None:
    _ensure(db, ("instances",))


def _nurture_leases(db) -> None:
    db.add_column("nurture", "claimed_by", str)
    db.add_column("nurture", "lease_until", float)
    db.create_index("nurture", Index(("lead", "track")))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[object], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the tables of release 0.1", _release_0_1),
    Migration(2, "instances: each process on the database, with its rules version", _instances),
    Migration(3, "nurture leases: a due enrolment is claimed by one worker at a time", _nurture_leases),
)
LATEST = MIGRATIONS[-1].version


class SchemaStatus(NamedTuple):
    version: int  # 0: nothing applied (a new or pre-versioning database)
    latest: int
    pending: list[Migration]
    applied: list[tuple[int, str, float]]  # (version, name, applied_at)


def _applied(db) -> list[tuple[int, str, float]]:
    if VERSIONS.name not in db.table_names():
        return []
    return [tuple(r) for r in db.sql("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")]


def status(db) -> SchemaStatus:
    applied = _applied(db)
    version = applied[-1][0] if applied else 0
    return SchemaStatus(version, LATEST, [m for m in MIGRATIONS if m.version > version], applied)


def _too_new(db, version: int) -> LeadflowError:
    return LeadflowError([Problem("SCHEMA_TOO_NEW", f"the database is at schema version {version}; this leadflow"
                                                    f" knows versions up to {LATEST}", Location(db.where),
                                  "upgrade leadflow on this machine to the release the other instances run")])


def upgrade(db, to: int | None = None) -> list[Migration]:
    """Apply the pending migrations (up to `to`) under the database's lock; returns those applied."""
    target = LATEST if to is None else to
    quick = status(db)
    if quick.version > LATEST:
        raise _too_new(db, quick.version)
    if quick.version >= target:
        return []
    done: list[Migration] = []
    with db.schema_lock():
        if VERSIONS.name not in db.table_names():
            db.create_table(VERSIONS)
        now = status(db)  # again, holding the lock: another instance may have just upgraded
        if now.version > LATEST:
            raise _too_new(db, now.version)
        for migration in now.pending:
            if migration.version > target:
                break
            migration.apply(db)
            db.sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                   (migration.version, migration.name, time.time()))
            done.append(migration)
    return done
