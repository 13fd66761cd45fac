"""`stats` and JSON output over what an old database may hold and what an operator may hand it: JSON
types SQLite would coerce (true as 1, ["x"] as text), sums past the float range, a costs CSV written
for people ("1,200", nan), attributes stored as Infinity. Real CLI, on each backend (`cli_db`: a
SQLite file, then PostgreSQL, whose JSON reads are leadflow's own and must answer alike)."""
from __future__ import annotations

import json

from tests.leadflow_cli import AT, ev, ingest, rows, tamper  # `cli_db`: the fixture in tests/conftest.py


def store_old(db, items: list) -> None:  # noqa: ANN001
    """Events as a release before the ingest checks stored them."""
    insert = ("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) VALUES"
              " (?, 'L', ?, 1793610000, ?, ?, 'old', 0)")
    tamper(db, *[(insert, eid, etype, AT, data) for eid, etype, data in items])


def stats_json(cli, *args: str) -> dict:  # noqa: ANN001
    out = cli("stats", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout, parse_constant=refuse_constant)


def refuse_constant(name: str) -> None:
    raise AssertionError(f"{name} in JSON output")


def test_json_types_sqlite_would_coerce_are_not_money_or_campaign_names(cli_db):
    proc, _ = ingest(cli_db, [ev("a1", etype="lead_updated", campaign="fall"), ev("w1", etype="deal_won", amount=1000),
                           ev("c1", etype="campaign_cost", campaign="fall", amount=300)])
    assert proc.returncode == 0
    store_old(cli_db.db, [("w2", "deal_won", '{"amount":true}'), ("w3", "deal_won", '{"amount":[5]}'),
                       ("c2", "campaign_cost", '{"campaign":["fall"],"amount":50}'),
                       ("c3", "campaign_cost", '{"campaign":"fall","amount":true}')])
    for args in ((), ("--by", "campaign")):
        data = stats_json(cli_db, *args)
        assert data["revenue"] == 1000 and data["cost"]["total"] == 300
        assert data["ignored"] == {"deal_won_amounts": 2, "campaign_costs": 2}


def test_sums_past_the_float_range_are_null_not_infinity(cli_db):
    proc, _ = ingest(cli_db, [ev("a1", etype="lead_updated", campaign="fall"),
                           ev("w1", etype="deal_won", amount=1e308), ev("w2", etype="deal_won", amount=1e308),
                           ev("c1", etype="campaign_cost", campaign="fall", amount=1e308),
                           ev("c2", etype="campaign_cost", campaign="fall", amount=1e308)])
    assert proc.returncode == 0, proc.stderr
    data = stats_json(cli_db)
    assert data["revenue"] is None and data["cost"]["total"] is None
    assert stats_json(cli_db, "--by", "campaign")["by"][0]["cost"]["total"] is None
    table = cli_db("stats")
    assert table.returncode == 0 and "inf" not in table.stdout.lower()


def test_a_costs_csv_with_bad_numbers_is_an_error_naming_file_and_line(cli_db):
    proc, _ = ingest(cli_db, [ev("a1", etype="lead_updated", campaign="x")])
    assert proc.returncode == 0
    (cli_db.dir / "costs.csv").write_text('campaign,cost\nx,100\ny,"1,200"\nz,nan\nw,inf\nv,-5\n')
    out = cli_db("stats", "--costs", str(cli_db.dir / "costs.csv"), "--json")
    assert out.returncode == 1 and not out.stdout and "Traceback" not in out.stderr
    said = [line for line in out.stderr.splitlines() if "BAD_COSTS" in line]
    assert [line.split("costs.csv:", 1)[1].split(":", 1)[0] for line in said] == ["3", "4", "5", "6"]
    assert "'1,200'" in said[0]
    (cli_db.dir / "costs.csv").write_text("campaign,cost\nx,100\nx,20.5\n")
    assert stats_json(cli_db, "--costs", str(cli_db.dir / "costs.csv"))["cost"]["total"] == 120.5


def test_leads_show_json_is_valid_json_for_attributes_stored_as_infinity_or_nan(cli_db):
    proc, _ = ingest(cli_db, [ev("a1", etype="lead_updated", country="US")])
    assert proc.returncode == 0
    tamper(cli_db.db, ("""UPDATE leads SET state = replace(state, '"country":"US"',
                    '"country":"US","n":Infinity,"m":NaN,"k":-Infinity')""",))
    assert rows(cli_db.db, "SELECT count(*) FROM leads WHERE state LIKE '%NaN%'") == [(1,)]
    out = cli_db("leads", "show", "L", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout, parse_constant=refuse_constant)
    text = json.dumps(shown)
    assert '"n": null' in text and '"m": null' in text and '"k": null' in text
