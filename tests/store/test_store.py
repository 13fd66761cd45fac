"""The store's transactions: what a failed COMMIT leaves behind."""
from __future__ import annotations

import sqlite3

import pytest

from engine.store import Store


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
