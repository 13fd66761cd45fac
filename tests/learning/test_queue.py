"""What a tuning proposal does to the reps' queue (engine/learning/_queue.py): SQLs per week, precision
and recall under the current and the proposed rules, from a backtest of the stored event log.

The history is generated here: 24 leads over four weeks, lead i with i % 4 page views (10 points
each) and a label on a fixed pattern (a rep's accept or reject, a won deal, or none). The current
rules make an SQL at 30 points (three visits), the candidate at 20 (two), so the expected figures
follow from the visits and labels alone and are computed here without the engine.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leadflow.core import format_time, parse_time
from leadflow.learning import queue_effect, queue_line
from leadflow.store import Store
from tests.leadflow_cli import Leadflow, write

T0 = parse_time("2026-09-07T09:00:00Z")
DAY, WEEK = 86400, 7 * 86400
LEADS = 24
RULES = """\
leadflow: 1
scoring:
  engagement:
    - {{ id: visit, on: page_view, points: 10 }}
stages:
  mql:
    when: {{ score: {{ at_least: 10 }} }}
  sql:
    when: {{ score: {{ at_least: {sql} }} }}
"""


def _visits(i: int) -> int:
    return i % 4


def _label(i: int) -> str | None:
    """The labelling event of lead i, if any."""
    if i % 3 == 0:
        return "sql_accepted"
    if i % 3 == 1:
        return "sql_rejected"
    return "deal_won" if i % 2 == 0 else None


def _history() -> list[dict]:
    """Lead i arrives on day i, visits hourly, and is labelled four days later."""
    out = []
    for i in range(LEADS):
        lead, start = f"q{i:02d}", T0 + i * DAY
        out.append({"id": f"{lead}-new", "lead": lead, "type": "lead_updated", "at": format_time(start),
                    "data": {"company": f"Company {i}"}})
        for v in range(_visits(i)):
            out.append({"id": f"{lead}-v{v}", "lead": lead, "type": "page_view",
                        "at": format_time(start + (v + 1) * 3600), "data": {"url": "/pricing"}})
        if _label(i):
            out.append({"id": f"{lead}-label", "lead": lead, "type": _label(i), "at": format_time(start + 4 * DAY),
                        "data": {"rep": "ann"}})
    return out


def _expected(min_visits: int, weeks: float) -> dict:
    sqls = [i for i in range(LEADS) if _visits(i) >= min_visits]
    labelled = [i for i in sqls if _label(i)]
    positive = [i for i in range(LEADS) if _label(i) in ("sql_accepted", "deal_won")]
    return {"sqls_per_week": round(len(sqls) / weeks, 2),
            "precision": round(sum(1 for i in labelled if i in positive) / len(labelled), 4),
            "recall": round(sum(1 for i in sqls if i in positive) / len(positive), 4)}


@pytest.fixture
def history(tmp_path) -> tuple[Path, Path, Path]:
    """(database, current rules, candidate rules): the generated history ingested through the CLI."""
    current, candidate = tmp_path / "current", tmp_path / "candidate"
    for directory, sql in ((current, 30), (candidate, 20)):
        directory.mkdir()
        (directory / "rules.yaml").write_text(RULES.format(sql=sql))
    db = tmp_path / "lf.db"
    cli = Leadflow(db, current)
    done = json.loads(cli("ingest", "--trusted", str(write(tmp_path / "log.jsonl", _history())), "--json",
                          check=True).stdout)
    assert done["rejected"] == 0
    return db, current, candidate


def test_a_lower_sql_threshold_fills_the_queue_by_the_numbers_of_the_history(history):
    db, current, candidate = history
    times = [parse_time(e["at"]) for e in _history()]
    weeks = (max(times) - min(times)) / WEEK
    assert weeks > 3  # 23 days of arrivals and four more to the last label
    store = Store(str(db))
    try:
        effect = queue_effect(store, str(current), str(candidate))
    finally:
        store.close()
    assert effect == {"weeks": round(weeks, 2), "current": _expected(3, weeks), "proposed": _expected(2, weeks)}
    assert effect["proposed"]["sqls_per_week"] > effect["current"]["sqls_per_week"]
    assert effect["proposed"]["recall"] > effect["current"]["recall"]
    line = queue_line(effect)
    assert line.startswith(f"reps' queue: {effect['current']['sqls_per_week']:.1f} -> "
                           f"{effect['proposed']['sqls_per_week']:.1f} SQLs/week, precision ")
    assert line.endswith(f"(backtest of {round(weeks, 2):g} weeks)")


def test_the_same_rules_give_the_same_figures_and_an_empty_store_none(history, tmp_path):
    db, current, _ = history
    store = Store(str(db))
    try:
        same = queue_effect(store, str(current), str(current))
    finally:
        store.close()
    assert same["current"] == same["proposed"]
    empty = Store(str(tmp_path / "empty.db"))
    try:
        assert queue_effect(empty, str(current), str(current)) is None
    finally:
        empty.close()


def test_a_short_history_counts_as_one_week(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES.format(sql=20))
    events = [{"id": f"s{v}", "lead": "s", "type": "page_view", "at": format_time(T0 + v * 3600), "data": {}}
              for v in range(3)]
    Leadflow(tmp_path / "lf.db", rules)("ingest", str(write(tmp_path / "log.jsonl", events)), check=True)
    store = Store(str(tmp_path / "lf.db"))
    try:
        effect = queue_effect(store, str(rules), str(rules))
    finally:
        store.close()
    # two hours of history: one SQL in one week, not 84 a week; no labels, so no precision or recall
    assert effect == {"weeks": 1.0, "current": {"sqls_per_week": 1.0, "precision": None, "recall": None},
                      "proposed": {"sqls_per_week": 1.0, "precision": None, "recall": None}}
    assert "precision n/a -> n/a" in queue_line(effect)
