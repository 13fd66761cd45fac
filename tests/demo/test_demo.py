"""`leadflow demo`, the first command a new user runs: its report is deterministic and agrees with
the database it leaves behind (read here with plain SQL, not through the store)."""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing

from tests.leadflow_cli import ROOT, leadflow


def demo(out) -> dict:  # noqa: ANN001 - a path
    return json.loads(leadflow("--rules", ROOT / "rules", "demo", "--out", out, "--json", check=True).stdout)


def test_the_demo_report_is_what_its_database_holds_and_the_same_every_run(tmp_path):
    report = demo(tmp_path / "one.db")
    again = demo(tmp_path / "two.db")
    assert {k: v for k, v in report.items() if k != "db"} == {k: v for k, v in again.items() if k != "db"}
    with closing(sqlite3.connect(tmp_path / "one.db")) as db:
        stages = Counter(dict(db.execute("SELECT stage, count(*) FROM leads GROUP BY stage").fetchall()))
        rejected = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        assigned = {lead for (lead,) in db.execute("SELECT lead FROM assignments")}
    assert Counter(report["stages"]) == stages and sum(stages.values()) == 60
    assert report["rejected"] == rejected == 2  # the demo feeds two broken lines on purpose
    assert {lead for lead, *_ in report["routed"]} == assigned  # every routed SQL has its assignment
    assert report["applied"] > 0 and report["sqls"]


def test_the_demo_on_postgresql_tells_the_same_story_as_on_sqlite_and_never_fills_a_used_database(tmp_path, pg_url):
    on_file = json.loads(leadflow("demo", "--db", str(tmp_path / "d.db"), "--json", check=True).stdout)
    on_server = json.loads(leadflow("demo", "--db", pg_url, "--json", check=True).stdout)
    assert on_file.pop("db") != on_server.pop("db")
    assert on_server == on_file and on_server["applied"] > 0
    again = leadflow("demo", "--db", pg_url)
    assert again.returncode == 1 and "DEMO_DB_NOT_EMPTY" in again.stderr and "Traceback" not in again.stderr
    listed = leadflow("--db", pg_url, "leads", "list", "--json", check=True).stdout
    assert len(json.loads(listed)) == sum(on_file["stages"].values())  # the refused run added nothing
