"""The SQLite side of the store: connections, transactions, and making or upgrading the schema.

The SQLite file is the embedded default (PostgreSQL's side is _postgres.py); both give the table
modules the primitives of `Database`, and build the schema the migrations ask for (see
_migrations.py) from the one declaration in _schema.py, here with sqlite-utils.

One connection per thread, in WAL mode: readers never wait for the writer, and writers queue on
`busy_timeout`. A transaction is BEGIN IMMEDIATE (the write lock is taken at once, so two writers
never deadlock upgrading a read lock); nested `transaction()` calls join the outer one.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import sqlite_utils

from ._database import Cursor, Database, kept
from ._schema import Index, Table


# Page cache of a connection that writes, in KiB (SQLite's default is 2 MB). Each event inserts into
# several indexes at places spread over the whole file (event ids, leads, decisions); once the file
# outgrows the cache most inserts read pages from the OS again: the 1M-lead benchmark (2.5 GB) lost
# 12% to that. At 500,000 events (a 400 MB file) 64 MB gave 0 to +10%, within this machine's noise.
# Only writers get it (a fixed amount: memory stays flat); reading connections keep the default.
WRITER_CACHE_KIB = 65536
# WAL pages before a commit checkpoints them into the database (SQLite's default is 1,000, 4 MB). A
# checkpoint writes each changed page once however often it changed, so fewer, larger checkpoints
# write the hot index pages less often. `leadflow bench --leads 200000 --events-per-lead 2`, three
# runs each, alternated: 2,466 / 2,578 / 2,632 events/s at 1,000 pages, 2,719 / 2,764 / 2,982 at
# 10,000 (+10%). The WAL then grows to about 40 MB between checkpoints.
WRITER_AUTOCHECKPOINT_PAGES = 10000
BUSY_STEP = 0.001  # seconds at most between two tries for a write lock another process holds (see _begin)


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self.url = path
        self._local = threading.local()  # one connection per thread: WAL gives readers and one writer
        self._all: list[sqlite3.Connection] = []
        self.lock = threading.RLock()
        self.busy_timeout = 30.0  # seconds a connection waits for another writer; set before first use

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

    # -- primitives ----------------------------------------------------------------------------------
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(sql, kept(params))

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, map(kept, rows))

    def _insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, kept(params)).lastrowid

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        yield from self.conn.execute(sql, kept(params))

    # -- schema (for the migrations) -------------------------------------------------------------------
    def table_names(self) -> set[str]:
        return set(self.db.table_names())

    def column_names(self, table: str) -> set[str]:
        return set(self.db[table].columns_dict)

    def create_table(self, table: Table) -> None:
        self.db[table.name].create(table.columns, pk=table.pk, if_not_exists=True)

    def add_column(self, table: str, column: str, kind: type) -> None:
        if column not in self.column_names(table):
            self.db[table].add_column(column, kind)

    def create_index(self, table: str, index: Index) -> None:
        self.db[table].create_index(index.columns, index_name=index.name, unique=index.unique, if_not_exists=True)

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """One upgrade at a time: the IMMEDIATE transaction is SQLite's write lock (DDL is transactional)."""
        with self.transaction(durable=True):
            yield

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
            if not getattr(self._local, "writer", False):
                self.conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
                self.conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES}")
                self._local.writer = True
            if durable:
                self.conn.execute("PRAGMA synchronous=FULL")  # not allowed inside a transaction
            try:
                self._begin()
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

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, trying again every BUSY_STEP seconds at most while another process holds
        the write lock, up to busy_timeout. SQLite's own busy handler sleeps 1, 2, 5 ... 25, 50,
        100 ms between tries, and a try only succeeds in a gap between the other process's
        transactions: a `leadflow worker` beside a `serve` under webhook load (a group transaction
        after another, gaps of a fraction of a millisecond) measured waits of up to 3 s per
        transaction, so its cards and nurture steps fell seconds behind."""
        conn = self.conn
        conn.execute("PRAGMA busy_timeout=0")
        try:
            deadline, step = time.monotonic() + self.busy_timeout, BUSY_STEP / 16
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) != sqlite3.SQLITE_BUSY or \
                            time.monotonic() >= deadline:
                        raise
                time.sleep(step)
                step = min(step * 2, BUSY_STEP)
        finally:
            conn.execute(f"PRAGMA busy_timeout={round(self.busy_timeout * 1000)}")

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
