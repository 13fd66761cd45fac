"""The store's transactions: what a failed COMMIT leaves behind, whose transaction is whose, which
failures are the database's, and names checked before they are spliced into SQL; on both backends
(db_url), and what only PostgreSQL has: the translated SQL, a statement that failed outside a
savepoint, deadlocks between instances and the per-lead locks that keep one lead's events in order."""
from __future__ import annotations

import sqlite3
import threading
import time

import psycopg
import pytest

from leadflow.store import Store
from leadflow.store._postgres import translate

REFUSED = (sqlite3.IntegrityError, psycopg.IntegrityError)


@pytest.fixture
def pg(pg_url):
    s = Store(pg_url)
    yield s
    s.close()


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_commits(store, db_url):
    """COMMIT can fail (disk full, an I/O error; here a deferred constraint, the one failure both databases
    let a test cause on purpose). The connection must not stay inside the failed transaction, or every
    later transaction on that thread would nest into it and never commit."""
    if store.dialect == "sqlite":
        store.sql("PRAGMA foreign_keys=ON")  # per connection, off by default
    store.sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id)"
              " DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(REFUSED) as failed, store.transaction(durable=True):
        store.sql("INSERT INTO child (id, parent) VALUES (1, 42)")  # checked at COMMIT
    assert not store.is_system_failure(failed.value)
    assert not store.in_transaction
    with store.transaction():
        store.add_outbox("after", "test_only", "a", {})
    other = Store(db_url)
    try:
        assert other.sql("SELECT key FROM outbox") == [("after",)]
        assert other.sql("SELECT count(*) FROM child") == [(0,)]
    finally:
        other.close()
    if store.dialect == "sqlite":
        assert store.sql("PRAGMA synchronous") == [(1,)]  # NORMAL again after the failure


def test_in_transaction_is_this_threads_own(store):
    """The pipeline asks whether its caller already holds a transaction (to know whether a refused
    internal event's dead letter would be rolled back with it); another thread's must not count."""
    assert not store.in_transaction
    seen: list[bool] = []
    with store.transaction():
        assert store.in_transaction
        reader = threading.Thread(target=lambda: seen.append(store.in_transaction))
        reader.start()
        reader.join()
    assert seen == [False] and not store.in_transaction


def test_a_refused_row_is_the_events_fault_a_locked_or_broken_database_is_not(tmp_path):
    """is_system_failure tells the pipeline whether to reject one event (and go on) or stop."""
    path = str(tmp_path / "s.db")
    store = Store(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        store.busy_timeout = 0.05  # give up on the lock at once (30 s in production)
        with store.transaction():
            store.conn.execute("INSERT INTO schedule (name, last_at) VALUES ('x', 1)")
        with pytest.raises(sqlite3.IntegrityError) as refused:
            store.conn.execute("INSERT INTO schedule (name, last_at) VALUES ('x', 2)")
        assert not store.is_system_failure(refused.value)
        assert not store.is_system_failure(ValueError("a bad value"))
        other.execute("BEGIN IMMEDIATE")  # someone else holds the write lock past our timeout
        with pytest.raises(sqlite3.OperationalError) as locked, store.transaction():
            pass
        other.execute("ROLLBACK")
        assert store.is_system_failure(locked.value)
    finally:
        other.close()
        store.close()


def test_on_postgresql_a_refused_row_is_the_events_fault_a_lost_connection_is_not(pg, pg_url):
    """PostgreSQL's counterpart: a duplicate key or a value the server refuses is one event's fault; a
    connection killed under a transaction is the database's, and the next transaction gets a new one."""
    pg.sql("INSERT INTO schedule (name, last_at) VALUES ('x', 1)")
    with pytest.raises(psycopg.IntegrityError) as refused:
        pg.sql("INSERT INTO schedule (name, last_at) VALUES ('x', 2)")
    with pytest.raises(psycopg.DataError) as bad_value:
        pg.sql("INSERT INTO schedule (name, last_at) VALUES ('y', CAST(? AS DOUBLE PRECISION))", ("not a number",))
    assert not pg.is_system_failure(refused.value) and not pg.is_system_failure(bad_value.value)
    assert not pg.is_system_failure(ValueError("a bad value"))
    with psycopg.connect(pg_url, autocommit=True) as admin, pytest.raises(psycopg.OperationalError) as lost, \
            pg.transaction():
        pg.mark_run("lost", 1.0)
        (pid,), = pg.sql("SELECT pg_backend_pid()")
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # gone when it returns
        pg.mark_run("after", 1.0)
    assert pg.is_system_failure(lost.value) and not pg.is_retryable(lost.value)
    assert not pg.in_transaction
    with pg.transaction():
        pg.mark_run("next", 2.0)
    assert (pg.last_run("lost"), pg.last_run("next")) == (None, 2.0)


def test_savepoint_names_and_table_names_are_checked_before_they_reach_sql(store):
    with store.transaction():
        with pytest.raises(ValueError), store.savepoint("x; DROP TABLE events"):
            pass
        with store.savepoint("one_request"):
            store.mark_run("digest", 1.0)
    assert store.last_run("digest") == 1.0
    assert store.count("events") == 0
    with pytest.raises(ValueError):
        store.count("sqlite_master")
    with pytest.raises(ValueError):
        store.add_assignment({"lead": "a", "rep) VALUES (1); --": "x"})


def test_a_savepoint_rolled_back_undoes_its_block_and_keeps_the_rest_of_the_transaction(store):
    """One event's failure (here a refused row, which on PostgreSQL also aborts the transaction until the
    savepoint is rolled back) takes only that event's writes with it."""
    with store.transaction():
        store.mark_run("before", 1.0)
        with pytest.raises(REFUSED), store.savepoint():
            store.mark_run("inside", 2.0)
            store.sql("INSERT INTO schedule (name, last_at) VALUES ('before', 3)")  # a duplicate key
        store.mark_run("after", 4.0)
    assert [store.last_run(n) for n in ("before", "inside", "after")] == [1.0, None, 4.0]


# ---- PostgreSQL only -----------------------------------------------------------------------------------

def test_translate_turns_the_common_sql_into_postgresqls():
    assert translate("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == "SELECT a FROM t WHERE b = %s AND c IN (%s, %s)"
    assert translate("SELECT '?', 'it''s ?', ? WHERE x LIKE 'a%'") == "SELECT '?', 'it''s ?', %s WHERE x LIKE 'a%%'"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?)") == "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING id") == \
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id"
    assert translate("INSERT INTO t (a) VALUES (?)") == "INSERT INTO t (a) VALUES (%s)"


def test_translated_sql_runs_with_literal_percent_signs_question_marks_and_ignored_inserts(store):
    """The same statements give the same rows on both backends."""
    assert store.sql("SELECT '100%' || ?, '?', 'it''s'", ("!",)) == [("100%!", "?", "it's")]
    store.sql("INSERT INTO schedule (name, last_at) VALUES ('a%b', 1), ('ab', 2)")
    assert store.sql("SELECT name FROM schedule WHERE name LIKE 'a%' AND name LIKE ? ORDER BY name", ("%b",)) == \
        [("a%b",), ("ab",)]
    store.sql("INSERT OR IGNORE INTO schedule (name, last_at) VALUES (?, ?)", ("ab", 3))  # taken: nothing happens
    assert store.sql("SELECT last_at FROM schedule WHERE name = 'ab'") == [(2.0,)]


def test_a_failed_statement_swallowed_outside_a_savepoint_fails_the_transaction_loudly(pg):
    """PostgreSQL refuses every statement after an error until the transaction ends, and COMMIT then
    rolls back without a word: the transaction must raise instead of returning as if it committed."""
    with pytest.raises(psycopg.errors.InFailedSqlTransaction), pg.transaction():
        pg.mark_run("kept?", 1.0)
        try:
            pg.sql("SELECT 1 / 0")
        except psycopg.errors.DivisionByZero:
            pass  # a caller's mistake: caught, but not in a savepoint
    assert pg.last_run("kept?") is None and not pg.in_transaction
    with pg.transaction():
        pg.mark_run("next", 2.0)
    assert pg.last_run("next") == 2.0


def test_synchronous_commit_is_off_except_for_durable_transactions(pg):
    """Only commits someone is told about wait for the WAL flush (like SQLite's synchronous=FULL)."""
    with pg.transaction():
        assert pg.sql("SHOW synchronous_commit") == [("off",)]
    with pg.transaction(durable=True):
        assert pg.sql("SHOW synchronous_commit") == [("on",)]
    assert pg.sql("SHOW synchronous_commit") == [("on",)]  # SET LOCAL ended with its transaction


def test_a_real_deadlock_between_two_connections_is_retryable(pg):
    """Two transactions taking two rows in opposite orders: the server kills one, which is_retryable
    says may run again as it was; the other commits."""
    pg.sql("INSERT INTO schedule (name, last_at) VALUES ('a', 0), ('b', 0)")
    both_hold_one = threading.Barrier(2, timeout=10)
    errors: dict[str, BaseException] = {}

    def swap(first: str, second: str) -> None:
        try:
            with pg.transaction():
                pg.sql("SET LOCAL deadlock_timeout = '50ms'")
                pg.sql("UPDATE schedule SET last_at = 1 WHERE name = ?", (first,))
                both_hold_one.wait()
                pg.sql("UPDATE schedule SET last_at = 2 WHERE name = ?", (second,))
        except Exception as exc:  # noqa: BLE001 - kept for the assertions
            errors[first] = exc

    threads = [threading.Thread(target=swap, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(errors) == 1, errors
    (loser, exc), = errors.items()
    assert isinstance(exc, psycopg.errors.DeadlockDetected)
    assert pg.is_retryable(exc) and pg.is_system_failure(exc)
    assert not pg.is_retryable(psycopg.errors.UniqueViolation()) and not pg.is_retryable(ValueError())
    winner = "b" if loser == "a" else "a"
    assert dict(pg.sql("SELECT name, last_at FROM schedule")) == {winner: 1.0, loser: 2.0}


def _waiting_for_a_lock(store: Store, pid: int, timeout: float = 10.0) -> bool:
    """Whether the backend `pid` comes to wait for an advisory lock (polled until it does, or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.sql("SELECT 1 FROM pg_locks WHERE pid = ? AND locktype = 'advisory' AND NOT granted", (pid,)):
            return True
        time.sleep(0.005)
    return False


def test_lock_leads_holds_a_lead_until_the_transaction_ends_and_leaves_other_leads_free(pg):
    """Two processes applying events of one lead: the second waits for the first to commit. Leads
    nobody holds are taken at once, in one call, in any order given."""
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()
    second_pid: list[int] = []

    def first() -> None:
        with pg.transaction():
            pg.lock_leads(["L", "M"])
            order.append("first holds L")
            holding.set()
            release.wait(10)
            order.append("first commits")

    def second() -> None:
        with pg.transaction():
            second_pid.append(pg.sql("SELECT pg_backend_pid()")[0][0])
            pg.lock_leads(["Z", "L"])
            order.append("second holds L")

    one = threading.Thread(target=first)
    one.start()
    assert holding.wait(10)
    other = threading.Thread(target=lambda: _lock_and_note(pg, ["N", "O", "N"], order))
    other.start()
    other.join(10)
    assert order == ["first holds L", "others are free"]  # N and O were not held: taken while L is
    two = threading.Thread(target=second)
    two.start()
    while not second_pid:
        two.join(0.01)
    assert _waiting_for_a_lock(pg, second_pid[0])
    assert order == ["first holds L", "others are free"]  # it waits: observed in pg_locks, not assumed
    release.set()
    one.join(10)
    two.join(10)
    assert order == ["first holds L", "others are free", "first commits", "second holds L"]


def _lock_and_note(store: Store, leads: list[str], order: list[str]) -> None:
    with store.transaction():
        store.lock_leads(leads)
        order.append("others are free")
