"""The reps' queue effect of a tuning proposal where a manager decides on it: `rules tune` (JSON and
text, with --out and with --apply) and the proposal's Slack card. The figures themselves are checked
against a generated history in test_queue.py; here they must be the backtest of the database's log
through the live rules and the proposal, the same in every place that shows them.

The database is test_proposals.py's `leadflow demo` database (its fixture, reused)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from leadflow.learning import queue_effect, queue_line
from leadflow.store import Store
from tests.bot_harness import Service
from tests.datasets import EXAMPLE, write_labelled_csv
from tests.learning.test_proposals import TUNING, bundled_copy, cli, copy_db, demo_db  # noqa: F401  (a fixture)
from tests.slack_fake import SlackFake


def _effect(db: Path, current: Path, proposed: Path) -> dict:
    store = Store(str(db))
    try:
        return queue_effect(store, str(current), str(proposed))
    finally:
        store.close()


def _checked(queue: dict) -> None:
    """A backtest of the demo's history: months of it, SQLs under the live rules, figures in range (the
    proposal may well make fewer SQLs, or none: showing that is the point)."""
    assert queue["weeks"] > 1 and queue["current"]["sqls_per_week"] > 0
    assert 0 < queue["current"]["precision"] <= 1 and 0 < queue["current"]["recall"] <= 1
    assert queue["proposed"]["sqls_per_week"] >= 0 and 0 <= queue["proposed"]["recall"] <= 1


def test_tune_reports_the_queue_effect_of_its_proposal(demo_db, tmp_path):  # noqa: F811
    live = bundled_copy(tmp_path / "rules")
    out = tmp_path / "proposal"
    report = json.loads(cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--out", str(out),
                            "--json").stdout)
    _checked(report["queue"])
    assert report["queue"] == _effect(demo_db, live, out)
    text = cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--out", str(tmp_path / "again")).stdout
    assert queue_line(report["queue"]) in text.splitlines()


def test_tune_apply_measures_the_proposal_against_the_rules_it_replaces(demo_db, tmp_path):  # noqa: F811
    live = bundled_copy(tmp_path / "rules")
    before = shutil.copytree(live, tmp_path / "before")
    report = json.loads(cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--apply", "--json").stdout)
    assert (live / "scoring.yaml").read_bytes() != (before / "scoring.yaml").read_bytes()  # it was applied
    _checked(report["queue"])
    assert report["queue"] == _effect(demo_db, before, live)  # old rules as current, the applied ones as proposed


def test_tune_from_a_csv_without_a_database_has_no_queue(tmp_path):
    data = tmp_path / "leads.csv"
    write_labelled_csv(data, 200, seed=7)
    report = json.loads(cli("--db", str(tmp_path / "none.db"), "rules", "tune", "--rules", str(EXAMPLE / "start"),
                            "--data", str(data), "--mapping", str(EXAMPLE / "mapping.yaml"), "--out",
                            str(tmp_path / "p"), "--json").stdout)
    assert report["queue"] is None and not (tmp_path / "none.db").exists()


def test_the_slack_proposal_card_shows_the_queue_line(demo_db, tmp_path):  # noqa: F811
    bundled_copy(tmp_path / "rules")
    copy_db(demo_db, tmp_path / "lf.db")
    with SlackFake() as fake, Service(tmp_path, fake, rules=TUNING) as svc:
        post = fake.wait_for("chat.postMessage", timeout=60, where=lambda c: c["args"]["channel"] == "C0MARKET1")
        blocks = json.dumps(post[0]["args"]["blocks"])
        report = json.loads(svc.service.store.proposal(1)["report"])
    _checked(report["queue"])
    line = queue_line(report["queue"])
    assert line.startswith("reps' queue: ") and "backtest of" in line
    assert line.replace("->", "-&gt;") in blocks  # shown as written (mrkdwn-escaped)
