"""Opening a database made by an older leadflow brings it up to date, keeping its rows.

Two upgrades happened in the field: events gained a content `digest` (to tell a resent event from a
changed one) and outbox rows gained a lease (`claimed_by`, `lease_until`). The schema is declared
once and an older file gets whatever columns and indexes it lacks.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing

from leadflow.store import Store
from leadflow.store._migrations import LATEST
from leadflow.store._schema import TABLES

OLD = [  # as leadflow made these tables before digests and leases
    'CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, lead TEXT, type TEXT, at REAL, at_text TEXT,'
    ' data TEXT, source TEXT, received_at REAL)',
    'CREATE UNIQUE INDEX idx_events_id ON events (id)',
    'CREATE TABLE outbox (id INTEGER PRIMARY KEY, key TEXT, kind TEXT, lead TEXT, payload TEXT, created_at REAL,'
    ' status TEXT, attempts INTEGER, next_at REAL, last_error TEXT)',
    'CREATE UNIQUE INDEX idx_outbox_key ON outbox (key)',
    'CREATE TABLE stage_history (id INTEGER PRIMARY KEY, lead TEXT, from_stage TEXT, to_stage TEXT, at REAL,'
    ' reason TEXT, rule TEXT, rules_version TEXT, event_id TEXT)',
    "INSERT INTO events (id, lead, type, at, at_text, data, source, received_at)"
    " VALUES ('e1', 'a', 'page_view', 1.0, '1970-01-01T00:00:01Z', '{}', 'old', 1.0)",
    "INSERT INTO outbox (key, kind, lead, payload, created_at, status, attempts, next_at)"
    " VALUES ('k1', 'email', 'a', '{}', 1.0, 'pending', 0, 0)",
]


def columns(path: str, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def indexes(path: str) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_an_old_database_gets_the_digest_the_lease_and_the_missing_tables_and_keeps_its_rows(tmp_path):
    path = str(tmp_path / "old.db")
    with closing(sqlite3.connect(path)) as conn:
        for statement in OLD:
            conn.execute(statement)
        conn.commit()
    store = Store(path)
    try:
        for table in TABLES:
            assert columns(path, table.name) == list(table.columns), table.name
        assert "stage_history_lead_at" in indexes(path)
        stored = store.stored_event("e1")
        assert stored is not None and stored.digest is None and stored.lead == "a"
        row = store.outbox("email")[0]
        with store.transaction():  # the old pending row can be leased like a new one
            assert store.outbox_claim(row["id"], "pending", 0, claimed_by="worker-1", lease_until=99.0)
        assert store.outbox("email")[0]["claimed_by"] == "worker-1"
    finally:
        store.close()
    Store(path).close()  # a second opening finds nothing to do
    assert columns(path, "outbox") == list(next(t for t in TABLES if t.name == "outbox").columns)


def test_a_new_database_has_every_declared_table_and_index(tmp_path):
    path = str(tmp_path / "new.db")
    store = Store(path)
    assert store.schema_status().version == LATEST and not store.schema_status().pending
    store.close()
    with closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {t.name for t in TABLES} <= tables
    named = {index.name for table in TABLES for index in table.indexes if index.name}
    assert named <= indexes(path)
    assert len(indexes(path)) >= sum(len(table.indexes) for table in TABLES)
