"""What the table modules need from a database, whichever it is: SQLite or PostgreSQL.

The table modules (_leads, _desk, _schedule, _outbox, _metrics) write their SQL once, in the common
subset both databases speak, with `?` placeholders; a backend runs it (PostgreSQL's turns `?` into
its own placeholders and `INSERT OR IGNORE` into `ON CONFLICT DO NOTHING`, see _postgres.py). No
statement differs by backend: JSON text is taken apart in Python, the same way for both (see
_metrics.py). Callers above the store see neither: only `transaction`, `savepoint`,
`in_transaction`, `is_system_failure`, `is_retryable` and `lock_leads`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Protocol, Sequence

from ._schema import TABLES


def kept(params: Sequence[Any]) -> Sequence[Any]:
    """Parameters as both databases hold them alike: NUL in text becomes the four characters \\x00
    (PostgreSQL text cannot hold NUL; SQLite could, and then the two would answer differently). Done
    here, where every value passes, so a comment, a step's detail or a reason from hostile input can
    never fail one backend only."""
    if any(type(p) is str and "\x00" in p for p in params):
        return [p.replace("\x00", "\\x00") if type(p) is str else p for p in params]
    return params


class Cursor(Protocol):
    """What a statement gives back (a DB-API cursor: sqlite3's, psycopg's, or rows already read)."""

    description: Any
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list: ...
    def __iter__(self) -> Iterator: ...


class Database:
    """The primitives each backend provides, and the small helpers built on them."""

    dialect = "abstract"
    url = ""

    # -- primitives (each backend) -------------------------------------------------------------------
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _insert_id(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT into a table keyed by `id` and return the id it was given."""
        raise NotImplementedError

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """Rows of a query one at a time, without holding them all in memory."""
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        raise NotImplementedError
        yield

    @contextmanager
    def savepoint(self, name: str = "one_event") -> Iterator[None]:
        raise NotImplementedError
        yield

    def is_system_failure(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def is_retryable(self, exc: BaseException) -> bool:
        """A transaction that failed only because another one got in its way (a deadlock between two
        instances): rolled back whole, it can be run again as it was."""
        return False

    def lock_leads(self, leads: Iterable[str]) -> None:
        """Hold these leads until the transaction ends, so that one lead's events are applied one at a
        time across every process on the database (call inside a transaction)."""

    def close(self) -> None:
        raise NotImplementedError

    # -- helpers for the table modules ---------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        cur = self._exec(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, None when there is no row."""
        row = self._exec(sql, params).fetchone()
        return row[0] if row else None

    def count(self, table: str) -> int:
        """Rows in one of the store's tables (a name from _schema.TABLES)."""
        if table not in {t.name for t in TABLES}:
            raise ValueError(f"the store has no table {table!r}")
        return self._value(f"SELECT count(*) FROM {table}")

    def sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement of the common SQL (`?` placeholders) and return its rows, for tests and
        repairs that reach past the store's methods; the application itself never calls it."""
        cur = self._exec(sql, params)
        return [tuple(row) for row in cur.fetchall()] if cur.description else []

    @property
    def where(self) -> str:
        """The database for messages: the file, or the URL without its password."""
        return self.url
