"""Hostile and malformed input through the shipped `leadflow ingest` (and the commands that read what
it stored): each test is a class of input that once stopped, corrupted or fooled the service.

Every test runs the real CLI on a real database, most of them on both backends (db_url: a SQLite
file, then PostgreSQL); stored data "from before the fix" is written past leadflow's checks
(tests.leadflow_cli.tamper), as an old database would hold it.
"""
from __future__ import annotations

import json
import sqlite3
import textwrap
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest

from tests.bot_harness import RULES as DESK_RULES
from tests.bot_harness import sql_events
from tests.leadflow_cli import AT, Leadflow, clean_env, ev, ingest, rejected_fields, rows, tamper, write
from tests.leadflow_cli import SMALL_RULES as RULES

# ---- 1. non-finite numbers ---------------------------------------------------------------------------

def test_overflowing_numbers_anywhere_are_rejected_with_their_path_and_stats_keeps_working(cli_db):
    lines = [
        ev("g1", etype="lead_updated", title="VP Sales"),
        '{"id": "n1", "lead": "L", "type": "deal_won", "at": "2026-11-02T09:00:00Z", "data": {"amount": 1e400}}',
        '{"id": "n2", "lead": "L", "type": "lead_updated", "at": "2026-11-02T09:00:00Z", '
        '"data": {"a": {"b": [1, -1e400]}}}',
        '{"id": "n3", "lead": "L", "type": "lead_updated", "at": "2026-11-02T09:00:00Z", '
        '"data": {"email": ' + "9" * 400 + "}}",
        ev("g2", etype="demo_requested"),
    ]
    proc, counts = ingest(cli_db, lines)
    assert proc.returncode == 1 and (counts["applied"], counts["rejected"]) == (2, 3)
    said = rejected_fields(proc)
    assert said[2].startswith("data.amount: ") and "finite" in said[2]
    assert said[3].startswith("data.a.b[1]: ") and "finite" in said[3]
    assert said[4].startswith("data.email: ") and "too large" in said[4]
    stats = cli_db("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["revenue"] == 0
    assert rows(cli_db.db, "SELECT count(*) FROM events WHERE data LIKE '%Infinity%'") == [(0,)]


# ---- 2. one bad line never takes the others with it ----------------------------------------------------

def test_surrogates_deep_nesting_and_bad_bytes_reject_their_line_only(cli_db):
    deep = '{"id": "d1", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"x": ' + \
        "[" * 1000 + "]" * 1000 + "}}"
    lines = [
        ev("g1", etype="lead_updated", title="VP Sales"),                                  # 1
        '{"id": "s\\ud800", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z"}',   # 2 id
        '{"id": "s2", "lead": "L\\udfff", "type": "page_view", "at": "2026-11-02T09:00:00Z"}',  # 3 lead
        '{"id": "s3", "lead": "L", "type": "page_\\ud800", "at": "2026-11-02T09:00:00Z"}',     # 4 type
        '{"id": "s4", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"reason": "x\\ud800"}}',
        '{"id": "s5", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"k\\ud800": 1}}',
        deep,                                                                                   # 7
        '{"id": "s6", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"x": ' +
        "[" * 40 + "]" * 40 + "}}",                                                             # 8
        b'{"id": "b1", "lead": "M\xfcller", "type": "page_view", "at": "2026-11-02T09:00:00Z"}',  # 9: Latin-1
        '{"id": "s7", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z\\ud800"}',  # 10 at
        ev("g2", etype="demo_requested"),                                                      # 11
    ]
    proc, counts = ingest(cli_db, lines)
    assert proc.returncode == 1 and counts["applied"] == 2 and counts["rejected"] == 9, proc.stderr
    said = rejected_fields(proc)
    assert said[2].startswith("id: ") and "surrogate" in said[2]
    assert said[3].startswith("lead: ") and "surrogate" in said[3]
    assert said[4].startswith("type: ")
    assert said[5].startswith("data.reason: ") and "surrogate" in said[5]
    assert said[6].startswith("data.") and "surrogate" in said[6]
    assert "nested too deeply" in said[7] and "nested too deeply" in said[8]
    assert "not UTF-8: byte 0xFC" in said[9]
    assert said[10].startswith("at: ")
    assert rows(cli_db.db, "SELECT id FROM events ORDER BY seq") == [("g1",), ("g2",)]
    dead = rows(cli_db.db, "SELECT line, raw FROM dead_letters ORDER BY id")
    assert [line for line, _ in dead] == list(range(2, 11))
    assert dead[-2][1] == '{"id": "b1", "lead": "M\\xfcller", "type": "page_view", "at": "2026-11-02T09:00:00Z"}'
    shown = json.loads(cli_db("leads", "show", "L", "--json").stdout)
    assert shown["score"] == 60


def test_nul_characters_anywhere_become_dead_letters_or_escaped_json_alike_on_both_backends(cli_db):
    """PostgreSQL text cannot hold NUL (SQLite can): a NUL byte in a line, or a \\u0000 in any field,
    must give the same answers on both, and what is kept shows it escaped, never a crash."""
    head = '{"id": "%s", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z"'
    lines = [
        ev("g1", etype="lead_updated", title="VP\x00Sales", **{"k\x00": "v"}),                # 1 data: JSON-escaped
        (head % "b1").encode() + b', "data": {"t": "a\x00b"}}',                                # 2 a NUL byte in text
        (head % "b2").encode() + b"}\x00",                                                     # 3 ... after the JSON
        {"id": "z\x00", "lead": "L", "type": "page_view", "at": AT},                           # 4 id
        {"id": "z2", "lead": "L\x00", "type": "page_view", "at": AT},                          # 5 lead
        {"id": "z3", "lead": "L", "type": "page\x00view", "at": AT},                           # 6 type
        {"id": "z4", "lead": "L", "type": "page_view", "at": AT + "\x00"},                     # 7 at
        ev("z5\x00" * 60),                                                                    # 8 a long id
        ev("g2", etype="demo_requested", note="\x00"),                                        # 9
    ]
    proc, counts = ingest(cli_db, lines)
    assert (proc.returncode, counts["applied"], counts["rejected"]) == (1, 2, 7), proc.stderr
    said = rejected_fields(proc)
    assert "\x00" not in proc.stderr and sorted(said) == [2, 3, 4, 5, 6, 7, 8]
    assert [said[n].split(":")[0] for n in (4, 5, 6, 7, 8)] == ["id", "lead", "type", "at", "id"]
    dead = rows(cli_db.db, "SELECT line, raw, reason, field FROM dead_letters ORDER BY id")
    assert [d[0] for d in dead] == [2, 3, 4, 5, 6, 7, 8]
    assert not any("\x00" in text for d in dead for text in d[1:])
    assert dead[0][1] == (head % "b1") + ', "data": {"t": "a\\x00b"}}'  # the byte, escaped where it was
    assert dead[1][1] == (head % "b2") + "}\\x00"
    assert '"id": "z\\u0000"' in dead[2][1]  # JSON escapes stay as sent
    shown = json.loads(cli_db("leads", "show", "L", "--json").stdout)
    assert shown["attributes"] == {"title": "VP\x00Sales", "k\x00": "v"} and shown["score"] == 60
    assert rows(cli_db.db, "SELECT data FROM events WHERE id = 'g2'") == [('{"note":"\\u0000"}',)]
    listed = cli_db("dead-letters")
    assert listed.returncode == 0 and "\x00" not in listed.stdout and "a\\x00b" in listed.stdout


def test_a_failing_event_in_a_batch_of_500_does_not_roll_back_the_good_ones(cli_db):
    lines = [ev(f"e{i}", lead=f"L{i % 7}") for i in range(600)]
    lines[3] = '{"id": "bad", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"v": "\\ud800"}}'
    lines[450] = '{"id": "bad2", "lead": "L\\ud800", "type": "page_view", "at": "2026-11-02T09:00:00Z"}'
    proc, counts = ingest(cli_db, lines)
    assert (counts["applied"], counts["rejected"]) == (598, 2), proc.stderr
    assert rows(cli_db.db, "SELECT count(*) FROM events") == [(598,)]


def test_a_rejection_cannot_forge_lines_on_stderr(cli_db):
    lines = ['{"id": "x1", "lead": "L", "type": "page_view", "at": "soon\\nin.jsonl:9: rejected: forged"}',
             '{"id": "x2", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"a\\nb": 1e400}}']
    proc, counts = ingest(cli_db, lines)
    assert counts["rejected"] == 2
    said = [text for text in proc.stderr.splitlines() if ": rejected: " in text]
    assert len(said) == 2 and "soon\\x0ain.jsonl:9" in said[0] and said[1].split(": rejected: ")[1].startswith(
        "data.a\\x0ab: ")


# ---- 6. reserved types and ids, conflicts, id rules ----------------------------------------------------

def test_leadflows_own_types_and_ids_are_refused_from_a_jsonl_file_unless_trusted(cli_db):
    own = [ev(f"t-{t}", etype=t) for t in ("sql_accepted", "sql_rejected", "sql_reassigned", "lead_disqualified",
                                           "lead_recycled", "lead_reopened", "decay_tick")]
    ids = [ev(i) for i in ("fb-2", "fb-2-dq", "reopen:L:x", "tick:L:1", "nurture:1:2")]
    open_ = [ev("w1", etype="deal_won", amount=10), ev("w2", etype="deal_lost"), ev("u1", etype="lead_updated", a=1),
             ev("fb-leads-7"), ev("facebook:3")]  # ids that merely look alike are fine
    proc, counts = ingest(cli_db, own + ids + open_)
    assert (counts["applied"], counts["rejected"]) == (5, 12)
    said = rejected_fields(proc)
    assert all(said[n].startswith("type: ") and "leadflow's own event type" in said[n] for n in range(1, 8))
    assert all(said[n].startswith("id: ") and "leadflow's own" in said[n] for n in range(8, 13))
    proc, counts = ingest(cli_db, own + ids, "--trusted")
    assert (counts["applied"], counts["rejected"]) == (7, 5)  # trusted history: own types yes, own ids never


def test_a_csv_mapping_still_imports_the_reps_verdicts_for_tuning(cli_db):
    (cli_db.dir / "leads.csv").write_text("id,title,verdict,won\nc1,VP Sales,Accepted,1\nc2,Intern,Ringing,0\n")
    (cli_db.dir / "map.yaml").write_text("leadflow_mapping: 1\nlead: id\nat: 2026-11-02T09:00:00Z\nattributes:\n"
                                      "  - { column: title }\noutcome: { column: won, won: ['1'], lost: ['0'] }\n"
                                      "feedback: { column: verdict, accept: [Accepted], reject: { Ringing: no_answer } }\n")
    proc = cli_db("ingest", "--mapping", cli_db.dir / "map.yaml", cli_db.dir / "leads.csv", "--json")
    assert proc.returncode == 0, proc.stderr
    assert rows(cli_db.db, "SELECT lead, type FROM events WHERE type LIKE 'sql_%' ORDER BY lead") == \
        [("c1", "sql_accepted"), ("c2", "sql_rejected")]


def test_ids_are_strings_without_invisible_characters_and_nfc_makes_one_lead(cli_db):
    lines = [
        {"id": 7, "lead": "L", "type": "page_view", "at": AT},          # 1
        {"id": "n1", "lead": 42, "type": "page_view", "at": AT},        # 2
        ev("n2", lead=" L"),                                             # 3
        ev("n3", lead="L "),                                             # 4
        ev("n4", lead="L\u200b"),                                        # 5 zero-width space
        ev("n5", lead="L\u2028x"),                                       # 6 line separator
        ev("n6", lead="L\x07"),                                          # 7 control
        ev("n7\ufeff"),                                                  # 8 BOM in an id
        ev("n8", lead="Jos\u00e9"),                                      # 9 composed
        ev("n9", lead="Jose\u0301"),                                     # 10 decomposed: the same lead
    ]
    proc, counts = ingest(cli_db, lines)
    assert (counts["applied"], counts["rejected"]) == (2, 8)
    said = rejected_fields(proc)
    assert said[1].startswith("id: ") and 'send "7"' in said[1]
    assert said[2].startswith("lead: ") and 'send "42"' in said[2]
    assert all(said[n].startswith("lead: ") and "spaces at the start or end" in said[n] for n in (3, 4))
    assert all(said[n].startswith("lead: ") and "invisible or control character" in said[n] for n in (5, 6, 7))
    assert said[8].startswith("id: ") and "U+FEFF" in said[8]
    assert rows(cli_db.db, "SELECT id FROM leads") == [("Jos\u00e9",)]


def test_an_old_database_gets_the_digest_column_and_tells_resends_from_conflicts(cli):
    proc, _ = ingest(cli, [ev("e1", title="x")])
    assert proc.returncode == 0
    with closing(sqlite3.connect(cli.db)) as conn:  # as a database made before digests were stored
        if "digest" in [r[1] for r in conn.execute("PRAGMA table_info(events)")]:
            conn.execute("ALTER TABLE events DROP COLUMN digest")
            conn.execute("DROP TABLE schema_migrations")  # nor were schema versions kept
            conn.commit()
    proc, counts = ingest(cli, [ev("e1", title="x"), ev("e1", title="y"), ev("e2", title="z")])
    assert proc.returncode == 1
    assert counts == {"applied": 1, "duplicates": 1, "rejected": 0, "conflicts": 1, "stages": {"new": 1}}
    assert ": conflict: id: " in proc.stderr
    assert rows(cli.db, "SELECT id, digest IS NOT NULL FROM events ORDER BY seq") == [("e1", 0), ("e2", 1)]
    assert rows(cli.db, "SELECT field FROM dead_letters") == [("id",)]


def test_a_pre_sent_feedback_id_makes_the_reps_accept_an_error_not_a_silent_no_op(tmp_path, db_url):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(DESK_RULES)

    run = Leadflow(db_url, rules)

    write(tmp_path / "sql.jsonl", sql_events("a"))
    assert run("ingest", str(tmp_path / "sql.jsonl")).returncode == 0
    assert run("worker", "--once").returncode == 0  # routes the SQL: assignment 1
    presend = ("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) VALUES"
               " ('fb-1', 'a', 'page_view', 1793610000, '2026-11-02T09:00:00Z', '{}', 'webhook', 0)")
    tamper(db_url, (presend,))  # someone sent "fb-1" before leadflow reserved such ids
    accept = run("sql", "accept", "1")
    assert accept.returncode == 1
    assert "not recorded" in accept.stderr and "fb-1" in accept.stderr
    listed = json.loads(run("sql", "list", "--json").stdout)
    assert [(x["assignment"], x["status"]) for x in listed] == [(1, "pending")]  # nothing was half-decided
    assert json.loads(run("leads", "show", "a", "--json").stdout)["stage"] == "sql"


# ---- 10. attribute limits ------------------------------------------------------------------------------

def test_attributes_per_lead_are_capped_in_count_and_size(cli_db):
    lines = [ev(f"u{i}", etype="lead_updated", **{f"k{i}_{j}": j for j in range(50)}) for i in range(4)]  # 200
    lines.append(ev("u4", etype="lead_updated", one_more=1))                                          # 5: 201
    lines.append(ev("u5", etype="lead_updated", **{"k0_0": None, "one_more": 1}))                     # 6: swap
    lines.append(ev("u6", lead="M", etype="lead_updated", notes="x" * 40000))                          # 7: 40 KB
    lines.append(ev("u7", lead="M", etype="lead_updated", notes="x" * 30000))                          # 8: fits
    proc, counts = ingest(cli_db, lines)
    assert (counts["applied"], counts["rejected"]) == (6, 2)
    said = rejected_fields(proc)
    assert said[5].startswith("data: ") and "201 attributes" in said[5] and "limit is 200" in said[5]
    assert said[7].startswith("data: ") and "limit is 32 KB" in said[7]
    assert len(json.loads(cli_db("leads", "show", "L", "--json").stdout)["attributes"]) == 200


# ---- 11. time ------------------------------------------------------------------------------------------

def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_times_far_in_the_future_or_before_1970_are_rejected(cli_db):
    now = datetime.now(timezone.utc)
    lines = [ev("f1", at=iso(now + timedelta(hours=1))), ev("f2", at=iso(now + timedelta(days=2))),
             ev("f3", at="2099-01-01T00:00:00Z"), ev("f4", at="1969-12-31T23:59:59Z"),
             ev("f5", at="0001-01-01T00:30:00+01:00"), ev("f6", at="1970-01-01T00:00:00Z")]
    proc, counts = ingest(cli_db, lines)
    assert (counts["applied"], counts["rejected"]) == (2, 4)
    said = rejected_fields(proc)
    assert all(said[n].startswith("at: ") and "more than 1d in the future" in said[n] for n in (2, 3))
    assert all(said[n].startswith("at: ") and "before 1970" in said[n] for n in (4, 5))
    proc, counts = ingest(cli_db, [ev("f2", at=iso(now + timedelta(days=2)))], "--max-future", "3d")
    assert counts["applied"] == 1
    assert cli_db("ingest", str(cli_db.dir / "in.jsonl"), "--max-future", "soon").returncode == 2


def test_a_stored_time_out_of_range_does_not_break_leads_show(cli_db):
    proc, _ = ingest(cli_db, [ev("e1", etype="lead_updated", title="VP Sales"), ev("e2", etype="demo_requested")])
    assert proc.returncode == 0
    year0 = -62135600400  # 0001-01-01T00:30:00+01:00, accepted before times were checked
    (state,), = rows(cli_db.db, "SELECT state FROM leads WHERE id = 'L'")
    tamper(cli_db.db, ("UPDATE stage_history SET at = ?", year0), ("UPDATE events SET at = ?", year0),
           ("UPDATE decisions SET at = ?", year0),
           ("UPDATE leads SET state = ?", json.dumps({**json.loads(state), "clock": year0})))
    for args in (("leads", "show", "L", "--json"), ("leads", "show", "L"), ("leads", "explain", "L")):
        shown = cli_db(*args)
        assert shown.returncode == 0, shown.stderr
        assert "out of range" in shown.stdout


# ---- 14. money -----------------------------------------------------------------------------------------

def test_money_events_are_checked_at_ingest(cli_db):
    lines = [ev("m1", etype="campaign_cost", campaign="fall", amount="1,200"),     # 1
             ev("m2", etype="deal_won", amount="1,200"),                           # 2
             ev("m3", etype="campaign_cost", amount=100),                          # 3 no campaign
             ev("m4", etype="campaign_cost", campaign="fall"),                     # 4 no amount
             ev("m5", etype="deal_won", amount=-5),                                # 5
             ev("m6", etype="campaign_cost", campaign="fall", amount=True),        # 6
             ev("m7", etype="deal_won", amount=1200.5),                            # 7 ok
             ev("m8", etype="deal_won"),                                           # 8 ok: no amount
             ev("m9", etype="campaign_cost", campaign="fall", amount=300)]         # 9 ok
    proc, counts = ingest(cli_db, lines)
    assert (counts["applied"], counts["rejected"]) == (3, 6)
    said = rejected_fields(proc)
    assert said[1].startswith("data.amount: ") and "thousands separators" in said[1]
    assert said[2].startswith("data.amount: ") and "thousands separators" in said[2]
    assert said[3].startswith("data.campaign: ") and said[4].startswith("data.amount: ")
    assert said[5].startswith("data.amount: ") and "negative" in said[5]
    assert said[6].startswith("data.amount: ")
    stats = json.loads(cli_db("stats", "--json").stdout)
    assert stats["revenue"] == 1200.5 and "ignored" not in stats


def test_stats_survive_bad_amounts_stored_before_the_checks(cli_db):
    # lead M stays readable, so `--by country` names an attribute some lead has; L's state is spoilt below
    proc, _ = ingest(cli_db, [ev("a1", etype="lead_updated", country="US"), ev("m1", "M", "lead_updated", country="DE"),
                           ev("w1", etype="deal_won", amount=1000),
                           ev("c1", etype="campaign_cost", campaign="fall", amount=300)])
    assert proc.returncode == 0
    bad = [("w2", "deal_won", '{"amount":"1,200"}'), ("w3", "deal_won", '{"amount":Infinity}'),
           ("c2", "campaign_cost", '{"campaign":"fall","amount":"1,200"}'),
           ("c3", "campaign_cost", '{"campaign":"fall","amount":-Infinity}')]
    insert = ("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) VALUES"
              " (?, 'L', ?, 1793610000, ?, ?, 'old', 0)")
    tamper(cli_db.db, *[(insert, eid, etype, AT, data) for eid, etype, data in bad],
           ("""UPDATE leads SET state = replace(state, '"country":"US"', '"country":"US","n":Infinity')""",))
    for args in (("stats", "--json"), ("stats", "--by", "country", "--json"), ("stats", "--by", "campaign", "--json")):
        out = cli_db(*args)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["revenue"] == 1000 and data["cost"]["total"] == 300
        assert data["ignored"] == {"deal_won_amounts": 2, "campaign_costs": 2}
    assert cli_db("stats").returncode == 0


# ---- 16. durability ------------------------------------------------------------------------------------

def test_ingest_batches_commit_durably_and_other_commits_do_not_wait_for_the_disk(tmp_path):
    from leadflow.pipeline import Pipeline, ingest_file

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(RULES))
    pipeline = Pipeline.open(str(tmp_path / "s.db"), str(rules))
    store = pipeline.store
    try:
        synchronous = lambda: store.conn.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731
        assert synchronous() == 1 and store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with store.transaction(durable=True):
            assert synchronous() == 2  # FULL: COMMIT waits for the fsync of the WAL
        assert synchronous() == 1  # NORMAL again: the worker's bookkeeping does not pay an fsync
        said: list = []
        store.conn.set_trace_callback(said.append)
        ingest_file(pipeline, str(write(tmp_path / "e.jsonl", [ev(f"e{i}") for i in range(1200)])))
        store.conn.set_trace_callback(None)
        commits = [i for i, sql in enumerate(said) if sql == "COMMIT"]
        assert len(commits) == 3  # 500 + 500 + 200
        for i in commits:  # each batch is committed with FULL in force
            assert [sql for sql in said[:i] if sql.startswith("PRAGMA synchronous")][-1] == "PRAGMA synchronous=FULL"
    finally:
        store.close()


def test_a_reps_decision_commits_durably(routed_sql):
    service = routed_sql
    said: list = []
    service.store.conn.set_trace_callback(said.append)
    assert service.desk.decide(1, "accept", "U0ALICE01", "alice").status == "done"
    service.store.conn.set_trace_callback(None)
    commit = said.index("COMMIT")
    assert [sql for sql in said[:commit] if sql.startswith("PRAGMA synchronous")] == ["PRAGMA synchronous=FULL"]


def test_dead_letters_never_replays_terminal_escapes(cli_db):
    """Raw input shown to the operator: an escape sequence or CR in it is printed as \\xNN, not obeyed."""
    hostile = '{"id": "x", "lead": "L", "type": "page_view", "at": "' + AT + '", "data": {"t": "\x1b[2J\x1b]0;pwned\x07"}, '
    proc, _ = ingest(cli_db, [hostile + "\r oops"])
    assert proc.returncode == 1
    shown = cli_db("dead-letters")
    assert shown.returncode == 0 and "\\x1b[2J" in shown.stdout
    assert not any(ch in shown.stdout for ch in "\x1b\x07\r")


@pytest.mark.parametrize("name, value", [("LEADFLOW_MAX_FUTURE", "soon"), ("LEADFLOW_WRITER", "fork")])
def test_a_bad_setting_in_the_environment_is_a_usage_error_for_serve_and_worker(cli, name, value):
    for command in ("serve", "worker"):
        proc = cli(command, *(["--once"] if command == "worker" else []), env=clean_env(**{name: value}), timeout=60)
        assert proc.returncode == 2, (command, proc.stderr)
        assert name in proc.stderr and "Traceback" not in proc.stderr
