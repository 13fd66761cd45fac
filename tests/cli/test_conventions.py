"""The CLI's conventions, each through the shipped command (`python -m leadflow`) on a real SQLite file:
list commands have a header, --json and --csv (not both); explain and worker speak JSON; a rep's
decision names an assignment or a lead and is stamped where the lead's history is; rules check wants
a directory; reading commands never create a database; long work shows a bar only on a terminal."""
from __future__ import annotations

import csv
import io
import json
import os
import pty
import sqlite3
import subprocess
from contextlib import closing

import pytest

from tests.bot_harness import RULES, sql_events
from tests.datasets import EXAMPLE, write_labelled_csv
from tests.leadflow_cli import ROOT, Leadflow, clean_env, leadflow, leadflow_command

LISTS = [("leads", "list"), ("sql", "list"), ("dead-letters",)]


@pytest.fixture
def desk(tmp_path):
    """Two SQLs ("a" and "b") on the bot harness's rules, and one refused line (a dead letter)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    events = tmp_path / "in.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in sql_events("a") + sql_events("b")) + "not json\n")
    cli = Leadflow(tmp_path / "d.db", rules)
    assert cli("ingest", events).returncode == 1  # the refused line
    return cli


@pytest.mark.parametrize("command", LISTS)
def test_list_commands_print_a_header_and_take_json_and_csv(desk, command):
    rows = json.loads(desk(*command, "--json", check=True).stdout)
    assert rows and all(isinstance(r, dict) for r in rows)
    text = desk(*command, check=True).stdout.splitlines()
    assert text[0] == text[0].upper() and text[0].split()  # a header line in capitals, then the rows
    table = list(csv.reader(io.StringIO(desk(*command, "--csv", check=True).stdout)))
    assert set(table[0]) >= set(rows[0]) - {"received_at"} and len(table) == len(rows) + 1
    both = desk(*command, "--json", "--csv")
    assert both.returncode == 2 and both.stdout == "" and "--csv" in both.stderr


def test_stats_refuses_json_with_csv(desk):
    assert desk("stats", "--json", "--csv").returncode == 2


def test_explain_and_worker_take_json(desk):
    explained = json.loads(desk("leads", "explain", "a", "--json", check=True).stdout)
    assert explained["id"] == "a" and explained["stage"] == "sql" and explained["story"][0].startswith("a is SQL")
    once = json.loads(desk("worker", "--once", "--json", check=True).stdout)
    assert once["routed"] == 2  # routes the two SQLs
    people = desk("worker", "--once", check=True).stdout
    assert "routed 0" in people and "delivered" in people  # one line for people: nothing left to route
    with pytest.raises(json.JSONDecodeError):
        json.loads(people)


def test_sql_accept_and_reject_take_the_lead_id_or_the_assignment_number(desk):
    listed = {r["lead"]: r["assignment"] for r in json.loads(desk("sql", "list", "--json", check=True).stdout)}
    assert desk("sql", "accept", "a", check=True).stdout.strip() == "a accepted"
    rejected = json.loads(desk("sql", "reject", f"#{listed['b']}", "--reason", "no_budget", "--json",
                               check=True).stdout)
    assert (rejected["status"], rejected["assignment"]["lead"]) == ("done", "b")
    again = desk("sql", "accept", str(listed["a"]))  # the bare number still names the assignment
    assert again.returncode == 1 and "already accepted" in again.stderr
    unknown = desk("sql", "accept", "nobody")
    assert unknown.returncode == 2 and "neither an assignment number" in unknown.stderr


def test_a_decision_on_a_lead_whose_history_runs_ahead_is_stamped_at_the_leads_time(tmp_path):
    """Imported history dated after today: the rep's verdict must not land before the lead's own events
    (the stage history, the event log and the feedback then tell one story)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in sql_events("f", at="2030-01-07T09:00:00Z")))
    cli = Leadflow(tmp_path / "d.db", rules)
    cli("ingest", tmp_path / "in.jsonl", "--max-future", "3650d", check=True)
    cli("sql", "accept", "f", check=True)
    with closing(sqlite3.connect(tmp_path / "d.db")) as conn:
        (decided,) = conn.execute("SELECT at FROM events WHERE type = 'sql_accepted'").fetchone()
        (latest,) = conn.execute("SELECT max(at) FROM events WHERE type != 'sql_accepted'").fetchone()
        (feedback,) = conn.execute("SELECT at FROM feedback").fetchone()
    assert decided >= latest and feedback == decided
    history = json.loads(cli("leads", "show", "f", "--json", check=True).stdout)["history"]
    assert history[-1]["stage"] == "accepted" and history[-1]["at"] >= history[-2]["at"]


def test_rules_check_wants_a_directory(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    on_file = leadflow("rules", "check", tmp_path / "rules.yaml")
    assert on_file.returncode == 2 and "is a file" in on_file.stderr and "directory" in on_file.stderr
    missing = leadflow("rules", "check", tmp_path / "nosuchdir")
    assert missing.returncode == 2 and "no rule directory" in missing.stderr
    assert leadflow("rules", "check", tmp_path).returncode == 0


@pytest.mark.parametrize("command", [
    ("leads", "list"), ("leads", "show", "a"), ("leads", "explain", "a"), ("dead-letters",), ("sql", "list"),
    ("sql", "accept", "1"), ("outbox",), ("stats",), ("rules", "backtest", "--candidate", str(ROOT / "rules")),
    ("rules", "tune", "--out", "{tmp}/proposal"),
])
def test_a_mistyped_db_for_a_read_command_is_a_usage_error_not_a_new_database(tmp_path, command):
    typo = tmp_path / "leadfow.db"
    proc = leadflow("--db", typo, "--rules", ROOT / "rules", *(a.replace("{tmp}", str(tmp_path)) for a in command))
    assert proc.returncode == 2 and "no database at" in proc.stderr
    assert not typo.exists()


def test_bench_help_shows_a_plain_percent_sign():
    shown = leadflow("bench", "--help", check=True).stdout
    assert "1%" in shown and "%%" not in shown


def _on_a_terminal(*args: object) -> tuple[int, str, str]:
    """Run the shipped command with stderr on a pseudo-terminal: (exit code, stdout, the terminal's text)."""
    main, side = pty.openpty()
    proc = subprocess.Popen(leadflow_command(*args), cwd=ROOT, env=clean_env(COLUMNS="120", TERM="xterm"),
                            stdout=subprocess.PIPE, stderr=side, text=True)
    os.close(side)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the pseudo-terminal closes when the command exits
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read()
    proc.wait(timeout=120)
    os.close(main)
    return proc.returncode, out, seen.decode("utf-8", "replace")


def _sixty_leads(tmp_path) -> tuple:
    """A rule directory and a JSONL file of 120 events (60 leads that become SQL)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    events = tmp_path / "in.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for n in range(60) for e in sql_events(f"p{n}")))
    return rules, events


def test_ingest_shows_a_progress_bar_with_a_total_on_a_terminal_only(tmp_path):
    rules, events = _sixty_leads(tmp_path)
    code, _, terminal = _on_a_terminal("--db", tmp_path / "t.db", "--rules", rules, "ingest", events)
    assert code == 0 and "/120" in terminal and "eta" in terminal  # 120 events: the total, then time left
    code, out, terminal = _on_a_terminal("--db", tmp_path / "j.db", "--rules", rules, "ingest", events, "--json")
    assert code == 0 and json.loads(out)["applied"] == 120 and "eta" not in terminal
    piped = leadflow("--db", tmp_path / "p.db", "--rules", rules, "ingest", events)
    assert piped.returncode == 0 and piped.stderr == ""


def test_tune_shows_its_replays_against_their_total_on_a_terminal(tmp_path):
    data = tmp_path / "leads.csv"
    write_labelled_csv(data, 120, seed=3)
    code, _, terminal = _on_a_terminal("rules", "tune", "--rules", EXAMPLE / "start", "--data", data, "--mapping",
                                       EXAMPLE / "mapping.yaml", "--out", tmp_path / "proposal")
    assert code == 0 and "/1440" in terminal and "eta" in terminal  # 120 leads replayed 12 times


def test_backtest_in_processes_shows_its_events_against_their_total_on_a_terminal(tmp_path):
    rules, events = _sixty_leads(tmp_path)
    leadflow("--db", tmp_path / "t.db", "--rules", rules, "ingest", events, check=True)
    code, out, terminal = _on_a_terminal("--db", tmp_path / "t.db", "--rules", rules, "rules", "backtest",
                                         "--candidate", rules, "--jobs", "2")
    assert code == 0 and "/120" in terminal and "eta" in terminal and "replayed 120 events" in out
