"""The SQLite side of the store: connections, transactions, and making or upgrading the schema.

Everything that knows it is talking to SQLite and not to some other database lives here or in the
SQL text of the table modules (_leads, _desk, _schedule, _metrics, _outbox), which all build on
`SQLiteDatabase`. Callers above the store use only its methods (`transaction`, `savepoint`,
`in_transaction`, `is_system_failure`), never a connection, so a second backend can be put beside
this one.

One connection per thread, in WAL mode: readers never wait for the writer, and writers queue on
`busy_timeout`. A transaction is BEGIN IMMEDIATE (the write lock is taken at once, so two writers
never deadlock upgrading a read lock); nested `transaction()` calls join the outer one.
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import sqlite_utils

from ._schema import SCHEMA_VERSION, TABLES


class SQLiteDatabase:
    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()  # one connection per thread: WAL gives readers and one writer
        self._all: list[sqlite3.Connection] = []
        self.lock = threading.RLock()
        self.busy_timeout = 30.0  # seconds a connection waits for another writer; set before first use
        self._ensure_schema()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (tests reach for it; code outside the store must not)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL survives a crash of the process; only transaction(durable=True) waits for the disk
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.db = sqlite_utils.Database(conn)
            self._all.append(conn)
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        self.conn  # noqa: B018 - make sure this thread has its connection
        return self._local.db

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._local = threading.local()

    # -- small helpers for the table modules -----------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        return list(self.db.query(sql, params))

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, None when there is no row."""
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def count(self, table: str) -> int:
        """Rows in one of the store's tables (a name from _schema.TABLES)."""
        if table not in {t.name for t in TABLES}:
            raise ValueError(f"the store has no table {table!r}")
        return self.db[table].count

    # -- schema ----------------------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        """Create what is missing: tables, then columns and indexes an older database lacks."""
        db = self.db
        with self.transaction():
            existing = set(db.table_names())
            for table in TABLES:
                if table.name not in existing:
                    db[table.name].create(table.columns, pk=table.pk)
                else:
                    have = db[table.name].columns_dict
                    for column, kind in table.columns.items():
                        if column not in have:  # made before this column was kept
                            db[table.name].add_column(column, kind)
                for index in table.indexes:
                    db[table.name].create_index(index.columns, index_name=index.name, unique=index.unique,
                                                if_not_exists=True)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- transactions ----------------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside a transaction (a `transaction()` here would join it)."""
        return self.conn.in_transaction

    def is_system_failure(self, exc: BaseException) -> bool:
        """The database itself failing (full disk, I/O, corruption, locked past the busy timeout):
        nothing can be kept, so the caller must stop, unlike a constraint or a value refused, which
        is one event's fault."""
        return isinstance(exc, sqlite3.DatabaseError) and \
            not isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError))

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """durable: COMMIT returns once the WAL is on disk (FULL: one fsync), for commits someone is
        told about (webhook answers, reps' decisions, ingest). NORMAL ones survive a process crash."""
        with self.lock:
            if self.conn.in_transaction:
                yield
                return
            if durable:
                self.conn.execute("PRAGMA synchronous=FULL")  # not allowed inside a transaction
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:  # also when COMMIT itself failed (I/O error, disk full)
                        self.conn.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    self.conn.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def savepoint(self, name: str = "one_event") -> Iterator[None]:
        """Inside a transaction: what the block wrote is undone if it raises, and nothing else is."""
        if not name.isidentifier():
            raise ValueError(f"a savepoint name must be an identifier, not {name!r}")
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        self.conn.execute(f"RELEASE {name}")
