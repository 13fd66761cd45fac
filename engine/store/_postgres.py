"""The PostgreSQL side of the store: a connection pool, transactions, per-lead locks, the schema.

Several leadflow processes, on one machine or many, share one PostgreSQL database. What keeps them
from stepping on each other lives in the database, never in a process:
- one lead's events are applied one at a time: `lock_leads` takes a transaction-scoped advisory
  lock per lead (always in the same order, so two batches never wait on each other in a circle);
- the schema is upgraded under an advisory lock of its own (see _migrations.py);
- claims on work (outbox rows, nurture enrolments, timers) are conditional updates or
  `FOR UPDATE SKIP LOCKED` in the table modules, with leases that expire when a process dies.

The table modules' SQL uses `?` placeholders and SQLite's `INSERT OR IGNORE`; `translate` turns
both into PostgreSQL's. psycopg 3 with its pool: a transaction holds one pooled connection for the
thread that opened it; a statement outside a transaction borrows one for itself.
"""
from __future__ import annotations

import functools
import itertools
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from leadflow.core import LeadflowError, Location, Problem

from ._database import Cursor, Database, kept
from ._schema import Index, Table

LOCKS = 0x1EADF10  # the advisory-lock space of leadflow: (LOCKS, 0) the schema, (LOCKS + 1, hash) a lead
# text in byte order (COLLATE "C"), as SQLite compares it: lists and ties sort alike on both backends,
# whatever locale the server was made with
_TYPES = {int: "BIGINT", str: 'TEXT COLLATE "C"', float: "DOUBLE PRECISION"}
_RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure: rolled back whole, may run again
_names = itertools.count()

if TYPE_CHECKING:
    import psycopg


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def masked(url: str) -> str:
    """The URL without its password, for messages and /healthz."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The common SQL of the table modules in PostgreSQL's words: `?` outside string literals becomes
    %s, every literal % is doubled (psycopg reads % everywhere), and SQLite's INSERT OR IGNORE is an
    INSERT ... ON CONFLICT DO NOTHING (before a RETURNING, where PostgreSQL wants it)."""
    parts = sql.replace("%", "%%").split("'")  # even parts lie outside literals ('it''s' splits evenly)
    parts[::2] = [part.replace("?", "%s") for part in parts[::2]]
    out = "'".join(parts)
    if out.startswith("INSERT OR IGNORE INTO"):
        out = "INSERT INTO" + out[len("INSERT OR IGNORE INTO"):]
        body, returning, tail = out.rpartition(" RETURNING ")
        out = f"{body} ON CONFLICT DO NOTHING RETURNING {tail}" if returning else out + " ON CONFLICT DO NOTHING"
    return out


def _quote(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a name: {name!r}")
    return f'"{name}"'


class _Rows:
    """A statement's rows read before its borrowed connection went back to the pool."""

    def __init__(self, cur: "psycopg.Cursor"):
        self.description = cur.description
        self.rowcount = cur.rowcount
        self._rows = cur.fetchall() if cur.description else []
        self._next = 0

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list:
        rest, self._next = self._rows[self._next:], len(self._rows)
        return rest

    def __iter__(self) -> Iterator:
        return iter(self.fetchall())


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10):
        self.url = url
        self.path = url  # what callers that name the database print
        self._local = threading.local()
        import psycopg  # here, not at the top: SQLite users never pay for loading it (about 0.17 s)
        from psycopg_pool import ConnectionPool

        self._pg = psycopg
        try:  # the server's own words (no such database, password refused) rather than a pool timeout
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise LeadflowError([Problem("DB_UNREACHABLE", f"cannot connect to PostgreSQL: {str(exc).strip()}",
                                         Location(masked(url)), "check the URL, that the server runs and that the "
                                         "database exists (createdb)")]) from exc
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                   open=True, name="leadflow")

    @property
    def where(self) -> str:
        return masked(self.url)

    def close(self) -> None:
        self.pool.close()

    # -- primitives ----------------------------------------------------------------------------------
    def _conn(self) -> "psycopg.Connection | None":
        return getattr(self._local, "conn", None)

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        conn = self._conn()
        if conn is not None:
            return conn.execute(translate(sql), list(kept(params)))
        with self.pool.connection() as conn:
            return _Rows(conn.execute(translate(sql), list(kept(params))))

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        conn = self._conn()
        if conn is not None:
            conn.cursor().executemany(translate(sql), map(kept, rows))
            return
        with self.pool.connection() as conn, conn.transaction():
            conn.cursor().executemany(translate(sql), map(kept, rows))

    def _insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._exec(sql + " RETURNING id", params).fetchone()[0]

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        conn = self._conn()
        if conn is not None:
            with conn.cursor(name=f"leadflow_{next(_names)}") as cur:
                cur.itersize = 2000
                cur.execute(translate(sql), list(kept(params)))
                yield from cur
            return
        with self.pool.connection() as conn, conn.transaction():
            with conn.cursor(name=f"leadflow_{next(_names)}") as cur:
                cur.itersize = 2000
                cur.execute(translate(sql), list(kept(params)))
                yield from cur

    # -- transactions --------------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self._conn() is not None

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """durable: COMMIT returns once the WAL is flushed (synchronous_commit on); others may lag it by
        a moment after a crash of the server (never of leadflow: the server has them)."""
        if self._conn() is not None:
            yield
            return
        with self.pool.connection() as conn:
            self._local.conn = conn
            try:
                # one round trip (no parameters: sent as one simple query)
                conn.execute("BEGIN" if durable else "BEGIN; SET LOCAL synchronous_commit TO OFF")
                try:
                    yield
                    if conn.info.transaction_status == self._pg.pq.TransactionStatus.INERROR:
                        # a statement failed outside any savepoint and was swallowed: COMMIT would roll
                        # back without a word, so say it
                        raise self._pg.errors.InFailedSqlTransaction("the transaction failed and was rolled back")
                    conn.execute("COMMIT")
                except BaseException:
                    if not conn.closed and conn.info.transaction_status != self._pg.pq.TransactionStatus.IDLE:
                        try:
                            conn.execute("ROLLBACK")
                        except self._pg.Error:  # the connection broke: the pool drops it
                            pass
                    raise
            finally:
                self._local.conn = None

    @contextmanager
    def savepoint(self, name: str = "one_event") -> Iterator[None]:
        if not name.isidentifier():
            raise ValueError(f"a savepoint name must be an identifier, not {name!r}")
        conn = self._conn()
        if conn is None:
            raise RuntimeError("a savepoint needs a transaction")
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if not conn.closed and conn.info.transaction_status in (self._pg.pq.TransactionStatus.INTRANS,
                                                                     self._pg.pq.TransactionStatus.INERROR):
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")

    def is_system_failure(self, exc: BaseException) -> bool:
        """The database failing (connection lost, disk full, a deadlock to retry): not the event's fault."""
        pg = self._pg
        return isinstance(exc, pg.Error) and not isinstance(exc, (pg.IntegrityError, pg.DataError))

    def is_retryable(self, exc: BaseException) -> bool:
        # by SQLSTATE: psycopg's DeadlockDetected is not a subclass of its TransactionRollback
        return isinstance(exc, self._pg.Error) and exc.sqlstate in _RETRYABLE

    def lock_leads(self, leads: Iterable[str]) -> None:
        # a batch locks its leads before they are checked: one with NUL or a lone surrogate (refused
        # later, as a dead letter) must not fail the statement, so such text is locked escaped
        keys = sorted({lead.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
                       for lead in leads})
        if keys:
            self._exec("SELECT pg_advisory_xact_lock(?, k) FROM (SELECT DISTINCT hashtext(l) AS k"
                       " FROM unnest(?::text[]) AS l ORDER BY 1) AS s", (LOCKS + 1, keys)).fetchall()

    # -- schema (for the migrations) -----------------------------------------------------------------
    def table_names(self) -> set[str]:
        return {r[0] for r in self.sql("SELECT table_name FROM information_schema.tables"
                                       " WHERE table_schema = current_schema()")}

    def column_names(self, table: str) -> set[str]:
        return {r[0] for r in self.sql("SELECT column_name FROM information_schema.columns"
                                       " WHERE table_schema = current_schema() AND table_name = ?", (table,))}

    def create_table(self, table: Table) -> None:
        single = table.pk if isinstance(table.pk, str) else None
        columns = []
        for name, kind in table.columns.items():
            if name == single:
                key = " GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" if kind is int else " PRIMARY KEY"
                columns.append(f"{_quote(name)} {_TYPES[kind]}{key}")
            else:
                columns.append(f"{_quote(name)} {_TYPES[kind]}")
        if single is None:
            columns.append(f"PRIMARY KEY ({', '.join(map(_quote, table.pk))})")
        self.sql(f"CREATE TABLE IF NOT EXISTS {_quote(table.name)} ({', '.join(columns)})")

    def add_column(self, table: str, column: str, kind: type) -> None:
        self.sql(f"ALTER TABLE {_quote(table)} ADD COLUMN IF NOT EXISTS {_quote(column)} {_TYPES[kind]}")

    def create_index(self, table: str, index: Index) -> None:
        name = index.name or f"idx_{table}_{'_'.join(index.columns)}"
        self.sql(f"CREATE {'UNIQUE ' if index.unique else ''}INDEX IF NOT EXISTS {_quote(name)} ON {_quote(table)}"
                 f" ({', '.join(map(_quote, index.columns))})")

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        with self.transaction(durable=True):
            self.sql("SELECT pg_advisory_xact_lock(?, 0)", (LOCKS,))
            yield

    def reset_ids(self, table: Table) -> None:
        """After rows came with their ids (a copy): new rows are numbered after the highest."""
        if isinstance(table.pk, str) and table.columns[table.pk] is int:
            self.sql(f"SELECT setval(pg_get_serial_sequence(?, ?), coalesce((SELECT max({_quote(table.pk)}) FROM"
                     f" {_quote(table.name)}), 0) + 1, false)", (table.name, table.pk))
