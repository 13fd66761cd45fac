"""Hostile CSV files through the shipped `leadflow ingest --mapping`, and reasons that quote a sender's
text: each test is a class of input that once stopped the import, lost good rows or let a cell decide
what only leadflow decides. Real CLI, real SQLite file."""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from tests.leadflow_cli import rejected_fields, rows  # `cli`: the fixture in tests/conftest.py

MAPPING = """leadflow_mapping: 1
lead: id
at: 2026-11-02T09:00:00Z
attributes:
  - { column: visits, as: total_visits, type: number }
  - { column: src, as: lead_source }
events:
  - { column: act, type: from_value, field: activity }
outcome: { column: won, won: ['1'], lost: ['0'] }
feedback: { column: verdict, accept: [Accepted], reject: { Ringing: no_answer } }
"""
HEADER = b"id,visits,src,act,won,verdict\n"


def ingest_csv(cli, body: bytes):  # noqa: ANN001, ANN201 - cli: the fixture's runner
    (cli.dir / "map.yaml").write_text(MAPPING)
    (cli.dir / "leads.csv").write_bytes(HEADER + body)
    proc = cli("ingest", "--mapping", str(cli.dir / "map.yaml"), str(cli.dir / "leads.csv"), "--json")
    assert proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout)


def test_a_cell_cannot_make_one_of_leadflows_own_event_types(cli):
    proc, _ = ingest_csv(cli, b"A1,3,web,Lead Disqualified,,\nA2,3,web,Decay-Tick,,\nA0,\"two\nlines\",web,,,\n"
                                   b"\nA3,3,web,lead reopened,,\nA4,3,web,Email Opened,1,Accepted\n")
    assert proc.returncode == 1
    said = rejected_fields(proc)
    assert sorted(said) == [2, 3, 7]  # file lines: a quoted cell spans two, a blank line is no row
    assert all(said[n].startswith("type: ") and "leadflow's own event type" in said[n] and "'act'" in said[n]
               for n in said)
    assert "'lead_disqualified'" in said[2] and "'decay_tick'" in said[3] and "'lead_reopened'" in said[7]
    assert rows(cli.db, "SELECT DISTINCT stage FROM leads WHERE id IN ('A1', 'A2', 'A3')") == [("new",)]
    assert rows(cli.db, "SELECT lead, type FROM events WHERE type NOT IN ('lead_updated', 'page_view') "
                        "ORDER BY lead, type") == [("A4", "deal_won"), ("A4", "email_opened"), ("A4", "sql_accepted")]
    assert rows(cli.db, "SELECT count(*) FROM dead_letters WHERE field = 'type'") == [(3,)]


def test_a_byte_that_is_not_utf8_rejects_its_row_and_the_others_are_stored(cli):
    proc, counts = ingest_csv(cli, b"B1,3,web,Email Opened,,\nB2,4,caf\xe9,Page Visited,,\nB3,5,ok,SMS Sent,,\n")
    assert proc.returncode == 1 and counts["rejected"] == 1
    assert rejected_fields(proc) == {3: "not UTF-8: byte 0xE9 in column 'src'"}
    assert rows(cli.db, "SELECT id FROM leads ORDER BY id") == [("B1",), ("B3",)]
    assert rows(cli.db, "SELECT raw, line FROM dead_letters") == [("B2,4,caf\\xe9,Page Visited,,", 3)]


def test_an_oversized_field_rejects_its_row_and_the_others_are_stored(cli):
    body = b"C1,3,web,x,,\nC2,4," + b"y" * 200_000 + b",x,,\nC3,4," + b"z" * 70_000 + b",x,,\nC4,5,ok,w,,\n"
    proc, counts = ingest_csv(cli, body)
    assert proc.returncode == 1 and counts["rejected"] == 2
    said = rejected_fields(proc)
    assert sorted(said) == [3, 4] and all("more than 64 KB" in said[n] for n in said)
    assert rows(cli.db, "SELECT id FROM leads ORDER BY id") == [("C1",), ("C4",)]


def test_eval_skips_unreadable_rows_instead_of_crashing(cli):
    (cli.dir / "map.yaml").write_text(MAPPING)
    (cli.dir / "leads.csv").write_bytes(HEADER + b"E1,3,web,x,1,\nE2,4,caf\xe9,x,0,\nE3,5,ok,x,0,\n")
    proc = cli("eval", "--data", str(cli.dir / "leads.csv"), "--mapping", str(cli.dir / "map.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)


def test_reasons_escape_c1_controls_and_unicode_line_separators(cli):
    lines = ['{"id": "s1", "lead": "L", "type": "page_view", "at": "soon\\u2028x\\u2029y\\u0085z\\u009bq"}']
    (cli.dir / "in.jsonl").write_text("\n".join(lines) + "\n")
    proc = cli("ingest", str(cli.dir / "in.jsonl"))
    assert proc.returncode == 1
    said = [text for text in proc.stderr.splitlines() if ": rejected: " in text]
    assert len(said) == 1 and "soon\\u2028x\\u2029y\\x85z\\x9bq" in said[0]
    assert not any(ch in proc.stderr for ch in "\u2028\u2029\x85\x9b")
    with closing(sqlite3.connect(cli.db)) as conn:
        reason = conn.execute("SELECT reason FROM dead_letters").fetchone()[0]
    assert "\u2028" not in reason and "\x85" not in reason


def test_csv_rows_with_a_bad_time_or_nan_are_dead_letters_or_missing_not_fatal(cli):
    (cli.dir / "leads.csv").write_text("id,created,visits,city\n"
                                       "l1,2026-11-02T09:00:00Z,5,Paris\n"
                                       "l2,,3,Lyon\n"
                                       "l3,2026-11-02T10:00:00Z,nan,Nice\n")
    (cli.dir / "map.yaml").write_text("leadflow_mapping: 1\nlead: id\nat: { column: created }\nattributes:\n"
                                      "  - { column: visits, type: number }\n  - { column: city }\n")
    proc = cli("ingest", "--mapping", str(cli.dir / "map.yaml"), str(cli.dir / "leads.csv"), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["applied"] == 2 and json.loads(proc.stdout)["rejected"] == 1
    rejected = rejected_fields(proc)
    assert list(rejected) == [3] and rejected[3].startswith("created:")  # the CSV line of l2, naming the column
    shown = json.loads(cli("leads", "show", "l3", "--json", check=True).stdout)
    assert shown["attributes"] == {"city": "Nice"}  # nan is missing; the rest of the row is kept
