"""`stats` and JSON output over what an old database may hold and what an operator may hand it: JSON
types SQLite would coerce (true as 1, ["x"] as text), sums past the float range, a costs CSV written
for people ("1,200", nan), attributes stored as Infinity. Real CLI, real SQLite file."""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from tests.leadflow_cli import AT, ev, ingest  # `cli`: the fixture in tests/conftest.py


def store_old(db, items: list) -> None:  # noqa: ANN001
    """Events as a release before the ingest checks stored them."""
    with closing(sqlite3.connect(db)) as conn:
        for eid, etype, data in items:
            conn.execute("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) VALUES"
                         " (?, 'L', ?, 1793610000, ?, ?, 'old', 0)", (eid, etype, AT, data))
        conn.commit()


def stats_json(cli, *args: str) -> dict:  # noqa: ANN001
    out = cli("stats", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout, parse_constant=refuse_constant)


def refuse_constant(name: str) -> None:
    raise AssertionError(f"{name} in JSON output")


def test_json_types_sqlite_would_coerce_are_not_money_or_campaign_names(cli):
    proc, _ = ingest(cli, [ev("a1", etype="lead_updated", campaign="fall"), ev("w1", etype="deal_won", amount=1000),
                           ev("c1", etype="campaign_cost", campaign="fall", amount=300)])
    assert proc.returncode == 0
    store_old(cli.db, [("w2", "deal_won", '{"amount":true}'), ("w3", "deal_won", '{"amount":[5]}'),
                       ("c2", "campaign_cost", '{"campaign":["fall"],"amount":50}'),
                       ("c3", "campaign_cost", '{"campaign":"fall","amount":true}')])
    for args in ((), ("--by", "campaign")):
        data = stats_json(cli, *args)
        assert data["revenue"] == 1000 and data["cost"]["total"] == 300
        assert data["ignored"] == {"deal_won_amounts": 2, "campaign_costs": 2}


def test_sums_past_the_float_range_are_null_not_infinity(cli):
    proc, _ = ingest(cli, [ev("a1", etype="lead_updated", campaign="fall"),
                           ev("w1", etype="deal_won", amount=1e308), ev("w2", etype="deal_won", amount=1e308),
                           ev("c1", etype="campaign_cost", campaign="fall", amount=1e308),
                           ev("c2", etype="campaign_cost", campaign="fall", amount=1e308)])
    assert proc.returncode == 0, proc.stderr
    data = stats_json(cli)
    assert data["revenue"] is None and data["cost"]["total"] is None
    assert stats_json(cli, "--by", "campaign")["by"][0]["cost"]["total"] is None
    table = cli("stats")
    assert table.returncode == 0 and "inf" not in table.stdout.lower()


def test_a_costs_csv_with_bad_numbers_is_an_error_naming_file_and_line(cli):
    proc, _ = ingest(cli, [ev("a1", etype="lead_updated", campaign="x")])
    assert proc.returncode == 0
    (cli.dir / "costs.csv").write_text('campaign,cost\nx,100\ny,"1,200"\nz,nan\nw,inf\nv,-5\n')
    out = cli("stats", "--costs", str(cli.dir / "costs.csv"), "--json")
    assert out.returncode == 1 and not out.stdout and "Traceback" not in out.stderr
    said = [line for line in out.stderr.splitlines() if "BAD_COSTS" in line]
    assert [line.split("costs.csv:", 1)[1].split(":", 1)[0] for line in said] == ["3", "4", "5", "6"]
    assert "'1,200'" in said[0]
    (cli.dir / "costs.csv").write_text("campaign,cost\nx,100\nx,20.5\n")
    assert stats_json(cli, "--costs", str(cli.dir / "costs.csv"))["cost"]["total"] == 120.5


def test_leads_show_json_is_valid_json_for_attributes_stored_as_infinity_or_nan(cli):
    proc, _ = ingest(cli, [ev("a1", etype="lead_updated", country="US")])
    assert proc.returncode == 0
    with closing(sqlite3.connect(cli.db)) as conn:
        conn.execute("""UPDATE leads SET state = replace(state, '"country":"US"',
                        '"country":"US","n":Infinity,"m":NaN,"k":-Infinity')""")
        assert conn.execute("SELECT changes()").fetchone() == (1,)
        conn.commit()
    out = cli("leads", "show", "L", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout, parse_constant=refuse_constant)
    text = json.dumps(shown)
    assert '"n": null' in text and '"m": null' in text and '"k": null' in text
