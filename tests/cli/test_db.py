"""`leadflow db copy`: a database moved SQLite -> PostgreSQL -> SQLite keeps every row of every table,
ids included, and answers the same; new rows on PostgreSQL are numbered after the copied ones; a
destination holding rows is refused; a wrong address is a clear error, never a traceback.

The source is what `leadflow demo` makes, with one row added to each table the demo leaves empty, so
that every table of the store is copied with something in it."""
from __future__ import annotations

import json
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from leadflow.store import Store, copy_database
from leadflow.store._schema import TABLES
from tests.cli.test_conventions import _on_a_terminal
from tests.leadflow_cli import ROOT, leadflow

INT_KEYS = [t for t in TABLES if isinstance(t.pk, str) and t.columns[t.pk] is int]


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory) -> Path:
    """The demo's database, every table holding at least one row."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    leadflow("demo", "--db", path, "--rules", ROOT / "rules", check=True)
    with closing(sqlite3.connect(path)) as conn:
        for table in TABLES:
            if not conn.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]:
                names = list(table.columns)
                values = [{int: 1, float: 1.5, str: f"{name}-1"}[kind] for name, kind in table.columns.items()]
                conn.execute(f'INSERT INTO "{table.name}" ({", ".join(chr(34) + n + chr(34) for n in names)})'
                             f' VALUES ({", ".join("?" for _ in names)})', values)
        conn.commit()
    return path


@pytest.fixture
def source(demo_source, tmp_path) -> Path:
    """A copy of the demo database of this test's own."""
    path = tmp_path / "source.db"
    with closing(sqlite3.connect(demo_source)) as old, closing(sqlite3.connect(path)) as new:
        old.backup(new)
    return path


def rows(url: object) -> dict[str, list[tuple]]:
    """Every row of every table of the store, in key order, read past leadflow (sqlite3 or psycopg)."""
    out = {}
    for table in TABLES:
        keys = ", ".join(f'"{k}"' for k in ((table.pk,) if isinstance(table.pk, str) else table.pk))
        columns = ", ".join(f'"{c}"' for c in table.columns)
        sql = f'SELECT {columns} FROM "{table.name}" ORDER BY {keys}'
        if str(url).startswith("postgresql://"):
            with psycopg.connect(str(url)) as conn:
                out[table.name] = [tuple(r) for r in conn.execute(sql)]
        else:
            with closing(sqlite3.connect(url)) as conn:
                out[table.name] = conn.execute(sql).fetchall()
    return out


def answers(db: object) -> tuple[object, object]:
    """What `leads list` and `stats` say about a database."""
    def run(*args: str) -> object:
        return json.loads(leadflow("--db", db, "--rules", ROOT / "rules", *args, "--json", check=True).stdout)

    return run("leads", "list"), run("stats")


def test_sqlite_to_postgresql_and_back_keeps_every_row_and_answer(source, pg_url, tmp_path):
    before = rows(source)
    assert all(before.values())  # every table has rows to copy

    there = leadflow("db", "copy", source, pg_url, "--json", check=True)
    report = json.loads(there.stdout)
    assert report["ok"] and report["rows"] == sum(map(len, before.values())) and there.stderr == ""
    assert {t["table"]: (t["source"], t["destination"]) for t in report["tables"]} == \
        {name: (len(r), len(r)) for name, r in before.items()}
    back = tmp_path / "back.db"
    text = leadflow("db", "copy", pg_url, back, check=True).stdout
    assert "every table has the same count on both sides" in text and "events" in text.splitlines()[1]

    assert rows(pg_url) == before and rows(back) == before  # ids, texts and floats, exactly
    assert answers(pg_url) == answers(back) == answers(source)
    status = json.loads(leadflow("db", "status", "--db", pg_url, "--json", check=True).stdout)
    assert status["up_to_date"]


def test_new_rows_on_postgresql_are_numbered_after_the_copied_ones(source, pg_url, tmp_path):
    leadflow("db", "copy", source, pg_url, check=True)
    copied = {t.name: max(r[list(t.columns).index(t.pk)] for r in rows(pg_url)[t.name]) for t in INT_KEYS}
    events = tmp_path / "new.jsonl"
    events.write_text(json.dumps({"id": "after-copy-1", "lead": "new-lead", "type": "demo_requested",
                                  "at": "2026-11-02T09:00:00Z", "data": {"title": "VP Sales"}}) + "\nnot json\n")
    ingest = leadflow("--db", pg_url, "--rules", ROOT / "rules", "ingest", events)
    assert ingest.returncode == 1 and "applied 1" in ingest.stdout  # the line that is not JSON is refused
    now = rows(pg_url)
    grown = {}
    for table in INT_KEYS:
        key = list(table.columns).index(table.pk)
        new = sorted(r[key] for r in now[table.name] if r[key] > copied[table.name])
        assert len(new) == len(now[table.name]) - len(rows(source)[table.name]), table.name  # none reused an id
        grown[table.name] = new
    assert grown["events"] == [copied["events"] + 1] and grown["dead_letters"] == [copied["dead_letters"] + 1]
    assert grown["stage_history"] and grown["contributions"]


def test_a_destination_holding_rows_is_refused_and_left_as_it_is(source, pg_url, tmp_path):
    leadflow("db", "copy", source, pg_url, check=True)
    held = rows(pg_url)
    again = leadflow("db", "copy", source, pg_url)
    assert again.returncode == 1 and "DB_NOT_EMPTY" in again.stderr and f"events {len(held['events'])}," in again.stderr
    assert rows(pg_url) == held
    into_sqlite = leadflow("db", "copy", pg_url, source)
    assert into_sqlite.returncode == 1 and "DB_NOT_EMPTY" in into_sqlite.stderr
    assert rows(source) == held
    made = tmp_path / "made.db"  # a database with the schema and no rows yet is empty
    Store(str(made)).close()
    leadflow("db", "copy", pg_url, made, check=True)
    assert rows(made) == held


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("src, dst, code, says", [
    ("{tmp}/missing.db", "{tmp}/out.db", 2, "no database at"),
    ("{source}", "mysql://me:secret@db.example/leads", 2, "is not a database address"),
    ("{source}", "{tmp}/no/such/folder/out.db", 2, "no folder"),
    ("{readme}", "{tmp}/out.db", 1, "DB_UNREADABLE"),
    ("{source}", "postgresql://me:secret@127.0.0.1:{port}/leads", 1, "DB_UNREACHABLE"),
    ("{source}", "{missing_database}", 1, "does not exist"),
])
def test_a_wrong_address_is_a_clear_error(source, tmp_path, postgres, src, dst, code, says):
    """2: the address itself is wrong (caught before anything is opened); 1: it names something
    that is not a leadflow database or cannot be reached (the database's own words)."""
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, source=source, readme=ROOT / "README.md", port=_closed_port(),
                           missing_database=postgres.url_for("leadflow_no_such_database"))

    proc = leadflow("db", "copy", fill(src), fill(dst))
    assert (proc.returncode, proc.stdout) == (code, "")
    assert says in proc.stderr and "Traceback" not in proc.stderr and "secret" not in proc.stderr
    assert not (tmp_path / "out.db").exists()


def test_a_nul_character_kept_by_sqlite_is_written_as_an_escape_in_postgresql(source, pg_url):
    """An older leadflow kept a raw line's NUL in SQLite; PostgreSQL's text cannot hold one."""
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("INSERT INTO dead_letters (received_at, source, line, raw, reason, field)"
                     " VALUES (1.0, 'old.jsonl', 3, 'ab' || char(0) || 'cd', 'not JSON', NULL)")
        conn.commit()
    proc = leadflow("db", "copy", source, pg_url, check=True)
    assert "dead_letters: 1 row(s) held a NUL character" in proc.stderr
    assert rows(pg_url)["dead_letters"][-1][4] == "ab\\x00cd"


def test_counts_that_differ_at_the_end_are_reported(source, tmp_path):
    """A row written to the source while the copy runs (here by the progress callback, after the
    dead letters were copied) shows in the counts compared at the end."""
    src, dst = Store(str(source)), Store(str(tmp_path / "back.db"), upgrade=False)
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        src.dead_letter("late", "written during the copy", "", "test", None)

    try:
        report = copy_database(src, dst, progress)
    finally:
        src.close()
        dst.close()
    assert not report.ok and [t.table for t in report.tables if not t.same] == ["dead_letters"]
    assert seen[-1][0] == report.rows and all(done <= total for done, total in seen)


def test_the_progress_bar_shows_on_a_terminal_and_never_with_json(source, tmp_path):
    code, out, terminal = _on_a_terminal("db", "copy", source, tmp_path / "a.db")
    total = sum(map(len, rows(source).values()))
    assert code == 0 and f"/{total}" in terminal and "eta" in terminal and "copied" in out
    code, out, terminal = _on_a_terminal("db", "copy", source, tmp_path / "b.db", "--json")
    assert code == 0 and json.loads(out)["ok"] and "eta" not in terminal
