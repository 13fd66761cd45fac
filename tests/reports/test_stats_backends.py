"""One dataset, both backends, the same answers: the stats read JSON (attributes for --by, amounts for
revenue and costs) that an older release, a hand or a hostile sender left in every shape, and a
SQLite file and a PostgreSQL database holding the same rows must give the same figures, in the
store's reads and through the shipped `leadflow stats`. Figures are also checked against what the
rows say, so "the same" cannot mean "the same wrong answer"."""
from __future__ import annotations

import json

import pytest

from leadflow.store import Store
from tests.leadflow_cli import leadflow, tamper

DAY = 86400.0
T0 = 1793610000.0  # 2026-11-02T09:00:00Z
# (lead, owner, state as stored, stages entered): states a release before today's checks could hold
LEADS = [
    ("A", "ana", ('{"attrs":{"source":"google","flag":true,"campaign":"fall","title":"VP\\u0000Sales",'
                  '"nested":{"b":[1,2.50,"\\u00e9"]},"a.b":"dot","q\\"uote":"qq","big":12345678901234567890}}'),
     ("new", "mql", "sql", "won")),
    ("B", "bruno", '{"attrs":{"source":"ads","flag":false,"campaign":"fall","title":"VP","n":1E2,"empty":null}}',
     ("new", "mql", "sql")),
    ("C", None, '{"attrs":{"source":"web","n":Infinity}}', ("new", "mql")),  # not JSON: no attributes at all
    ("D", None, "not json", ("new",)),
    ("E", "ana", '{"attrs":["source"]}', ("new", "mql", "sql", "won")),  # attrs that are not an object
    ("F", None, '{"attrs":{"source":{"deep":"x"},"flag":"true","campaign":"spring"}}', ("new", "mql")),
    ("G", "bruno", '  {"attrs" : {"source" : "google", "n": ' + "9" * 400 + "} }  ", ("new", "mql", "sql", "won")),
    ("H", None, None, ("new",)),
]
AMOUNTS = {  # deal_won data as stored -> the amount the stats may count (None: absent; "bad": ignored)
    '{"amount":1000}': 1000, '{"amount":250.5}': 250.5, '{"amount":"1,200"}': "bad", '{"amount":true}': "bad",
    '{"amount":[5]}': "bad", '{"amount":null}': None, "{}": None, '{"amount":Infinity}': "bad",
    '{"amount":NaN}': "bad", "not json": "bad", '{"amount":{"x":1}}': "bad", "[1]": None,
    '{"amount":12345678901234567890}': 12345678901234567890.0,
}
COSTS = [('{"campaign":"fall","amount":300}', "fall", 300), ('{"campaign":["fall"],"amount":50}', None, 50),
         ('{"campaign":"fall","amount":true}', "fall", "bad"), ('{"campaign":7,"amount":10}', None, 10),
         ('{"campaign":"spring","amount":"1,200"}', "spring", "bad"), ('{"amount":20}', None, 20),
         ("nope", None, "bad"), ('{"campaign":"fall\\u0000","amount":2}', "fall\x00", 2)]
LEAD = ("INSERT INTO leads (id, stage, score, fit, engagement, owner, created_at, updated_at, state)"
        " VALUES (?, ?, 0, 0, 0, ?, ?, ?, ?)")
STAGE = ("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rules_version)"
         " VALUES (?, ?, ?, ?, 'old', 'v1')")
EVENT = ("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at)"
         " VALUES (?, ?, ?, ?, '', ?, 'old', 0)")


def apply(db: str) -> None:
    """The dataset, written past leadflow's checks into a database leadflow made."""
    Store(db).close()
    rows: list[tuple] = []
    for n, (lead, owner, state, stages) in enumerate(LEADS):
        rows.append((LEAD, lead, stages[-1], owner, T0, T0, state))
        for i, stage in enumerate(stages):
            rows.append((STAGE, lead, stages[i - 1] if i else None, stage, T0 + n * 3600 + i * DAY))
    for i, data in enumerate(AMOUNTS):
        rows.append((EVENT, f"w{i}", "A", "deal_won", T0 + 5 * DAY + i, data))
    for i, (data, _, _) in enumerate(COSTS):
        rows.append((EVENT, f"c{i}", "A", "campaign_cost", T0 + i, data))
    tamper(db, *rows)


@pytest.fixture(scope="module")
def both(tmp_path_factory, postgres):
    """The dataset in a SQLite file and in a PostgreSQL database, for the module (only read): their addresses."""
    sqlite, url = str(tmp_path_factory.mktemp("same") / "same.db"), postgres.new_database()
    for db in (sqlite, url):
        apply(db)
    yield sqlite, url
    postgres.drop(url)


def reads(db: str) -> dict:
    store = Store(db)
    try:
        fields = ["owner", "source", "flag", "title", "nested", "a.b", 'q"uote', "big", "n", "empty", "campaign",
                  "missing"]
        out = {("has", f): store.has_attribute(f) for f in fields}
        out |= {("fields", f): store.lead_fields(f) for f in fields}
        out |= {("funnel", f): list(store.funnel_rows(f)) for f in fields + [None]}
        out |= {"names": store.attribute_names(), "won": store.won_deals(), "costs": store.campaign_costs()}
        return out
    finally:
        store.close()


def test_the_stores_json_reads_answer_alike_on_both_backends(both):
    sqlite, postgresql = (reads(db) for db in both)
    assert sqlite == postgresql
    got = sqlite
    flag, title = got[("fields", "flag")], got[("fields", "title")]
    assert (flag["A"], flag["B"], flag["F"], flag["C"], flag["D"]) == (1, 0, "true", None, None)  # true is 1
    assert (title["A"], title["B"]) == ("VP\x00Sales", "VP")  # not cut at the NUL (SQLite 3.40's json_extract is)
    assert got[("fields", "nested")]["A"] == '{"b":[1,2.5,"\\u00e9"]}' and got[("fields", "a.b")]["A"] == "dot"
    assert got[("fields", 'q"uote')]["A"] == "qq" and got[("has", 'q"uote')]  # a key with a quote is found
    assert got[("fields", "big")]["A"] == 12345678901234567890.0 and got[("fields", "n")] == {
        "A": None, "B": 100.0, "C": None, "D": None, "E": None, "F": None, "G": float("inf"), "H": None}
    assert got[("has", "empty")] and not got[("has", "missing")]  # null is a value; absent is not
    assert got["names"] == sorted(["source", "flag", "campaign", "title", "nested", "a.b", 'q"uote', "big", "n",
                                   "empty"])
    assert [w.amount if w.amount != "<invalid JSON>" else "bad" for w in got["won"]] == list(AMOUNTS.values())
    assert [(c.campaign, c.amount if c.amount != "<invalid JSON>" else "bad") for c in got["costs"]] == \
        [(campaign, amount) for _, campaign, amount in COSTS]
    assert [row.key for row in got[("funnel", "source")] if row.lead == "A"] == ["google"] * 4


@pytest.mark.parametrize("args", [(), ("--by", "source"), ("--by", "flag"), ("--by", "title"), ("--by", "campaign"),
                                  ("--by", "owner"), ("--by", "rules_version"), ("--by", "n"),
                                  ("--by", "source", "--since", "2026-11-03")])
def test_leadflow_stats_answers_alike_on_both_backends(both, args):
    answers = []
    for db in both:
        out = leadflow("--db", db, "stats", "--json", *args, check=True)
        answers.append(json.loads(out.stdout))
    assert answers[0] == answers[1]
    got = answers[0]
    if "--since" not in args:
        assert got["revenue"] == pytest.approx(1250.5 + 12345678901234567890.0)  # numbers, not "1,200", true, [5]
        assert got["ignored"]["deal_won_amounts"] == sum(v == "bad" for v in AMOUNTS.values())
        assert got["cost"]["total"] == 300 + 2 and got["ignored"]["campaign_costs"] == 6  # named, usable ones only
        assert got["stages"] == {"new": 8, "mql": 6, "sql": 4, "won": 3}
    if args == ("--by", "flag"):
        assert {g["value"]: g["stages"]["new"] for g in got["by"]} == {"1": 1, "0": 1, "true": 1, "(none)": 5}
    if args == ("--by", "title"):
        assert sorted(g["value"] for g in got["by"]) == ["(none)", "VP", "VP\x00Sales"]
