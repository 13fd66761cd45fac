"""The figures managers ask for first, through the shipped `leadflow stats` on a real database of CRM
history (5,000 leads over 14 months, six SDRs), on each backend (a SQLite file, then PostgreSQL): every
expected figure is computed here, in plain Python, from the records the database was written from."""
from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from tests.leadflow_cli import leadflow
from tests.reports.funnel_history import DAY, Lead, database, realistic, write

NOW = time.time()
START = NOW - 425 * DAY


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def crm(request, tmp_path_factory):
    db = database(request, tmp_path_factory.mktemp("crm"))
    leads = realistic(START)
    write(db, leads)
    return db, leads


def stats(db, *args: object) -> dict:  # noqa: ANN001
    return json.loads(leadflow("--db", db, "stats", "--json", *args, check=True).stdout)


def q(values: list, p: float) -> float:
    """The p-quantile, linear between closest ranks (statistics' inclusive method)."""
    if len(values) == 1:
        return values[0]
    return statistics.median(values) if p == 0.5 else statistics.quantiles(values, n=10, method="inclusive")[8]


def expected(leads: list[Lead], a: str, b: str, since: float | None = None, until: float | None = None) -> dict:
    def inside(t: float | None) -> bool:
        return t is not None and (since is None or t >= since) and (until is None or t < until)

    cohort = [x for x in leads if inside(x.stages.get(a))]
    made = [(x.stages[b] - x.stages[a]) / DAY for x in cohort if x.stages.get(b, -1) >= x.stages[a]]
    return {"cohort": len(cohort), "rate": round(len(made) / len(cohort), 4) if cohort else None,
            "median": q(made, 0.5) if made else None, "p90": q(made, 0.9) if made else None,
            "won": sum(inside(x.stages.get("won")) for x in leads)}


def check(got: dict, want: dict, name: str) -> None:
    assert got["conversion"][name] == want["rate"]
    for key, value in (("median_days", want["median"]), ("p90_days", want["p90"])):
        assert got[key][name] == (None if value is None else pytest.approx(value, abs=0.006))
        if value is not None:  # the same time in hours
            hours = got[key.replace("days", "hours")][name]
            assert hours == pytest.approx(value * 24, abs=0.006)


def test_headline_figures_overall_by_source_and_per_owner(crm):
    db, leads = crm
    got = stats(db, "--by", "source", "--from", "new", "--to", "won")
    for a, b in (("mql", "won"), ("sql", "won"), ("mql", "sql"), ("new", "won")):
        want = expected(leads, a, b)
        check(got, want, f"{a}_to_{b}")
        assert got["cohorts"][a] == want["cohort"]
    assert got["won"] == sum("won" in x.stages for x in leads) > 100
    assert got["stages"]["mql"] == sum("mql" in x.stages for x in leads) > 1000
    assert got["revenue"] == pytest.approx(sum(x.amount for x in leads if x.amount), abs=0.01)
    # --by applies to conversion and times, not only counts
    by = {g["value"]: g for g in got["by"]}
    assert set(by) == {x.attrs["source"] for x in leads}
    for source, group in by.items():
        mine = [x for x in leads if x.attrs["source"] == source]
        for a, b in (("mql", "won"), ("new", "won")):
            check(group, expected(mine, a, b), f"{a}_to_{b}")
        assert group["won"] == sum("won" in x.stages for x in mine)
        assert group["revenue"] == pytest.approx(sum(x.amount for x in mine if x.amount), abs=0.01)
    # won deals and revenue per owner
    per: dict = defaultdict(lambda: [0, 0.0])
    for x in leads:
        if "won" in x.stages:
            per[x.owner][0] += 1
            per[x.owner][1] += x.amount
    owners = {o["owner"]: o for o in got["owners"] if o["won"]}
    assert {k: v["won"] for k, v in owners.items()} == {k: v[0] for k, v in per.items()}
    assert all(owners[k]["revenue"] == pytest.approx(v[1], abs=0.01) for k, v in per.items())
    # the funnel's step conversions are the cohort conversions between the steps shown
    assert [s["stage"] for s in got["funnel"]] == ["new", "mql", "sql", "won"]
    assert [s["to_next"] for s in got["funnel"]] == [expected(leads, "new", "mql")["rate"], got["conversion"]["mql_to_sql"],
                                                     got["conversion"]["sql_to_won"], None]


def test_a_period_cohort_follows_its_leads_past_the_window(crm):
    db, leads = crm
    since, until = START + 100 * DAY, START + 190 * DAY
    got = stats(db, "--since", iso(since), "--until", iso(until))
    want = expected(leads, "mql", "won", since, until)
    assert got["cohorts"]["mql"] == want["cohort"]
    check(got, want, "mql_to_won")  # wins after `until` count for the cohort
    assert got["won"] == want["won"]  # the period figure: wins dated in the window


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def month_bounds() -> tuple[datetime, datetime]:
    first = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=1), first


def test_period_phrases_mean_their_calendar_window(crm):
    db, _ = crm
    for _ in range(2):  # a run that crosses midnight (UTC) is repeated once
        before = (month_bounds(), datetime.now(timezone.utc).date())
        phrase = stats(db, "--period", "last month")
        days = stats(db, "--since", "last 30 days")
        quarter = stats(db, "--since", "This  Quarter")
        if (month_bounds(), datetime.now(timezone.utc).date()) == before:
            break
    (lo, hi), today = before
    assert phrase["period"] == {"since": lo.timestamp(), "until": hi.timestamp()}
    assert phrase == stats(db, "--since", lo.strftime("%Y-%m-%d"), "--until", hi.strftime("%Y-%m-%d"))
    midnight = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    assert days["period"] == {"since": (midnight - timedelta(days=30)).timestamp(), "until": None}
    q_start = midnight.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
    assert quarter["period"]["since"] == q_start.timestamp()
    assert stats(db, "--period", "2026-Q1")["period"] == {"since": datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp(),
                                                          "until": datetime(2026, 4, 1, tzinfo=timezone.utc).timestamp()}


@pytest.mark.parametrize("option,value", [("--since", "lastt month"), ("--until", "2026-13-45"),
                                          ("--period", "last 0 days"), ("--since", "May\x1b[31m")])
def test_a_period_nobody_can_read_is_a_usage_error_quoting_the_value_as_typed(crm, option, value):
    db, _ = crm
    out = leadflow("--db", db, "stats", option, value)
    assert out.returncode == 2 and out.stdout == ""
    assert repr(value) in out.stderr and option in out.stderr
    assert "T00:00:00Z" not in out.stderr and "\x1b" not in out.stderr  # nothing added, nothing raw


def test_a_slice_nobody_has_or_a_rep_nobody_is_is_a_problem_not_an_empty_table(crm):
    db, _ = crm
    out = leadflow("--db", db, "stats", "--by", "sourse")
    assert (out.returncode, out.stdout) == (1, "")
    assert "UNKNOWN_FIELD" in out.stderr and "did you mean 'source'" in out.stderr
    out = leadflow("--db", db, "stats", "--json", "--rep", "ana.silv")
    assert (out.returncode, out.stdout) == (1, "")
    assert "UNKNOWN_REP" in out.stderr and "did you mean 'ana.silva'" in out.stderr
    assert leadflow("--db", db, "stats", "--rep", "ana.silva", "--by", "owner").returncode == 0


def test_from_and_to_go_together(crm):
    db, _ = crm
    assert leadflow("--db", db, "stats", "--from", "mql").returncode == 2
    assert leadflow("--db", db, "stats", "--from", "won", "--to", "won").returncode == 2
    assert leadflow("--db", db, "stats", "--period", "2026", "--since", "2026-01-01").returncode == 2
