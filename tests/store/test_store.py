"""The store's transactions: what a failed COMMIT leaves behind, whose transaction is whose, which
failures are the database's, and names checked before they are spliced into SQL."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from leadflow.store import Store


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_commits(tmp_path):
    """COMMIT can fail (disk full, an I/O error; here a deferred constraint, the one failure SQLite lets a
    test cause on purpose). The connection must not stay inside the failed transaction, or every later
    transaction on that thread would nest into it and never commit."""
    store = Store(str(tmp_path / "s.db"))
    try:
        store.conn.execute("PRAGMA foreign_keys=ON")
        store.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        store.conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id)"
                           " DEFERRABLE INITIALLY DEFERRED)")
        with pytest.raises(sqlite3.IntegrityError):
            with store.transaction(durable=True):
                store.conn.execute("INSERT INTO child (id, parent) VALUES (1, 42)")  # checked at COMMIT
        assert not store.conn.in_transaction
        with store.transaction():
            store.add_outbox("after", "test_only", "a", {})
        other = sqlite3.connect(str(tmp_path / "s.db"))
        try:
            assert other.execute("SELECT key FROM outbox").fetchall() == [("after",)]
            assert other.execute("SELECT count(*) FROM child").fetchone() == (0,)
        finally:
            other.close()
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again after the failure
    finally:
        store.close()


def test_in_transaction_is_this_threads_own(tmp_path):
    """The pipeline asks whether its caller already holds a transaction (to know whether a refused
    internal event's dead letter would be rolled back with it); another thread's must not count."""
    store = Store(str(tmp_path / "s.db"))
    try:
        assert not store.in_transaction
        seen: list[bool] = []
        with store.transaction():
            assert store.in_transaction
            reader = threading.Thread(target=lambda: seen.append(store.in_transaction))
            reader.start()
            reader.join()
        assert seen == [False] and not store.in_transaction
    finally:
        store.close()


def test_a_refused_row_is_the_events_fault_a_locked_or_broken_database_is_not(tmp_path):
    """is_system_failure tells the pipeline whether to reject one event (and go on) or stop."""
    path = str(tmp_path / "s.db")
    store = Store(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        store.conn.execute("PRAGMA busy_timeout=50")  # give up on the lock at once (30 s in production)
        with store.transaction():
            store.conn.execute("INSERT INTO schedule (name, last_at) VALUES ('x', 1)")
        with pytest.raises(sqlite3.IntegrityError) as refused:
            store.conn.execute("INSERT INTO schedule (name, last_at) VALUES ('x', 2)")
        assert not store.is_system_failure(refused.value)
        assert not store.is_system_failure(ValueError("a bad value"))
        other.execute("BEGIN IMMEDIATE")  # someone else holds the write lock past our timeout
        with pytest.raises(sqlite3.OperationalError) as locked:
            with store.transaction():
                pass
        other.execute("ROLLBACK")
        assert store.is_system_failure(locked.value)
    finally:
        other.close()
        store.close()


def test_savepoint_names_and_table_names_are_checked_before_they_reach_sql(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    try:
        with store.transaction():
            with pytest.raises(ValueError):
                with store.savepoint("x; DROP TABLE events"):
                    pass
            with store.savepoint("one_request"):
                store.mark_run("digest", 1.0)
        assert store.last_run("digest") == 1.0
        assert store.count("events") == 0
        with pytest.raises(ValueError):
            store.count("sqlite_master")
        with pytest.raises(ValueError):
            store.add_assignment({"lead": "a", "rep) VALUES (1); --": "x"})
    finally:
        store.close()
