"""Copying a whole leadflow database into another: SQLite into PostgreSQL and back (`leadflow db copy`).

Row by row through the store rather than a dump: the two backends share the declared schema
(_schema.py) but no dump format, and reading each table in key order and inserting the same
columns, ids included, gives the destination the same rows whichever way the copy goes. Ids are
kept so that everything pointing at a row (feedback at its assignment, a nurture log line at its
enrolment, an outbox key) still points at it; PostgreSQL's id sequences are then moved past them,
so the next new row gets the next id.

Both ends are brought to this leadflow's schema first, so every table has the same columns on both
sides. The destination must hold no rows (a fresh database, or a new SQLite file): a copy never
merges, because two databases' ids would collide. The rows go in one transaction: a copy that
fails or is interrupted leaves the destination as empty as it was, to be run again. The source is
only read; rows written to it while the copy runs show up as a difference in the counts compared
at the end, which is why the instances writing to it should be stopped first.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from leadflow.core import LeadflowError, Location, Problem

from ._migrations import LATEST, _too_new
from ._schema import TABLES, Table
from ._store import Store

BATCH = 1000  # rows per insert: few round trips to a server, little memory for any table


@dataclass(frozen=True)
class TableCount:
    """One table's rows on each side after a copy."""

    table: str
    source: int
    destination: int
    nul_replaced: int = 0  # rows whose text held a NUL character, which PostgreSQL cannot store

    @property
    def same(self) -> bool:
        return self.source == self.destination


@dataclass(frozen=True)
class CopyReport:
    source: str  # where, as messages name it (a PostgreSQL URL without its password)
    destination: str
    tables: tuple[TableCount, ...]

    @property
    def ok(self) -> bool:
        """Every table holds as many rows in the destination as in the source."""
        return all(t.same for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.destination for t in self.tables)

    def to_json(self) -> dict:
        return {"source": self.source, "destination": self.destination, "ok": self.ok,
                "tables": [{"table": t.table, "source": t.source, "destination": t.destination, "same": t.same,
                            "nul_replaced": t.nul_replaced} for t in self.tables]}


def open_store(url: str, upgrade: bool = True) -> Store:
    """`Store(url)` for a command that must say what is wrong with the address rather than fail with
    a traceback: a file that is not a SQLite database, or a folder that does not exist, is a
    DB_UNREADABLE problem (a PostgreSQL server that cannot be reached is DB_UNREACHABLE already)."""
    store = Store(url, upgrade=False)
    try:
        store.schema_status()  # the first statement: SQLite opens the file here
        if upgrade:
            store.upgrade()
    except sqlite3.DatabaseError as exc:
        store.close()
        raise LeadflowError([Problem("DB_UNREADABLE", f"cannot use this SQLite database: {exc}", Location(url),
                                     "give a leadflow database file, or a new file in an existing folder")]) from exc
    return store


def row_counts(db: Store) -> dict[str, int]:
    """Rows in each declared table the database has (a table it lacks is left out)."""
    have = db.table_names()
    return {t.name: db.count(t.name) for t in TABLES if t.name in have}


def copy_database(src: Store, dst: Store, progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy every table of `src` into `dst`, which must hold no rows; both are upgraded to this
    leadflow's schema first. `progress(rows copied, rows in all)` is called after each batch.
    Returns the row counts of both sides; a difference is for the caller to report."""
    for db in (src, dst):  # refuse before changing either
        version = db.schema_status().version
        if version > LATEST:
            raise _too_new(db, version)
    held = {name: n for name, n in row_counts(dst).items() if n}
    if held:
        listed = ", ".join(f"{name} {n}" for name, n in list(held.items())[:3]) + \
            (f" and {len(held) - 3} more tables" if len(held) > 3 else "")
        raise LeadflowError([Problem("DB_NOT_EMPTY", f"the destination already holds rows ({listed}); a copy"
                                                     " never merges two databases", Location(dst.where),
                                     "copy into a new database (createdb, or a new SQLite file)")])
    src.upgrade()
    dst.upgrade()
    total = sum(src.count(t.name) for t in TABLES)
    done = 0
    replaced: dict[str, int] = {}
    with dst.transaction(durable=True):
        for table in TABLES:
            for batch in _batches(src, table):
                if dst.dialect == "postgresql":
                    batch, replaced[table.name] = _without_nul(batch, replaced.get(table.name, 0))
                _insert(dst, table, batch)
                done += len(batch)
                if progress is not None:
                    progress(done, max(total, done))  # rows written to the source meanwhile grow the total
            if dst.dialect == "postgresql":
                dst.reset_ids(table)
    counts = tuple(TableCount(t.name, src.count(t.name), dst.count(t.name), replaced.get(t.name, 0)) for t in TABLES)
    return CopyReport(src.where, dst.where, counts)


def _without_nul(batch: list[tuple], replaced: int) -> tuple[list[tuple], int]:
    """PostgreSQL's text cannot hold a NUL character, which SQLite keeps (a dead letter's raw line
    stored by an older leadflow may have one): it becomes the four characters \\x00, as the store
    now writes it on both databases (_leads.dead_letter), and the row is counted so the copy says so."""
    out = []
    for row in batch:
        if any(isinstance(v, str) and "\x00" in v for v in row):
            row = tuple(v.replace("\x00", "\\x00") if isinstance(v, str) else v for v in row)
            replaced += 1
        out.append(row)
    return out, replaced


def _quoted(names: tuple[str, ...] | list[str]) -> str:
    """Column names quoted, as both databases read them (a column is called `by`)."""
    return ", ".join(f'"{name}"' for name in names)


def _batches(src: Store, table: Table) -> Iterator[list[tuple]]:
    keys = (table.pk,) if isinstance(table.pk, str) else table.pk
    batch: list[tuple] = []
    for row in src._stream(f'SELECT {_quoted(list(table.columns))} FROM "{table.name}" ORDER BY {_quoted(keys)}'):
        batch.append(tuple(row))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(dst: Store, table: Table, batch: list[tuple]) -> None:
    """Insert one batch; a row the destination refuses is a problem naming the table and the rows,
    and rolls the whole copy back."""
    columns = list(table.columns)
    sql = f'INSERT INTO "{table.name}" ({_quoted(columns)}) VALUES ({", ".join("?" for _ in columns)})'
    try:
        dst._exec_many(sql, batch)
    except Exception as exc:
        if not _refused(dst, exc):
            raise
        key = columns.index(table.pk) if isinstance(table.pk, str) else 0
        first, last = batch[0][key], batch[-1][key]
        raise LeadflowError([Problem("COPY_REFUSED", f"the destination refused a row of {table.name} ({columns[key]}"
                                                     f" {first} to {last}): {str(exc).strip()}", Location(dst.where),
                                     "nothing was copied: repair the row in the source and copy again")]) from exc


def _refused(db: Store, exc: Exception) -> bool:
    """An error of the database itself (a value it will not store), not a mistake in this module."""
    if db.dialect == "postgresql":
        return isinstance(exc, db._pg.Error)
    return isinstance(exc, sqlite3.Error)
