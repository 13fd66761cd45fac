"""Schema versions as a user meets them: a database of release 0.1 upgraded in place keeps every row and
answers as before; any path through the migrations ends at exactly the declared schema, on both
backends; instances starting together apply each migration once; a newer database is left alone.

The release-0.1 database is tests/store/fixtures/release-0.1.sql.gz: the SQL dump (sqlite3 .dump) of
what `leadflow demo` made at commit d5ef6c3, the last commit before schema versions. What 0.1 answered
is computed here from the dump's own tables, so the test needs no numbers copied from a run.
"""
from __future__ import annotations

import gzip
import json
import sqlite3
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from leadflow.core import LeadflowError, format_time
from leadflow.store import Store
from leadflow.store._migrations import LATEST, MIGRATIONS, VERSIONS
from leadflow.store._schema import TABLES
from tests.leadflow_cli import ROOT, leadflow

DUMP = Path(__file__).parent / "fixtures" / "release-0.1.sql.gz"


def release_0_1(path: Path) -> Path:
    """The release-0.1 database as a SQLite file."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(gzip.decompress(DUMP.read_bytes()).decode("utf-8"))
    return path


def table_rows(path: Path, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every table, in rowid order (only `columns` of each table when given)."""
    with closing(sqlite3.connect(path)) as conn:
        names = columns or [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        picked = {name: ", ".join('"' + c + '"' for c in columns[name]) if columns else "*" for name in names}
        return {name: conn.execute(f'SELECT {picked[name]} FROM "{name}" ORDER BY rowid').fetchall()
                for name in names}


def column_names(path: Path) -> dict[str, list[str]]:
    with closing(sqlite3.connect(path)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')] for name in names}


def cli_json(db: object, *args: object) -> object:
    return json.loads(leadflow("--db", db, "--rules", ROOT / "rules", *args, "--json", check=True).stdout)


# ---- the schema a database has, read from the database itself -------------------------------------

AFFINITY = {"INTEGER": int, "TEXT": str, "REAL": float, "FLOAT": float}
PG_TYPES = {"bigint": int, "text": str, "double precision": float}


def schema_of(url: str) -> dict[str, dict]:
    """table -> {columns: [(name, type)], pk: (...), indexes: {(name, columns, unique)}, identity: {...}}
    for a SQLite path or a PostgreSQL URL, the primary key's own index left out."""
    if url.startswith("postgresql://"):
        return _pg_schema(url)
    out = {}
    with closing(sqlite3.connect(url)) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            indexes = set()
            for _, name, unique, origin, _partial in conn.execute(f'PRAGMA index_list("{table}")'):
                if origin != "pk":
                    columns = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{name}")'))
                    indexes.add((name, columns, bool(unique)))
            out[table] = {"columns": [(r[1], AFFINITY[r[2]]) for r in info],
                          "pk": tuple(r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]),
                          "indexes": indexes}
    return out


def _pg_schema(url: str) -> dict[str, dict]:
    out = {}
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables"
                                             " WHERE table_schema = current_schema()")]
        for table in tables:
            info = conn.execute("SELECT column_name, data_type, is_identity FROM information_schema.columns WHERE"
                                " table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                                (table,)).fetchall()
            indexes, pk = set(), ()
            for name, unique, primary, columns in conn.execute(
                    "SELECT c.relname, i.indisunique, i.indisprimary, array(SELECT a.attname FROM unnest(i.indkey)"
                    " WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n"
                    " ORDER BY k.o) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indrelid = %s::regclass", (table,)):
                if primary:
                    pk = tuple(columns)
                else:
                    indexes.add((name, tuple(columns), unique))
            out[table] = {"columns": [(r[0], PG_TYPES[r[1]]) for r in info], "pk": pk, "indexes": indexes,
                          "identity": {r[0] for r in info if r[2] == "YES"}}
    return out


def declared(postgres: bool) -> dict[str, dict]:
    """The schema _schema.TABLES (and the version table) declare, in the shape `schema_of` reads."""
    out = {}
    for table in (*TABLES, VERSIONS):
        pk = (table.pk,) if isinstance(table.pk, str) else table.pk
        out[table.name] = {
            "columns": list(table.columns.items()), "pk": pk,
            "indexes": {(i.name or f"idx_{table.name}_{'_'.join(i.columns)}", i.columns, i.unique)
                        for i in table.indexes}}
        if postgres:  # a single integer key is numbered by the database
            out[table.name]["identity"] = {table.pk} if len(pk) == 1 and table.columns[table.pk] is int else set()
    return out


# ---- release 0.1, upgraded --------------------------------------------------------------------------

def test_a_release_0_1_database_upgrades_in_place_keeping_every_row(tmp_path):
    path = release_0_1(tmp_path / "release-0.1.db")
    before, old_columns = table_rows(path), column_names(path)
    assert sum(len(rows) for rows in before.values()) > 2000  # the demo's rows, in 12 of the 15 tables

    status = leadflow("db", "status", "--db", path, "--json")
    assert status.returncode == 1 and "3 migrations pending" in status.stderr  # a script can test it
    found = json.loads(status.stdout)
    assert (found["version"], found["latest"], found["applied"]) == (0, LATEST, [])
    assert [m["version"] for m in found["pending"]] == [1, 2, 3]
    assert column_names(path) == old_columns and table_rows(path) == before  # status changed nothing

    upgraded = leadflow("db", "upgrade", "--db", path, check=True).stdout.splitlines()
    assert upgraded == [f"applied {m.version:>3}  {m.name}" for m in MIGRATIONS] + ["schema version 3 (the latest)"]

    assert table_rows(path, old_columns) == before  # every row of every table, every value
    now = column_names(path)
    assert now["nurture"] == old_columns["nurture"] + ["claimed_by", "lease_until"]
    assert {tuple(r) for r in table_rows(path)["nurture"]} == {r + (None, None) for r in before["nurture"]}
    assert table_rows(path)["instances"] == []
    assert schema_of(str(path)) == declared(postgres=False)  # nothing missing, nothing left over
    after = json.loads(leadflow("db", "status", "--db", path, "--json", check=True).stdout)
    assert after["version"] == LATEST and after["pending"] == []
    assert [(m["version"], m["name"]) for m in after["applied"]] == [(m.version, m.name) for m in MIGRATIONS]
    again = leadflow("db", "upgrade", "--db", path, check=True).stdout
    assert again.strip() == "schema version 3 (the latest): nothing to apply"


def test_the_upgraded_release_0_1_database_answers_as_its_tables_say(tmp_path):
    """leads list/show, stats and sql list on the upgraded file give what the dump's rows hold."""
    path = release_0_1(tmp_path / "release-0.1.db")
    with closing(sqlite3.connect(path)) as conn:
        leads = conn.execute("SELECT id, stage, round(score, 2), owner FROM leads").fetchall()
        history = conn.execute("SELECT lead, to_stage, at, reason, rule, rules_version FROM stage_history"
                               " ORDER BY lead, at, id").fetchall()
        events = Counter(r[0] for r in conn.execute("SELECT lead FROM events"))
        assignments = conn.execute("SELECT id, lead, rep, channel, status, why, due_at FROM assignments"
                                   " ORDER BY id").fetchall()
    leadflow("db", "upgrade", "--db", path, check=True)

    listed = cli_json(path, "leads", "list")
    assert sorted(tuple(r.values()) for r in listed) == sorted(leads)
    assert [r["score"] for r in listed] == sorted((r["score"] for r in listed), reverse=True)

    owned = min(lead for lead, _, _, owner in leads if owner)
    busiest = Counter(h[0] for h in history).most_common(1)[0][0]
    for lead in {owned, busiest}:
        shown = cli_json(path, "leads", "show", lead)
        row = next(r for r in leads if r[0] == lead)
        assert (shown["stage"], round(shown["score"], 2), shown["owner"], shown["events"]) == \
            (row[1], row[2], row[3], events[lead])
        assert [(h["stage"], h["at"], h["reason"], h["rule"], h["rules_version"]) for h in shown["history"]] == \
            [(to, format_time(at), reason, rule, version) for who, to, at, reason, rule, version in history
             if who == lead]

    stats = cli_json(path, "stats")
    entered = Counter(h[1] for h in history)
    assert stats["stages"] == dict(entered)
    for step in stats["funnel"]:
        assert step["entered"] == entered[step["stage"]]
        assert step["cohort"] == len({h[0] for h in history if h[1] == step["stage"]})

    open_sqls = cli_json(path, "sql", "list", "--all")
    assert [tuple(r.values()) for r in open_sqls] == \
        [(i, lead, rep, channel, status, why, format_time(due) if due else None)
         for i, lead, rep, channel, status, why, due in assignments]


# ---- any path through the migrations ends at the declared schema --------------------------------------

def test_a_new_database_has_exactly_the_declared_schema(db_url):
    Store(db_url).close()
    assert schema_of(db_url) == declared(postgres=db_url.startswith("postgresql://"))


def test_a_postgresql_database_upgraded_step_by_step_equals_one_made_at_once(pg_url, postgres):
    at_once = postgres.new_database()
    try:
        steps = [leadflow("db", "upgrade", "--db", pg_url, "--to", n, "--json", check=True) for n in (1, 2, LATEST)]
        assert [[m["version"] for m in json.loads(p.stdout)["applied"]] for p in steps] == [[1], [2], [3]]
        assert json.loads(leadflow("db", "upgrade", "--db", at_once, "--json", check=True).stdout)["applied"] == \
            [{"version": m.version, "name": m.name} for m in MIGRATIONS]
        assert schema_of(pg_url) == schema_of(at_once) == declared(postgres=True)
    finally:
        postgres.drop(at_once)


def test_upgrade_refuses_to_go_back_and_to_a_version_it_does_not_know(pg_url):
    leadflow("db", "upgrade", "--db", pg_url, check=True)
    back = leadflow("db", "upgrade", "--db", pg_url, "--to", 1)
    assert back.returncode == 1 and "SCHEMA_PAST_TARGET" in back.stderr and "never downgrades" in back.stderr
    unknown = leadflow("db", "upgrade", "--db", pg_url, "--to", LATEST + 1)
    assert unknown.returncode == 2 and f"up to {LATEST}" in unknown.stderr


def test_instances_upgrading_one_new_database_together_apply_each_migration_once(db_url):
    """Four stores (as four instances starting at once) all see version 0, then upgrade; the lock and
    the second look at the version under it leave one of them applying everything."""
    stores = [Store(db_url, upgrade=False) for _ in range(4)]
    start = threading.Barrier(len(stores))
    applied: list[list[int]] = []
    failed: list[BaseException] = []

    def upgrade(store: Store) -> None:
        try:
            assert store.schema_status().version == 0
            start.wait(timeout=60)  # a thread that failed before it breaks the barrier, never hangs the rest
            applied.append([m.version for m in store.upgrade()])
        except BaseException as exc:  # noqa: BLE001 - reported below, on the test's thread
            failed.append(exc)

    threads = [threading.Thread(target=upgrade, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not failed, failed
        assert sorted(applied) == [[], [], [], [1, 2, 3]]
        assert stores[0].sql("SELECT version FROM schema_migrations ORDER BY version") == [(1,), (2,), (3,)]
    finally:
        for s in stores:
            s.close()


def test_a_database_newer_than_this_leadflow_is_refused_and_left_as_it_is(db_url):
    store = Store(db_url)
    store.sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
              (LATEST + 1, "from a later release", 1.0))
    store.sql("DROP TABLE instances")  # an upgrade run by mistake would bring it back
    store.close()
    before = schema_of(db_url)

    upgrade = leadflow("db", "upgrade", "--db", db_url)
    assert upgrade.returncode == 1 and "SCHEMA_TOO_NEW" in upgrade.stderr and "Traceback" not in upgrade.stderr
    status = leadflow("db", "status", "--db", db_url, "--json")
    assert status.returncode == 1 and "SCHEMA_TOO_NEW" in status.stderr
    assert (json.loads(status.stdout)["version"], json.loads(status.stdout)["up_to_date"]) == (LATEST + 1, False)
    listing = leadflow("--db", db_url, "leads", "list")
    assert listing.returncode == 1 and "SCHEMA_TOO_NEW" in listing.stderr
    with pytest.raises(LeadflowError) as refused:
        Store(db_url)
    assert refused.value.problems[0].code == "SCHEMA_TOO_NEW"
    assert schema_of(db_url) == before and "instances" not in before


# ---- an older file than release 0.1 -------------------------------------------------------------------

OLD = [  # as leadflow made these tables before digests and leases
    ("CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, lead TEXT, type TEXT, at REAL, at_text TEXT,"
     " data TEXT, source TEXT, received_at REAL)"),
    "CREATE UNIQUE INDEX idx_events_id ON events (id)",
    ("CREATE TABLE outbox (id INTEGER PRIMARY KEY, key TEXT, kind TEXT, lead TEXT, payload TEXT, created_at REAL,"
     " status TEXT, attempts INTEGER, next_at REAL, last_error TEXT)"),
    "CREATE UNIQUE INDEX idx_outbox_key ON outbox (key)",
    ("CREATE TABLE stage_history (id INTEGER PRIMARY KEY, lead TEXT, from_stage TEXT, to_stage TEXT, at REAL,"
     " reason TEXT, rule TEXT, rules_version TEXT, event_id TEXT)"),
    ("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at)"
     " VALUES ('e1', 'a', 'page_view', 1.0, '1970-01-01T00:00:01Z', '{}', 'old', 1.0)"),
    ("INSERT INTO outbox (key, kind, lead, payload, created_at, status, attempts, next_at)"
     " VALUES ('k1', 'email', 'a', '{}', 1.0, 'pending', 0, 0)"),
]


def test_an_older_file_gets_the_digest_the_lease_and_the_missing_tables_and_keeps_its_rows(tmp_path):
    """Two upgrades happened before release 0.1 in the field: events gained a content `digest` and
    outbox rows a lease; migration 1 brings such a file to the same place as a 0.1 one."""
    path = str(tmp_path / "old.db")
    with closing(sqlite3.connect(path)) as conn:
        for statement in OLD:
            conn.execute(statement)
        conn.commit()
    store = Store(path)
    try:
        assert schema_of(path) == declared(postgres=False)
        stored = store.stored_event("e1")
        assert stored is not None and stored.digest is None and stored.lead == "a"
        row = store.outbox("email")[0]
        with store.transaction():  # the old pending row can be leased like a new one
            assert store.outbox_claim(row["id"], "pending", 0, claimed_by="worker-1", lease_until=99.0)
        assert store.outbox("email")[0]["claimed_by"] == "worker-1"
    finally:
        store.close()
    Store(path).close()  # a second opening finds nothing to do
    assert schema_of(path) == declared(postgres=False)
