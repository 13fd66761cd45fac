"""Real CRM exports through the shipped `leadflow ingest --mapping`, with mappings only: the HubSpot
contacts + deals exports and the Salesforce leads report shipped in rules/examples. Every expected
figure is computed here from the CSV files with the stdlib (csv, datetime, zoneinfo, statistics),
never by leadflow's code."""
from __future__ import annotations

import csv
import json
import sqlite3
import statistics
from contextlib import closing
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.leadflow_cli import ROOT, Leadflow

HUBSPOT = ROOT / "rules" / "examples" / "hubspot"
SALESFORCE = ROOT / "rules" / "examples" / "salesforce"
RULES = ROOT / "rules"
NEW_YORK, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
REPS = {"Alice Moreau": "alice", "Bob Okafor": "bob", "Chen Wei": "chen"}  # rules/routing.yaml reps:


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _us(text: str) -> float:
    fmt = "%m/%d/%Y %H:%M" if " " in text else "%m/%d/%Y"
    return datetime.strptime(text, fmt).replace(tzinfo=NEW_YORK).timestamp()


def _expected_hubspot() -> dict:
    """lead -> {stage: [times]} of the stage entries the two exports state, and owners, amounts, sources."""
    stages: dict = {}
    owners, sources, amounts = {}, {}, {}
    columns = {"Became a Marketing Qualified Lead Date": "mql", "Became a Sales Qualified Lead Date": "sql",
               "Became a Customer Date": "won"}
    for row in _csv(HUBSPOT / "contacts.csv"):
        lead = row["Record ID"]
        owners[lead], sources[lead] = REPS[row["Contact owner"]], row["Original Source"]
        for column, stage in columns.items():
            if row[column]:
                stages.setdefault(lead, {}).setdefault(stage, set()).add(_us(row[column]))
    for row in _csv(HUBSPOT / "deals.csv"):
        lead = row["Associated Contact IDs"]
        outcome = {"Closed Won": "won", "Closed Lost": "lost"}.get(row["Deal Stage"])
        if outcome:
            stages.setdefault(lead, {}).setdefault(outcome, set()).add(_us(row["Close Date"]))
        if outcome == "won":
            amounts[lead] = amounts.get(lead, 0) + float(row["Amount"])
    return {"stages": stages, "owners": owners, "sources": sources, "amounts": amounts}


def _ingest(cli: Leadflow, name: str, *extra: str) -> dict:
    proc = cli("ingest", "--mapping", HUBSPOT / f"{name}.mapping.yaml", HUBSPOT / f"{name}.csv", "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _history(db: Path) -> list[tuple]:
    with closing(sqlite3.connect(db)) as c:
        return sorted(c.execute("SELECT lead, coalesce(from_stage, ''), to_stage, at, coalesce(rule, '')"
                                " FROM stage_history"))


def test_contacts_and_deals_import_in_either_order_with_the_same_stage_history(tmp_path):
    first = Leadflow(tmp_path / "a.db", RULES)
    second = Leadflow(tmp_path / "b.db", RULES)
    contacts = _ingest(first, "contacts")
    deals = _ingest(first, "deals")
    deals_first = _ingest(second, "deals")
    contacts_after = _ingest(second, "contacts")
    assert _history(tmp_path / "a.db") == _history(tmp_path / "b.db")
    assert contacts["rejected"] == deals["rejected"] == 0 and contacts["files"][0]["applied"] == contacts["applied"]
    # the contacts came after the deals had dated these leads later: each older event is counted as late
    assert contacts_after["late"] > 0 and contacts_after["files"][0]["late"] == contacts_after["late"]
    assert deals_first["late"] == 0
    # importing a file again changes nothing
    again = _ingest(first, "deals")
    assert again["applied"] == 0 and again["files"][0]["unchanged"] == deals["applied"]
    assert _history(tmp_path / "a.db") == _history(tmp_path / "b.db")

    expected = _expected_hubspot()
    imported = {}
    for lead, _, stage, at, rule in _history(tmp_path / "a.db"):
        if stage != "new":
            assert rule == "imported"  # the rules decided none of it
            imported.setdefault(lead, {}).setdefault(stage, set()).add(at)
    assert imported == expected["stages"]
    with closing(sqlite3.connect(tmp_path / "a.db")) as c:
        owners = dict(c.execute("SELECT id, owner FROM leads"))
        routed = c.execute("SELECT count(*) FROM outbox WHERE kind = 'route_sql'").fetchone()[0]
    assert owners == expected["owners"]
    assert routed == 0  # imported SQLs are history: nobody is paged for them


def _quantile(values: list, q: float) -> float:
    """Linear interpolation between closest ranks (the 'inclusive' method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _figures(leads: set, stages: dict, owners: dict, amounts: dict) -> dict:
    mql = [lead for lead in leads if "mql" in stages.get(lead, {})]
    won = [lead for lead in leads if "won" in stages.get(lead, {})]
    days = [(min(stages[lead]["won"]) - min(stages[lead]["mql"])) / 86400 for lead in mql
            if "won" in stages[lead] and min(stages[lead]["won"]) >= min(stages[lead]["mql"])]
    per_owner: dict = {}
    for lead in won:
        entry = per_owner.setdefault(owners[lead], [0, 0.0])
        entry[0] += 1
        entry[1] += amounts.get(lead, 0.0)
    return {"mql": len(mql), "won": len(won), "mql_to_won": len(days) / len(mql) if mql else None,
            "median": statistics.median(days) if days else None, "p90": _quantile(days, 0.9) if len(days) > 1 else None,
            "owners": {o: tuple(v) for o, v in per_owner.items()}}


def _check(reported: dict, expected: dict) -> None:
    assert reported["cohorts"]["mql"] == expected["mql"]
    assert reported["won"] == expected["won"]
    if expected["mql_to_won"] is None:
        assert reported["conversion"]["mql_to_won"] is None
    else:
        assert abs(reported["conversion"]["mql_to_won"] - expected["mql_to_won"]) < 1e-4
    for key, name in (("median", "median_days"), ("p90", "p90_days")):
        if expected[key] is None:
            continue
        assert abs(reported[name]["mql_to_won"] - expected[key]) <= 0.01, (name, reported[name], expected[key])
    owners = {o["owner"]: (o["won"], o["revenue"]) for o in reported["owners"]}
    assert {o: (n, round(r, 2)) for o, (n, r) in owners.items() if n} == \
        {o: (n, round(r, 2)) for o, (n, r) in expected["owners"].items()}


def test_stats_on_the_imported_history_match_figures_computed_from_the_csv(tmp_path):
    cli = Leadflow(tmp_path / "t.db", RULES)
    _ingest(cli, "deals")
    _ingest(cli, "contacts")
    e = _expected_hubspot()
    leads = set(e["owners"])
    overall = _figures(leads, e["stages"], e["owners"], e["amounts"])
    assert overall["mql"] == 32 and overall["won"] == 10  # the sample is what its README says
    _check(json.loads(cli("stats", "--json", check=True).stdout), overall)
    by = json.loads(cli("stats", "--json", "--by", "source", check=True).stdout)["by"]
    assert sorted(g["value"] for g in by) == sorted(set(e["sources"].values()))
    for group in by:
        members = {lead for lead in leads if e["sources"][lead] == group["value"]}
        _check(group, _figures(members, e["stages"], e["owners"], e["amounts"]))


def test_leads_explain_names_the_file_and_column_of_an_imported_stage(tmp_path):
    cli = Leadflow(tmp_path / "t.db", RULES)
    _ingest(cli, "contacts")
    lead = next(r["Record ID"] for r in _csv(HUBSPOT / "contacts.csv") if r["Became a Marketing Qualified Lead Date"])
    story = cli("leads", "explain", lead, check=True).stdout
    assert "imported from contacts.csv, column 'Became a Marketing Qualified Lead Date'" in story
    shown = json.loads(cli("leads", "show", lead, "--json", check=True).stdout)
    assert [h["stage"] for h in shown["history"]][:2] == ["new", "mql"]


def _report_rows(path: Path) -> list[dict]:
    """A Salesforce report's rows: those before the blank line that starts its footer."""
    text = path.read_text(encoding="utf-8")
    return list(csv.DictReader(text.split("\n\n", 1)[0].splitlines()))


def test_salesforce_leads_report_with_day_first_dates_in_london(tmp_path):
    cli = Leadflow(tmp_path / "t.db", RULES)
    proc = cli("ingest", "--mapping", SALESFORCE / "leads.mapping.yaml", SALESFORCE / "leads.csv", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rejected"] == 0  # the footer (report name, copyright, ...) is not read
    rows = _report_rows(SALESFORCE / "leads.csv")
    assert len(rows) == 30
    converted = {r["Lead ID"]: datetime.strptime(r["Converted Date"], "%d/%m/%Y").replace(tzinfo=LONDON).timestamp()
                 for r in rows if r["Converted Date"]}
    created = {r["Lead ID"]: datetime.strptime(r["Created Date"], "%d/%m/%Y %H:%M").replace(tzinfo=LONDON).timestamp()
               for r in rows}
    with closing(sqlite3.connect(tmp_path / "t.db")) as c:
        sql = dict(c.execute("SELECT lead, at FROM stage_history WHERE to_stage = 'sql'"))
        new = dict(c.execute("SELECT lead, at FROM stage_history WHERE to_stage = 'new'"))
        owners = dict(c.execute("SELECT id, owner FROM leads"))
    assert sql == converted and new == created
    assert owners == {r["Lead ID"]: REPS[r["Lead Owner"]] for r in rows}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_time_that_does_not_parse_rejects_its_row_naming_the_column_and_the_format(tmp_path):
    cli = Leadflow(tmp_path / "t.db", RULES)
    mapping = _write(tmp_path / "m.yaml", "leadflow_mapping: 1\nlead: id\ntimes: { format: us }\n"
                                          "at: { column: created }\nstages: [{ column: mql date, stage: mql }]\n")
    data = _write(tmp_path / "c.csv", "id,created,mql date\na,01/05/2024 09:00,01/07/2024\n"
                                      "b,01/05/2024 09:00,2024-01-31\nc,01/06/2024,\n")
    proc = cli("ingest", "--mapping", mapping, data, "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["rejected"] == 1
    line = next(li for li in proc.stderr.splitlines() if "rejected" in li)
    assert ":3: rejected: mql date:" in line and "MM/DD/YYYY" in line and "'2024-01-31'" in line
    with closing(sqlite3.connect(tmp_path / "t.db")) as c:
        assert sorted(r[0] for r in c.execute("SELECT id FROM leads")) == ["a", "c"]
        # a date alone is midnight in the zone (UTC here)
        assert c.execute("SELECT at FROM stage_history WHERE lead = 'a' AND to_stage = 'mql'").fetchone()[0] == \
            datetime(2024, 1, 7, tzinfo=ZoneInfo("UTC")).timestamp()


def test_unknown_keys_anywhere_in_a_mapping_are_errors_with_their_position_and_a_hint(tmp_path):
    cli = Leadflow(tmp_path / "t.db", RULES)
    mapping = _write(tmp_path / "m.yaml", "leadflow_mapping: 1\nlead: id\ntimes: { format: us, timezon: UTC }\n"
                                          "stages:\n  - { colum: mql date, stage: mql }\n"
                                          "outcome: { column: won, at: { column: closed, format: usa } }\n")
    data = _write(tmp_path / "c.csv", "id,mql date,won,closed\na,01/07/2024,1,01/09/2024\n")
    proc = cli("ingest", "--mapping", mapping, data)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr
    err = proc.stderr
    assert "m.yaml:3:22: UNKNOWN_KEY: unknown key 'timezon'" in err and "did you mean 'timezone'?" in err
    assert err.count("m.yaml:5:7: UNKNOWN_KEY: unknown key 'colum'") == 1 and "did you mean 'column'?" in err
    assert "m.yaml:6:55: BAD_VALUE: unknown time format 'usa'" in err and "did you mean 'us'?" in err
    with closing(sqlite3.connect(tmp_path / "t.db")) as c:  # nothing was applied from a bad mapping
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_owner_by_email_or_name_and_an_unknown_owner_is_rejected_alone(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    for f in ("scoring.yaml", "qualification.yaml"):
        (rules / f).write_text((RULES / f).read_text())
    (rules / "routing.yaml").write_text(
        "leadflow: 1\nreps:\n  - { id: ana, name: Ana Ruiz, email: ana@example.com }\n"
        "  - { id: tom, name: Tom Berg, email: tom@example.com }\nrouting:\n  - { pool: [ana, tom] }\n")
    cli = Leadflow(tmp_path / "t.db", rules)
    mapping = _write(tmp_path / "m.yaml", "leadflow_mapping: 1\nlead: id\nat: { column: created }\n"
                                          "owner: { column: Owner }\nstage: { column: Stage, at: { column: Since },"
                                          " values: { MQL: mql, Customer: won } }\n")
    data = _write(tmp_path / "c.csv", "id,created,Owner,Stage,Since\n"
                                      "a,2024-01-05,ANA@example.com,MQL,2024-01-06T10:00:00Z\n"
                                      "b,2024-01-05,Tom Berg,Customer,2024-02-01\n"
                                      "c,2024-01-05,Nobody Here,MQL,2024-01-08\n")
    proc = cli("ingest", "--mapping", mapping, data, "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["rejected"] == 1
    assert "c.csv:4: rejected: UNKNOWN_OWNER: column 'Owner': owner 'Nobody Here'" in proc.stderr
    with closing(sqlite3.connect(tmp_path / "t.db")) as c:
        assert dict(c.execute("SELECT id, owner FROM leads")) == {"a": "ana", "b": "tom", "c": None}
        assert dict(c.execute("SELECT id, stage FROM leads")) == {"a": "mql", "b": "won", "c": "mql"}


def test_imported_history_enrols_nobody_in_nurture_until_a_live_event_arrives(tmp_path):
    """The bundled rules enrol MQLs in mql_education; 32 imported MQLs from last year must not be
    mailed by the next worker run. A live event afterwards is decided by the rules as usual."""
    cli = Leadflow(tmp_path / "n.db", RULES)
    _ingest(cli, "contacts")
    _ingest(cli, "deals")
    with closing(sqlite3.connect(tmp_path / "n.db")) as c:
        assert c.execute("SELECT count(*) FROM nurture").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM timers").fetchone()[0] == 0
        mql = c.execute("SELECT id FROM leads WHERE stage = 'mql' ORDER BY id").fetchone()[0]
    assert cli("worker", "--once").returncode == 0
    with closing(sqlite3.connect(tmp_path / "n.db")) as c:
        assert c.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    live = tmp_path / "live.jsonl"
    live.write_text(json.dumps({"id": "live-1", "lead": mql, "type": "page_view", "at": "2026-11-30T10:00:00Z",
                                "data": {"url": "/pricing"}}) + "\n")
    assert cli("ingest", live).returncode == 0
    with closing(sqlite3.connect(tmp_path / "n.db")) as c:
        assert c.execute("SELECT track FROM nurture WHERE lead = ?", (mql,)).fetchall() == [("mql_education",)]


def test_decay_never_demotes_a_stage_that_was_imported(tmp_path):
    """An imported MQL's score is what the rules make of its few attributes, below the bundled
    demote_below; once a live event arrives, decay must leave the CRM's stage alone, and the worker
    must not spin on ticks it can only undo."""
    cli = Leadflow(tmp_path / "d.db", RULES)
    _ingest(cli, "contacts")
    with closing(sqlite3.connect(tmp_path / "d.db")) as c:
        mql = c.execute("SELECT id FROM leads WHERE stage = 'mql' ORDER BY id").fetchone()[0]
    live = tmp_path / "live.jsonl"
    live.write_text(json.dumps({"id": "live-1", "lead": mql, "type": "page_view", "at": "2026-11-30T10:00:00Z",
                                "data": {"url": "/pricing"}}) + "\n")
    assert cli("ingest", live).returncode == 0
    # no decay timer for it: a tick could only be undone, and was re-armed at once (the worker spun)
    assert cli("worker", "--until", "2027-12-31T00:00:00Z", timeout=60).returncode == 0
    with closing(sqlite3.connect(tmp_path / "d.db")) as c:
        assert c.execute("SELECT count(*) FROM timers WHERE lead = ?", (mql,)).fetchone()[0] == 0
        stage, score = c.execute("SELECT stage, json_extract(state, '$.score') FROM leads WHERE id = ?",
                                 (mql,)).fetchone()
        demoted = c.execute("SELECT count(*) FROM stage_history WHERE lead = ? AND rule = 'demote'", (mql,)).fetchone()
    assert stage == "mql" and demoted[0] == 0 and score < 40  # below the bundled demote_below, kept by the CRM


def test_without_ends_at_blank_line_a_report_footer_is_rejected_row_by_row_and_the_leads_still_import(tmp_path):
    mapping = (SALESFORCE / "leads.mapping.yaml").read_text(encoding="utf-8").replace("ends_at_blank_line: true\n", "")
    cli = Leadflow(tmp_path / "t.db", RULES)
    proc = cli("ingest", "--mapping", _write(tmp_path / "m.yaml", mapping), SALESFORCE / "leads.csv", "--json")
    footer = (SALESFORCE / "leads.csv").read_text(encoding="utf-8").split("\n\n", 1)[1].strip().splitlines()
    assert proc.returncode == 1 and json.loads(proc.stdout)["rejected"] == len(footer) == 5
    with closing(sqlite3.connect(tmp_path / "t.db")) as c:
        assert c.execute("SELECT count(*) FROM leads").fetchone()[0] == 30
    bad = tmp_path / "bad.yaml"
    _write(bad, mapping.replace("name: salesforce-leads\n", "name: salesforce-leads\nends_at_blank_line: sometimes\n"))
    refused = cli("ingest", "--mapping", bad, SALESFORCE / "leads.csv")
    assert refused.returncode == 1 and "BAD_MAPPING" in refused.stderr and "ends_at_blank_line" in refused.stderr
