"""Metrics against figures computed by hand on a small fixed history (see the comments), on each
backend (a SQLite file, then PostgreSQL)."""
from __future__ import annotations

import json

import pytest

from leadflow.core import format_time, parse_time
from leadflow.reports import compute
from leadflow.service import LeadService
from tests.bundled_service import BUYER, T0
from tests.leadflow_cli import leadflow
from tests.reports.funnel_history import database

D0 = parse_time("2026-10-05T09:00:00Z")  # a Monday
H, DAY = 3600.0, 86400.0
RULES = """\
leadflow: 1
events: { touch: a touch, demo: a demo request }
scoring:
  engagement:
    - { id: touch, on: touch, points: 10 }
    - { id: demo, on: demo, points: 10 }
stages:
  mql: { when: { score: { at_least: 10 } } }
  sql: { when: { event: demo } }
reps:
  - { id: alice, slack: U1 }
  - { id: bob, slack: U2 }
  - { id: cara, slack: U3, away: true }
routing:
  - { when: { country: DE }, pool: [cara] }
  - { pool: [alice, bob] }
fallback: { channel: "#queue" }
feedback:
  reject_reasons:
    - { id: no_budget, label: No budget }
"""


class Clock:
    now = D0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def history(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stats")
    (tmp / "rules").mkdir()
    (tmp / "rules" / "rules.yaml").write_text(RULES)
    clock = Clock()
    db = database(request, tmp)
    service = LeadService(db, str(tmp / "rules"), clock=clock)

    def ev(lead: str, etype: str, t: float, data: dict | None = None) -> None:
        out = service.pipeline.apply({"id": f"{lead}-{etype}-{t}", "lead": lead, "type": etype, "at": format_time(t),
                                      "data": data or {}})
        assert out.status == "applied", out.reason
        clock.now = t
        service.desk.route_pending()

    # A: new+mql day 0, sql day 1 (alice), accepted day 2, won day 5 for 1000. source google
    ev("A", "lead_updated", D0, {"source": "google", "country": "US"})
    ev("A", "touch", D0)
    ev("A", "demo", D0 + DAY)
    # B: new+mql day 0, sql day 3 (bob), rejected 2 hours later. source google
    ev("B", "lead_updated", D0, {"source": "google", "country": "US"})
    ev("B", "touch", D0)
    ev("B", "demo", D0 + 3 * DAY)
    # C: new day 0, mql day 1, never sql. source ads
    ev("C", "lead_updated", D0, {"source": "ads"})
    ev("C", "touch", D0 + DAY)
    # D: new, mql and sql on one event on day 2 (skips nothing, climbs twice); routed to the fallback (cara away)
    ev("D", "lead_updated", D0 + 2 * DAY, {"country": "DE"})
    ev("D", "demo", D0 + 2 * DAY)
    # E: only new, day 10
    ev("E", "lead_updated", D0 + 10 * DAY, {"source": "ads"})
    # F: MQL on day 4 and won on day 6 without ever being an SQL (stages skipped), 500. source ads
    ev("F", "lead_updated", D0 + 4 * DAY, {"source": "ads"})
    ev("F", "touch", D0 + 4 * DAY)
    ev("F", "deal_won", D0 + 6 * DAY, {"amount": 500})
    a = {x["lead"]: x for x in service.store.assignments()}
    clock.now = D0 + 2 * DAY
    assert service.desk.decide(a["A"]["id"], "accept", "U1", "alice").status == "done"
    clock.now = D0 + 3 * DAY + 2 * H
    assert service.desk.decide(a["B"]["id"], "reject", "U2", "bob", reason="no_budget").status == "done"
    ev("A", "deal_won", D0 + 5 * DAY, {"amount": 1000})
    yield service, tmp, db
    service.store.close()


def test_all_time_figures(history):
    service, _, _ = history
    r = compute(service.store, by="source")
    assert r["stages"] == {"new": 6, "mql": 5, "sql": 3, "accepted": 1, "rejected": 1, "won": 2}
    assert r["cohorts"] == {"mql": 5, "sql": 3}
    # MQL cohort A B C D F; SQL: A, B, D. A 24 h, B 72 h, D 0 h from MQL to SQL: median 24,
    # p90 = 24 + 0.8 * (72 - 24) = 62.4. F was won without being an SQL: it is not in sql_to_won.
    # MQL->won: A and F of the five MQLs
    assert r["conversion"] == {"mql_to_sql": 0.6, "sql_to_accepted": 0.3333, "sql_to_won": 0.3333, "mql_to_won": 0.4}
    assert r["median_hours"]["mql_to_sql"] == 24 and r["p90_hours"]["mql_to_sql"] == 62.4
    assert r["median_hours"]["sql_to_accepted"] == 24  # A: SQL day 1, accepted day 2
    assert r["won"] == 2 and r["revenue"] == 1500
    reps = {x["rep"]: x for x in r["reps"]}
    assert (reps["alice"]["accepted"], reps["alice"]["acceptance_rate"]) == (1, 1.0)
    assert (reps["bob"]["rejected"], reps["bob"]["acceptance_rate"], reps["bob"]["median_hours_to_decision"]) == (1, 0.0, 2)
    assert "cara" not in reps and r["sla_breaches"] == 0  # D went to the fallback channel: no owner
    assert r["reject_reasons"] == [{"reason": "no_budget", "label": "no_budget", "count": 1}]  # no labels given
    by = {g["value"]: g for g in r["by"]}
    assert set(by) == {"google", "ads", "(none)"}
    assert by["google"]["cohorts"] == {"mql": 2, "sql": 2} and by["google"]["conversion"]["mql_to_sql"] == 1.0
    assert by["ads"]["stages"] == {"new": 3, "mql": 2, "won": 1} and by["ads"]["conversion"]["mql_to_sql"] == 0.0
    assert by["ads"]["won"] == 1 and by["ads"]["revenue"] == 500
    assert by["(none)"]["stages"] == {"new": 1, "mql": 1, "sql": 1}  # D, which has no source
    assert by["google"]["revenue"] == 1000


def test_periods_and_empty_periods(history):
    service, _, _ = history
    # day 1 (inclusive) to day 3 (exclusive): C's MQL, A's and D's SQL, D's new and MQL, A's acceptance
    r = compute(service.store, D0 + DAY, D0 + 3 * DAY)
    assert r["stages"] == {"new": 1, "mql": 2, "sql": 2, "accepted": 1}
    assert r["cohorts"] == {"mql": 2, "sql": 2} and r["conversion"]["mql_to_sql"] == 0.5  # C no, D yes
    empty = compute(service.store, D0 + 20 * DAY, D0 + 30 * DAY)
    assert empty["stages"] == {} and empty["cohorts"] == {"mql": 0, "sql": 0}
    assert set(empty["conversion"].values()) == {None} and len(empty["conversion"]) == 4
    assert empty["median_hours"]["mql_to_sql"] is None and empty["reps"] == [] and empty["revenue"] == 0


def test_rep_view_and_rule_version_slices(history):
    service, _, _ = history
    mine = compute(service.store, rep="bob")
    assert mine["stages"] == {"new": 1, "mql": 1, "sql": 1, "rejected": 1} and [x["rep"] for x in mine["reps"]] == ["bob"]
    versions = compute(service.store, by="rules_version")["by"]
    assert [g["value"] for g in versions] == [service.pipeline.version]


def test_cli_json_csv_and_chart(history, tmp_path):
    _, tmp, db = history
    costs = tmp_path / "costs.csv"
    costs.write_text("campaign,cost\ngoogle,500\nads,300\n")
    cmd = ["--db", db, "stats"]
    data = json.loads(leadflow(*cmd, "--json", "--by", "source", "--costs", costs, check=True).stdout)
    assert {"stages", "conversion", "median_hours", "by"} <= set(data)
    google = next(g for g in data["by"] if g["value"] == "google")
    assert google["cost"] == {"total": 500.0, "per_mql": 250.0, "per_sql": 250.0, "per_customer": 500.0}
    assert data["cost"]["total"] == 800.0 and data["cost"]["per_mql"] == 160.0  # 800 / 5 MQLs
    assert data["cost"]["per_customer"] == 400.0  # 800 / 2 won
    labelled = json.loads(leadflow(*cmd, "--json", "--rules", tmp / "rules", check=True).stdout)
    assert labelled["reject_reasons"] == [{"reason": "no_budget", "label": "No budget", "count": 1}]  # from the rules
    rows = leadflow(*cmd, "--csv", "--by", "source", check=True).stdout.splitlines()
    assert rows[0].startswith("value,") and len(rows) == 4
    chart = tmp_path / "c.png"
    leadflow(*cmd, "--chart", chart, "--since", "2026-10-01", check=True)
    head = chart.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (1300, 1275)  # five panels (funnel, trend, won per owner, reps, reasons): three rows


def test_revenue_counts_each_deal_in_its_own_period(bundled_db):
    bundled_db.apply("a", "R", "lead_updated", T0, BUYER)
    bundled_db.apply("w1", "R", "deal_won", parse_time("2027-01-03T00:00:00Z"), {"amount": 1000})
    bundled_db.apply("w2", "R", "deal_won", parse_time("2027-03-02T00:00:00Z"), {"amount": 5000})
    store = bundled_db.service.store
    jan = compute(store, parse_time("2027-01-01T00:00:00Z"), parse_time("2027-03-01T00:00:00Z"))
    mar = compute(store, parse_time("2027-03-01T00:00:00Z"), parse_time("2027-04-01T00:00:00Z"))
    assert (jan["revenue"], mar["revenue"]) == (1000, 5000)
