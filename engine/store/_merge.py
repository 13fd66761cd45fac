"""Merging scratch SQLite files into a database in one transaction (`leadflow ingest --jobs N` on SQLite).

SQLite has one writer, so parallel ingest processes each write into a scratch file of their own (the
same schema, made by Store) and this module moves their rows into the real database afterwards,
with `ATTACH` and `INSERT ... SELECT`: SQLite copies the rows itself, at C speed, without Python
seeing them. All parts go in ONE durable transaction: the database changes only when it commits, so
a crash or a refused row leaves it as it was.

Integer keys (events.seq and the `id` of the other tables) are moved past the database's own: each
part's ids are offset by the largest id the table holds when that part is merged, so the rows of a
part keep their order and a nurture log line still points at its enrolment (nurture_log.enrollment
is offset like nurture.id). Text keys (event ids, lead ids, outbox keys) are kept: the caller made
sure no two parts and no part and the database share a lead or an event id (see
pipeline/_jobs.py); should one slip through (another process wrote the same lead meanwhile), the
unique indexes refuse it and the whole merge rolls back as MERGE_CLASH.

MERGED says how every table an ingest writes is merged, IGNORED names the tables an ingest never
writes (a part holding rows there is refused rather than silently dropped); a test checks that the
two cover every table of _schema.TABLES, so a new table has to be placed in one of them.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from leadflow.core import LeadflowError, Location, Problem

from ._schema import TABLES, Table
from ._store import SQLiteStore

MAX_PARTS = 10  # SQLite attaches at most 10 databases to one connection (SQLITE_MAX_ATTACHED)
_CHUNK = 500  # ids per lookup statement (SQLite allows 999 parameters in older builds)


@dataclass(frozen=True)
class Merge:
    """How one table's rows move from a part into the database."""

    offset: str | None = None  # the integer key moved past the database's largest
    refs: dict[str, str] = field(default_factory=dict)  # column -> table whose offset it takes
    keep_existing: bool = False  # a row whose key is already there is left alone (rule versions)


MERGED: dict[str, Merge] = {
    "events": Merge(offset="seq"),
    "leads": Merge(),
    "contributions": Merge(offset="id"),
    "stage_history": Merge(offset="id"),
    "decisions": Merge(),
    "dead_letters": Merge(offset="id"),
    "rule_versions": Merge(keep_existing=True),  # every part noted the same rules
    "outbox": Merge(offset="id"),
    "nurture": Merge(offset="id"),
    "nurture_log": Merge(offset="id", refs={"enrollment": "nurture"}),
    "timers": Merge(),
}
# Written by reps, the worker and the service, never by applying events: a part must hold none.
IGNORED: frozenset[str] = frozenset({"assignments", "feedback", "proposals", "schedule", "instances"})


@dataclass(frozen=True)
class MergeReport:
    parts: int
    rows: dict[str, int]  # table -> rows merged from all parts


class PartStore(SQLiteStore):
    """A scratch part's store: it never waits for the disk (synchronous OFF, and no transaction is
    durable), since a part lives only until the merge and a failed ingest throws it away."""

    def __init__(self, path: str):
        super().__init__(path)
        self.conn.execute("PRAGMA synchronous=OFF")

    def transaction(self, durable: bool = False):  # a part is never durable, whatever the caller asks
        return super().transaction(durable=False)


def _declared(name: str) -> Table:
    return next(t for t in TABLES if t.name == name)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def existing_leads(store, leads: Iterable[str]) -> set[str]:
    """Which of these lead ids the database already holds."""
    return _existing(store, "SELECT id FROM leads WHERE id IN ({})", leads)


def existing_event_ids(store, ids: Iterable[str]) -> set[str]:
    """Which of these event ids the event log already holds."""
    return _existing(store, "SELECT id FROM events WHERE id IN ({})", ids)


def _existing(store, sql: str, values: Iterable[str]) -> set[str]:
    if store._value("SELECT 1 FROM events LIMIT 1") is None and store._value("SELECT 1 FROM leads LIMIT 1") is None:
        return set()  # an empty database (the usual bulk import): nothing to look up
    values = list(values)
    found: set[str] = set()
    for i in range(0, len(values), _CHUNK):
        chunk = values[i:i + _CHUNK]
        found.update(row[0] for row in store._exec(sql.format(",".join("?" for _ in chunk)), chunk))
    return found


def merge_parts(store, paths: list[str]) -> MergeReport:
    """Move every row of the scratch SQLite files at `paths` into `store` (a SQLite store), in one
    durable transaction, in the order of `paths`."""
    if store.dialect != "sqlite":
        raise ValueError("merge_parts merges into SQLite; PostgreSQL ingest processes write to it directly")
    if len(paths) > MAX_PARTS:
        raise ValueError(f"at most {MAX_PARTS} parts can be merged at once, not {len(paths)}")
    names = [f"part{k}" for k in range(len(paths))]
    for name, path in zip(names, paths):  # ATTACH is refused inside a transaction: before it
        store._exec(f"ATTACH DATABASE ? AS {name}", (path,))
    rows = {t: 0 for t in MERGED}
    try:
        for name, path in zip(names, paths):
            _refuse_ignored(store, name, path)
        try:
            with store.transaction(durable=True):
                for name in names:
                    offsets = {t: store._value(f'SELECT coalesce(max("{m.offset}"), 0) FROM main."{t}"')
                               for t, m in MERGED.items() if m.offset}
                    for table, how in MERGED.items():
                        rows[table] += _merge_table(store, name, _declared(table), how, offsets)
        except sqlite3.IntegrityError as exc:
            raise LeadflowError([Problem("MERGE_CLASH", f"a row of the parallel ingest is already in the database"
                                                        f" ({exc}); nothing of this ingest was written",
                                         Location(store.where),
                                         "another process wrote the same leads meanwhile: run the ingest again "
                                         "(those leads are then applied one by one), or without --jobs")]) from exc
    finally:
        for name in names:
            store._exec(f"DETACH DATABASE {name}")
    return MergeReport(len(paths), rows)


def _refuse_ignored(store, name: str, path: str) -> None:
    for table in sorted(IGNORED):
        if store._value(f'SELECT 1 FROM {name}."{table}" LIMIT 1') is not None:
            raise LeadflowError([Problem("MERGE_UNKNOWN_ROWS", f"a parallel ingest part wrote rows into {table}, which"
                                                               " a merge does not carry; nothing was written",
                                         Location(path), "run the ingest without --jobs, and report this")])


def _merge_table(store, part: str, table: Table, how: Merge, offsets: dict[str, int]) -> int:
    columns = list(table.columns)
    values = []
    params: list[int] = []
    for column in columns:
        source = table.name if column == how.offset else how.refs.get(column)
        if source:
            values.append(f'"{column}" + ?')
            params.append(offsets[source])
        else:
            values.append(f'"{column}"')
    keys = (table.pk,) if isinstance(table.pk, str) else table.pk
    verb = "INSERT OR IGNORE" if how.keep_existing else "INSERT"
    return store._exec(f'{verb} INTO main."{table.name}" ({_quoted(columns)}) SELECT {", ".join(values)}'
                       f' FROM {part}."{table.name}" ORDER BY {_quoted(keys)}', params).rowcount
