"""End to end through the real `leadflow` CLI: rule files and SQLite databases in tmp_path.

Every case writes a small rule directory, ingests a JSONL file with `leadflow ingest` in a subprocess and
reads the result back with `leadflow leads show LEAD --json` (the lead's JSON contract). The expected numbers
are computed by hand from the README section "How a lead is evaluated"; the arithmetic is written next
to each expectation. Nothing here calls the engine's code to compute an expectation.

T0 is 2026-11-02T09:00:00Z; `ts(days, hours, minutes)` is a time relative to it.
"""
from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import textwrap
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.leadflow_cli import ROOT, Leadflow, clean_env, leadflow, leadflow_command

T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=timezone.utc)
SHOW_KEYS = {"id", "stage", "score", "fit", "engagement", "bant", "disqualified", "owner", "attributes",
             "contributions", "history", "rules_version"}


def ts(days: float = 0, hours: float = 0, minutes: float = 0) -> str:
    return (T0 + timedelta(days=days, hours=hours, minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lead:
    """Events for one lead, with ids `<lead>/<n>` in the order they are added."""

    def __init__(self, lead_id: str):
        self.id = lead_id
        self.events: list[dict] = []

    def add(self, etype: str, at: str, data: dict | None = None) -> "Lead":
        event = {"id": f"{self.id}/{len(self.events) + 1}", "lead": self.id, "type": etype, "at": at}
        if data is not None:
            event["data"] = data
        self.events.append(event)
        return self

    def update(self, at: str, **attrs) -> "Lead":
        return self.add("lead_updated", at, attrs)


class Scenario:
    """A rule directory, a database and the CLI around them."""

    def __init__(self, root: Path, rules_yaml: str, name: str = "scenario"):
        self.root = root
        self.rules = root / f"{name}-rules"
        self.rules.mkdir(parents=True, exist_ok=True)
        (self.rules / "rules.yaml").write_text(textwrap.dedent(rules_yaml))
        self.db = root / f"{name}.db"
        self.events_file = root / f"{name}.jsonl"

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = Leadflow(self.db, self.rules)(*args)
        assert proc.returncode == expect, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def write(self, leads: list[Lead]) -> Path:
        lines = [json.dumps(e) for lead in leads for e in lead.events]
        self.events_file.write_text("\n".join(lines) + "\n")
        return self.events_file

    def ingest(self, path: Path | None = None, *flags: str) -> dict:
        return json.loads(self.run("ingest", str(path or self.events_file), "--json", *flags).stdout)

    def show(self, lead: str) -> dict:
        data = json.loads(self.run("leads", "show", lead, "--json").stdout)
        assert SHOW_KEYS <= set(data), f"missing keys: {SHOW_KEYS - set(data)}"
        assert set(data["bant"]) == {"budget", "authority", "need", "timeline"}
        assert all({"stage", "at", "reason"} <= set(h) for h in data["history"])
        assert all(set(c) == {"rule", "points", "description"} for c in data["contributions"])
        return data


def points(shown: dict) -> dict:
    """contributions as {rule: points} (their order is presentation)."""
    out = {c["rule"]: c["points"] for c in shown["contributions"]}
    assert len(out) == len(shown["contributions"]), "a rule appears twice in contributions"
    return out


def nonzero(counts: dict) -> dict:
    """`ingest --json` output with stages that have no leads left out (listing them as 0 is fine too)."""
    return {**counts, "stages": {k: v for k, v in counts["stages"].items() if v}}


def stages(shown: dict) -> list[tuple[str, str]]:
    return [(h["stage"], h["at"]) for h in shown["history"]]


# =====================================================================================================
# Scoring: fit, engagement, repeat, max_points, negatives, disqualify, YAML 1.2, dotted paths
# =====================================================================================================

SCORING = r"""
    leadflow: 1
    scoring:
      fit:
        - id: senior_title
          when: { title: { matches: "(?i)\\b(vp|director)\\b" } }
          points: 20
        - id: big_company
          when: { company.size: { at_least: 100 } }
          points: 15
        - id: home_market
          when: { country: US }
          points: 10
        - id: emailable
          when: { do_not_email: No }
          points: 5
        - id: newsletter
          when: { newsletter: yes }
          points: 2
      engagement:
        - id: page
          on: page_view
          points: 3
        - id: demo
          on: demo_requested
          points: 40
          repeat: once
        - id: pricing
          on: page_view
          where: { url: { contains: "/pricing" } }
          points: 10
          repeat: { once_every: 1d }
        - id: download
          on: content_download
          points: 8
          max_points: 20
      negative:
        - id: student
          when: { title: { matches: "(?i)student" } }
          points: -25
        - id: unsubscribed
          on: email_unsubscribed
          points: -30
          repeat: once
        - id: bounced
          on: email_bounced
          points: -4
          max_points: 10
        - id: competitor
          when: { email: { contains: "@rival.example" } }
          disqualify: competitor
        - id: spam
          on: spam_reported
          disqualify: spam_complaint
    """


def scoring_leads() -> list[Lead]:
    leads = []
    # fit-change: 20 + 15 + 10 + 5 = 50; then title Student: senior off, student on: 15 + 10 + 5 - 25 = 5;
    # then country removed (null) and company.size 50: only student and emailable hold: -25 + 5 = -20.
    leads.append(Lead("fit-change")
                 .update(ts(), title="VP Sales", company={"size": 300}, country="US", do_not_email="No")
                 .update(ts(hours=1), title="Student")
                 .update(ts(hours=2), country=None, company={"size": 50}))
    # fit-title: VP (20) + US (10) = 30; a title without vp/director removes the 20: 10.
    leads.append(Lead("fit-title").update(ts(), title="VP Sales", country="US").update(ts(hours=1), title="Sales Rep"))
    # fit-null: 20 + 10 = 30; country: null removes the attribute and its 10: 20.
    leads.append(Lead("fit-null").update(ts(), title="VP Sales", country="US").update(ts(hours=1), country=None))
    # YAML 1.2: `No` and `yes` in the rule are text; "No" + "yes" hold: 5 + 2 = 7.
    leads.append(Lead("yaml-no").update(ts(), do_not_email="No", newsletter="yes"))
    # ... and JSON booleans are not the texts "No"/"yes": 0.
    leads.append(Lead("yaml-bool").update(ts(), do_not_email=False, newsletter=True))
    # dotted paths: company.size 100 is inside at_least 100 (15); the text "300" is not a number (0).
    leads.append(Lead("dotted-num").update(ts(), company={"size": 100}))
    leads.append(Lead("dotted-text").update(ts(), company={"size": "300"}))
    # engagement, event by event:
    eng = Lead("eng")
    eng.add("page_view", ts(), {"url": "/blog"})                         # page +3
    eng.add("page_view", ts(minutes=1), {"url": "/pricing"})             # page +3, pricing +10 (counted T0+1m)
    eng.add("page_view", ts(hours=2), {"url": "/pricing"})               # page +3, pricing: 1h59m < 1d, no
    eng.add("page_view", ts(days=1, hours=1), {"url": "https://x.example/PRICING?plan=pro"})
    #   page +3; pricing ("contains" ignores case): 1d59m since the last counted one (T0+1m) >= 1d: +10
    #   (only 23h since the last *seen* one, which must not matter)
    eng.add("page_view", ts(days=1, hours=3), {"url": "/pricing"})       # page +3, pricing: 2h, no
    eng.add("demo_requested", ts(days=1, hours=4))                       # demo +40
    eng.add("demo_requested", ts(days=1, hours=5))                       # repeat once: 0
    for m in range(4):                                                   # download 8, 8, 4 (cut to 20), 0
        eng.add("content_download", ts(days=2, minutes=m), {"asset": f"a{m}"})
    for m in range(4):                                                   # bounced -4, -4, -2 (cut to 10), 0
        eng.add("email_bounced", ts(days=2, minutes=10 + m))
    eng.add("email_unsubscribed", ts(days=2, minutes=20))                # -30
    eng.add("email_unsubscribed", ts(days=2, minutes=21))                # repeat once: 0
    leads.append(eng)
    # dq-when: the competitor e-mail disqualifies at once (fit: VP 20); changing the e-mail later and even
    # a deal_won do not bring it back.
    leads.append(Lead("dq-when").update(ts(), email="ann@rival.example", title="VP Sales")
                 .update(ts(hours=1), email="ann@acme.example")
                 .add("deal_won", ts(hours=2)))
    # dq-on: page +3; spam_reported disqualifies; a later demo still scores (+40 = 43) but the stage stays.
    leads.append(Lead("dq-on").add("page_view", ts(), {"url": "/"}).add("spam_reported", ts(hours=1))
                 .add("demo_requested", ts(hours=2)))
    return leads


@pytest.fixture(scope="module")
def scoring(tmp_path_factory):
    sc = Scenario(tmp_path_factory.mktemp("scoring"), SCORING, "scoring")
    leads = scoring_leads()
    sc.write(leads)
    sc.counts = sc.ingest()
    sc.n_events = sum(len(lead.events) for lead in leads)
    return sc


def test_rules_with_yaml_12_values_and_on_keys_check_clean(scoring):
    proc = scoring.run("rules", "check", str(scoring.rules))
    assert proc.stdout == "" and proc.stderr == ""


def test_ingest_json_counts_and_stages(scoring):
    # 3 + 2 + 2 + 1 + 1 + 1 + 1 + 17 + 3 + 3 = 34 events; no stage gates: 8 new, 2 disqualified.
    assert scoring.n_events == 34
    assert nonzero(scoring.counts) == {"applied": 34, "duplicates": 0, "rejected": 0,
                              "stages": {"new": 8, "disqualified": 2}}


def test_fit_is_recomputed_when_attributes_change(scoring):
    shown = scoring.show("fit-change")
    assert (shown["fit"], shown["engagement"], shown["score"]) == (-20, 0, -20)
    assert points(shown) == {"student": -25, "emailable": 5}
    assert shown["attributes"] == {"title": "Student", "company": {"size": 50}, "do_not_email": "No"}
    assert shown["stage"] == "new" and shown["disqualified"] is None and shown["owner"] is None
    assert [(h["stage"], h["at"]) for h in shown["history"]] == [("new", ts())]
    assert shown["bant"] == {"budget": False, "authority": False, "need": False, "timeline": False}
    assert isinstance(shown["rules_version"], str) and shown["rules_version"]


def test_a_changed_title_removes_its_points(scoring):
    shown = scoring.show("fit-title")
    assert (shown["fit"], shown["score"]) == (10, 10)
    assert points(shown) == {"home_market": 10}


def test_null_removes_an_attribute_and_its_points(scoring):
    shown = scoring.show("fit-null")
    assert shown["attributes"] == {"title": "VP Sales"}
    assert (shown["fit"], shown["score"]) == (20, 20)
    assert points(shown) == {"senior_title": 20}


def test_yaml_12_no_and_yes_in_rules_are_text(scoring):
    shown = scoring.show("yaml-no")
    assert shown["fit"] == 7 and points(shown) == {"emailable": 5, "newsletter": 2}
    shown = scoring.show("yaml-bool")
    assert shown["fit"] == 0 and points(shown) == {}
    assert shown["attributes"] == {"do_not_email": False, "newsletter": True}


def test_dotted_paths_read_nested_attributes(scoring):
    assert points(scoring.show("dotted-num")) == {"big_company": 15}
    shown = scoring.show("dotted-text")
    assert shown["fit"] == 0 and points(shown) == {}


def test_engagement_accumulates_with_repeat_and_max_points(scoring):
    shown = scoring.show("eng")
    # page 5 x 3 = 15; pricing 10 + 10 = 20; demo 40; download 8 + 8 + 4 = 20; bounced -4 - 4 - 2 = -10;
    # unsubscribed -30. 15 + 20 + 40 + 20 - 10 - 30 = 55.
    assert points(shown) == {"page": 15, "pricing": 20, "demo": 40, "download": 20, "bounced": -10,
                             "unsubscribed": -30}
    assert (shown["fit"], shown["engagement"], shown["score"]) == (0, 55, 55)
    assert shown["attributes"] == {} and shown["stage"] == "new"


def test_disqualify_by_attribute_rule_is_final(scoring):
    shown = scoring.show("dq-when")
    assert shown["stage"] == "disqualified" and shown["disqualified"] == "competitor"
    assert stages(shown) == [("new", ts()), ("disqualified", ts())]
    assert "competitor" in shown["history"][-1]["reason"]
    assert shown["attributes"]["email"] == "ann@acme.example"
    assert (shown["fit"], shown["score"]) == (20, 20)  # senior_title 20


def test_disqualify_by_event_rule_is_final(scoring):
    shown = scoring.show("dq-on")
    assert shown["stage"] == "disqualified" and shown["disqualified"] == "spam_complaint"
    assert stages(shown) == [("new", ts()), ("disqualified", ts(hours=1))]
    assert "spam_complaint" in shown["history"][-1]["reason"]
    assert (shown["engagement"], shown["score"]) == (43, 43)  # page 3 + demo 40


def test_explain_tells_the_disqualification(scoring):
    text = scoring.run("leads", "explain", "dq-when").stdout
    assert "DISQUALIFIED" in text.upper() and "competitor" in text
    assert ts() in text


def test_list_json_shape(scoring):
    rows = json.loads(scoring.run("leads", "list", "--stage", "disqualified", "--json").stdout)
    # best score first: dq-on 43, dq-when 20
    assert rows == [{"id": "dq-on", "stage": "disqualified", "score": 43, "owner": None},
                    {"id": "dq-when", "stage": "disqualified", "score": 20, "owner": None}]
    everyone = json.loads(scoring.run("leads", "list", "--json").stdout)
    assert len(everyone) == 10 and all(set(r) == {"id", "stage", "score", "owner"} for r in everyone)
    scores = [r["score"] for r in everyone]
    assert scores == sorted(scores, reverse=True)
    assert everyone[0] == {"id": "eng", "stage": "new", "score": 55, "owner": None}


def test_ingesting_the_same_file_twice_changes_nothing(scoring):
    ids = [lead.id for lead in scoring_leads()]
    before = {i: scoring.run("leads", "show", i, "--json").stdout for i in ids}
    listed = scoring.run("leads", "list", "--json").stdout
    again = scoring.ingest()
    assert nonzero(again) == {"applied": 0, "duplicates": 34, "rejected": 0, "stages": {"new": 8, "disqualified": 2}}
    assert {i: scoring.run("leads", "show", i, "--json").stdout for i in ids} == before
    assert scoring.run("leads", "list", "--json").stdout == listed
    with closing(sqlite3.connect(scoring.db)) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone() == (34, 34)


TYPED = """
    leadflow: 1
    scoring:
      fit:
        - { id: opted_in, when: { opted_in: true }, points: 10 }
        - { id: opted_in_one, when: { opted_in: 1 }, points: 3 }
      negative:
        - { id: dnc, when: { do_not_contact: true }, disqualify: asked_not_to_be_contacted }
    """


def test_a_value_changing_type_only_is_an_attribute_change(tmp_path):
    sc = Scenario(tmp_path, TYPED, "typed")
    sc.write([
        # 1 is not true (equality compares type and value): opted_in_one holds, 3; then true: opted_in holds, 10
        Lead("flag").update(ts(), opted_in=1).update(ts(hours=1), opted_in=True),
        # do_not_contact 1 is not true: nothing; then true: disqualified
        Lead("dnc").update(ts(), do_not_contact=1).update(ts(hours=1), do_not_contact=True),
    ])
    sc.ingest()
    shown = sc.show("flag")
    assert shown["attributes"] == {"opted_in": True}
    assert (shown["fit"], points(shown)) == (10, {"opted_in": 10})
    shown = sc.show("dnc")
    assert (shown["stage"], shown["disqualified"]) == ("disqualified", "asked_not_to_be_contacted")


# =====================================================================================================
# Caps
# =====================================================================================================

CAPS = """
    leadflow: 1
    scoring:
      fit:
        - { id: gold, when: { tier: gold }, points: 25 }
        - { id: emea, when: { region: emea }, points: 20 }
      engagement:
        - { id: visit, on: visit, points: 20 }
      negative:
        - { id: junk, when: { junk: true }, points: -50 }
      caps: { fit: 30, engagement: 50, total: 60 }
    """


@pytest.fixture(scope="module")
def caps(tmp_path_factory):
    sc = Scenario(tmp_path_factory.mktemp("caps"), CAPS, "caps")
    leads = [
        Lead("cap-all").update(ts(), tier="gold", region="emea")
        .add("visit", ts(minutes=1)).add("visit", ts(minutes=2)).add("visit", ts(minutes=3)),
        Lead("cap-total").update(ts(), tier="gold").add("visit", ts(minutes=1)).add("visit", ts(minutes=2)),
        Lead("cap-none").update(ts(), region="emea").add("visit", ts(minutes=1)),
        Lead("cap-neg").update(ts(), tier="gold", junk=True),
        Lead("cap-neg-sum").update(ts(), tier="gold", region="emea", junk=True),
    ]
    sc.write(leads)
    sc.ingest()
    return sc


def test_caps_clamp_each_group_and_the_total(caps):
    # fit 25 + 20 = 45 -> 30; engagement 3 x 20 = 60 -> 50; score 30 + 50 = 80 -> 60
    shown = caps.show("cap-all")
    assert (shown["fit"], shown["engagement"], shown["score"]) == (30, 50, 60)
    assert points(shown) == {"gold": 25, "emea": 20, "visit": 60}  # contributions are the raw points


def test_total_cap_alone(caps):
    # fit 25, engagement 2 x 20 = 40 (under both group caps); score 65 -> 60
    shown = caps.show("cap-total")
    assert (shown["fit"], shown["engagement"], shown["score"]) == (25, 40, 60)
    # fit 20, engagement 20: score 40, nothing clamped
    shown = caps.show("cap-none")
    assert (shown["fit"], shown["engagement"], shown["score"]) == (20, 20, 40)


def test_caps_bound_from_above_only_and_apply_to_the_sum(caps):
    # 25 - 50 = -25: not raised to 0
    shown = caps.show("cap-neg")
    assert (shown["fit"], shown["score"]) == (-25, -25)
    # (25 + 20 - 50) = -5 then the cap (30) does nothing; capping before the negative would give -20
    shown = caps.show("cap-neg-sum")
    assert (shown["fit"], shown["score"]) == (-5, -5)


# =====================================================================================================
# Decay, demotion, the SQL gate's event window, SQL never demoted
# =====================================================================================================

DECAY = """
    leadflow: 1
    events:
      sales_call: a sales call took place
    scoring:
      engagement:
        - { id: visit, on: visit, points: 10 }
        - { id: demo, on: demo, points: 60 }
        - { id: odd_up, on: odd_up, points: 49.996 }
        - { id: odd_down, on: odd_down, points: 49.994 }
      negative:
        - { id: complaint, on: complaint, points: -8 }
      decay: { half_life: 1d }
    stages:
      mql:
        when: { score: { at_least: 50 } }
        demote_below: 40
      sql:
        when: { event: { type: sales_call, within: 14d } }
    """


@pytest.fixture(scope="module")
def decay(tmp_path_factory):
    sc = Scenario(tmp_path_factory.mktemp("decay"), DECAY, "decay")
    leads = [
        Lead("decay-2d").add("visit", ts()).add("ping", ts(days=2)),
        Lead("decay-mix").add("visit", ts()).add("complaint", ts(days=1)).add("visit", ts(days=3)),
        Lead("decay-half").add("visit", ts()).add("ping", ts(hours=12)),
        Lead("demote-keep").add("demo", ts()).add("ping", ts(hours=12)),
        Lead("demote").add("demo", ts()).add("ping", ts(days=1)),
        Lead("sql-keep").add("demo", ts()).add("sales_call", ts()).add("ping", ts(days=3)),
        Lead("one-shot").add("sales_call", ts()).add("demo", ts(hours=1)),
        Lead("window-in").add("sales_call", ts()).add("demo", ts(days=13)),
        Lead("window-out").add("sales_call", ts()).add("demo", ts(days=15)),
        Lead("sql-over-demote").add("demo", ts()).add("sales_call", ts(days=1)),
        Lead("late-event").add("visit", ts(days=2)).add("visit", ts()),
        Lead("round-up").add("odd_up", ts()),
        Lead("round-down").add("odd_down", ts()),
    ]
    sc.write(leads)
    sc.counts = sc.ingest()
    return sc


def test_decay_halves_points_per_half_life(decay):
    # 10 * 0.5 ** (2d / 1d) = 2.5 at the lead's clock (the ping two days later)
    shown = decay.show("decay-2d")
    assert (shown["engagement"], shown["score"]) == (2.5, 2.5)
    assert points(shown) == {"visit": 2.5}


def test_decay_of_several_events_and_negative_points(decay):
    # at T0+3d: visit 10 * 0.5**3 + 10 = 11.25; complaint -8 * 0.5**2 = -2; 11.25 - 2 = 9.25
    shown = decay.show("decay-mix")
    assert (shown["engagement"], shown["score"]) == (9.25, 9.25)
    assert points(shown) == {"visit": 11.25, "complaint": -2}


def test_decayed_scores_are_rounded_to_two_decimals(decay):
    # 10 * 0.5 ** 0.5 = 7.0710678... -> 7.07
    shown = decay.show("decay-half")
    assert (shown["engagement"], shown["score"]) == (7.07, 7.07)


def test_mql_stays_above_demote_below(decay):
    # demo 60 at T0 -> MQL; at T0+12h 60 * 0.5 ** 0.5 = 42.43 >= 40: still MQL
    shown = decay.show("demote-keep")
    assert shown["score"] == 42.43 and shown["stage"] == "mql"
    assert stages(shown) == [("new", ts()), ("mql", ts())]


def test_mql_is_demoted_below_demote_below_after_decay(decay):
    # at T0+1d 60 * 0.5 = 30 < 40: back to new
    shown = decay.show("demote")
    assert shown["score"] == 30 and shown["stage"] == "new"
    assert stages(shown) == [("new", ts()), ("mql", ts()), ("new", ts(days=1))]


def test_sql_is_never_demoted_by_score(decay):
    # demo 60 -> MQL; sales_call -> SQL (same time); at T0+3d 60 * 0.5 ** 3 = 7.5, far below 40: still SQL
    shown = decay.show("sql-keep")
    assert shown["score"] == 7.5 and shown["stage"] == "sql"
    assert stages(shown) == [("new", ts()), ("mql", ts()), ("sql", ts())]


def test_new_to_mql_to_sql_on_one_event(decay):
    # sales_call at T0 (0 points, new); demo at T0+1h: 60 >= 50 -> MQL, call 1h ago within 14d -> SQL
    shown = decay.show("one-shot")
    assert shown["stage"] == "sql" and shown["score"] == 60
    assert stages(shown) == [("new", ts()), ("mql", ts(hours=1)), ("sql", ts(hours=1))]
    assert "sales_call" in shown["history"][-1]["reason"]


def test_sql_gate_event_window(decay):
    # the call 13 days before the demo is within 14d: SQL; 15 days before is not: MQL only
    shown = decay.show("window-in")
    assert shown["stage"] == "sql" and stages(shown)[-1] == ("sql", ts(days=13))
    shown = decay.show("window-out")
    assert shown["stage"] == "mql" and shown["score"] == 60
    assert stages(shown) == [("new", ts()), ("mql", ts(days=15))]


def test_sql_gate_wins_over_demotion(decay):
    # demo 60 -> MQL; at T0+1d the score is 30 < demote_below 40, but the SQL gate (a call within 14d) holds:
    # the SQL gate is checked first, so the lead becomes SQL and is not demoted
    shown = decay.show("sql-over-demote")
    assert (shown["stage"], shown["score"]) == ("sql", 30)
    assert stages(shown) == [("new", ts()), ("mql", ts()), ("sql", ts(days=1))]


def test_the_clock_never_goes_back(decay):
    # visit at T0+2d, then a late visit stamped T0: the clock stays T0+2d; 10 + 10 * 0.5 ** 2 = 12.5
    shown = decay.show("late-event")
    assert (shown["engagement"], shown["score"]) == (12.5, 12.5)


def test_gates_compare_rounded_scores(decay):
    # 49.996 rounds to 50.00 >= 50: MQL; 49.994 rounds to 49.99 < 50: new
    shown = decay.show("round-up")
    assert (shown["score"], shown["stage"]) == (50, "mql")
    shown = decay.show("round-down")
    assert (shown["score"], shown["stage"]) == (49.99, "new")


def test_decay_ingest_counts(decay):
    # 2+3+2+2+2+3+2+2+2 + 2+2+1+1 = 26 events; new: decay-2d, decay-mix, decay-half, demote, late-event,
    # round-down; mql: demote-keep, window-out, round-up; sql: sql-keep, one-shot, window-in, sql-over-demote
    assert nonzero(decay.counts) == {"applied": 26, "duplicates": 0, "rejected": 0,
                            "stages": {"new": 6, "mql": 3, "sql": 4}}


# =====================================================================================================
# BANT, the SQL gate, feedback
# =====================================================================================================

QUAL = r"""
    leadflow: 1
    events:
      pricing_inquiry: asked about pricing
      demo_requested: asked for a demo
    scoring:
      fit:
        - { id: senior, when: { title: { matches: "(?i)\\bvp\\b" } }, points: 20 }
      engagement:
        - { id: demo, on: demo_requested, points: 40, repeat: once }
    bant:
      budget: { when: { budget: { at_least: 10000 } } }
      authority: { when: { title: { matches: "(?i)\\bvp\\b" } } }
      need: { when: { pain: { exists: true } } }
      timeline: { when: { event: { type: pricing_inquiry, within: 14d } } }
    stages:
      mql:
        when: { score: { at_least: 50 } }
        demote_below: 40
      sql:
        when:
          all:
            - { bant: { at_least: 3 } }
            - { fit: { at_least: 20 } }
            - { event: { type: demo_requested, within: 14d } }
    """


def qual_leads() -> list[Lead]:
    def buyer(lead_id: str, pain: bool = False) -> Lead:
        attrs = {"title": "VP Sales", "budget": 20000}
        if pain:
            attrs["pain"] = "spreadsheets"
        return Lead(lead_id).update(ts(), **attrs)

    return [
        # budget + authority at T0; pricing at T0+1h: timeline holds (3 of 4)
        buyer("bant-timeline").add("pricing_inquiry", ts(hours=1)),
        # ... then pain at T0+20d: need holds, but the inquiry is 20d - 1h old: timeline no longer holds
        buyer("bant-drift").add("pricing_inquiry", ts(hours=1)).update(ts(days=20), pain="reporting"),
        # fit 20 + demo 40 = 60 -> MQL (BANT 2); inquiry at T0+10d: BANT 3, demo 10d old (within 14d) -> SQL
        buyer("sql-in").add("demo_requested", ts(minutes=1)).add("pricing_inquiry", ts(days=10)),
        # same, inquiry at T0+20d: BANT 3 but the demo is 20d old -> stays MQL
        buyer("sql-out").add("demo_requested", ts(minutes=1)).add("pricing_inquiry", ts(days=20)),
        # ... and a second demo a day later (repeat once: no points) opens the gate at T0+21d
        buyer("sql-late").add("demo_requested", ts(minutes=1)).add("pricing_inquiry", ts(days=20))
        .add("demo_requested", ts(days=21)),
        # BANT 3 from attributes; the demo at T0+1h: 60 -> MQL -> SQL on the one event
        buyer("one-event", pain=True).add("demo_requested", ts(hours=1)),
        buyer("fb-accept", pain=True).add("demo_requested", ts(hours=1)).add("sql_accepted", ts(hours=2)),
        buyer("fb-reject", pain=True).add("demo_requested", ts(hours=1))
        .add("sql_rejected", ts(hours=2), {"reason": "no_budget"}),
        buyer("fb-won", pain=True).add("demo_requested", ts(hours=1)).add("deal_won", ts(days=3)),
        # an MQL: sql_accepted does not apply (only sql -> accepted); deal_lost does (any open stage)
        buyer("fb-lost").add("demo_requested", ts(minutes=1)).add("sql_accepted", ts(hours=1))
        .add("deal_lost", ts(hours=2)),
    ]


@pytest.fixture(scope="module")
def qual(tmp_path_factory):
    sc = Scenario(tmp_path_factory.mktemp("qual"), QUAL, "qual")
    sc.write(qual_leads())
    sc.counts = sc.ingest(None, "--trusted")  # the reps' verdicts as history (leadflow's own event types)
    return sc


def test_qual_ingest_counts(qual):
    # 2 + 3 + 3 + 3 + 4 + 2 + 3 + 3 + 3 + 4 = 30 events
    assert nonzero(qual.counts) == {"applied": 30, "duplicates": 0, "rejected": 0,
                           "stages": {"new": 2, "mql": 1, "sql": 3, "accepted": 1, "rejected": 1, "won": 1,
                                      "lost": 1}}


def test_bant_criterion_with_an_event_window(qual):
    shown = qual.show("bant-timeline")
    assert shown["bant"] == {"budget": True, "authority": True, "need": False, "timeline": True}
    # fit 20, no engagement: 20 < 50, still new (BANT alone does not make an MQL)
    assert (shown["stage"], shown["score"]) == ("new", 20)


def test_bant_criterion_stops_holding(qual):
    shown = qual.show("bant-drift")
    assert shown["bant"] == {"budget": True, "authority": True, "need": True, "timeline": False}
    assert shown["attributes"] == {"title": "VP Sales", "budget": 20000, "pain": "reporting"}


def test_sql_gate_with_an_event_inside_the_window(qual):
    shown = qual.show("sql-in")
    assert (shown["stage"], shown["fit"], shown["engagement"], shown["score"]) == ("sql", 20, 40, 60)
    assert stages(shown) == [("new", ts()), ("mql", ts(minutes=1)), ("sql", ts(days=10))]
    assert shown["bant"] == {"budget": True, "authority": True, "need": False, "timeline": True}
    assert shown["history"][-1]["reason"]


def test_sql_gate_with_the_event_outside_the_window(qual):
    shown = qual.show("sql-out")
    assert (shown["stage"], shown["score"]) == ("mql", 60)
    assert shown["bant"] == {"budget": True, "authority": True, "need": False, "timeline": True}
    shown = qual.show("sql-late")
    assert (shown["stage"], shown["engagement"]) == ("sql", 40)  # repeat once: the second demo adds nothing
    assert stages(shown) == [("new", ts()), ("mql", ts(minutes=1)), ("sql", ts(days=21))]


def test_new_mql_sql_on_one_event_records_both_transitions(qual):
    shown = qual.show("one-event")
    assert shown["stage"] == "sql" and shown["score"] == 60
    assert stages(shown) == [("new", ts()), ("mql", ts(hours=1)), ("sql", ts(hours=1))]
    assert points(shown) == {"senior": 20, "demo": 40}
    assert all(h["reason"] for h in shown["history"])


def test_feedback_moves_stages(qual):
    shown = qual.show("fb-accept")
    assert shown["stage"] == "accepted" and stages(shown)[-1] == ("accepted", ts(hours=2))
    shown = qual.show("fb-reject")
    assert shown["stage"] == "rejected" and stages(shown)[-1] == ("rejected", ts(hours=2))
    assert [h["stage"] for h in shown["history"]] == ["new", "mql", "sql", "rejected"]
    shown = qual.show("fb-won")
    assert shown["stage"] == "won" and stages(shown)[-1] == ("won", ts(days=3))
    shown = qual.show("fb-lost")
    assert shown["stage"] == "lost"
    assert stages(shown) == [("new", ts()), ("mql", ts(minutes=1)), ("lost", ts(hours=2))]


def test_list_by_stage(qual):
    rows = json.loads(qual.run("leads", "list", "--stage", "sql", "--json").stdout)
    # all three at 60; ties by id
    assert rows == [{"id": "one-event", "stage": "sql", "score": 60, "owner": None},
                    {"id": "sql-in", "stage": "sql", "score": 60, "owner": None},
                    {"id": "sql-late", "stage": "sql", "score": 60, "owner": None}]
    rows = json.loads(qual.run("leads", "list", "--stage", "mql", "--json").stdout)
    assert rows == [{"id": "sql-out", "stage": "mql", "score": 60, "owner": None}]
    assert json.loads(qual.run("leads", "list", "--stage", "recycled", "--json").stdout) == []


def test_explain_tells_the_story(qual):
    shown = qual.show("sql-in")
    text = qual.run("leads", "explain", "sql-in").stdout
    assert "SQL" in text
    assert f"since {ts(days=10)}" in text
    assert shown["history"][-1]["reason"] in text
    assert "demo_requested" in text and "pricing_inquiry" in text  # what every event did


def test_global_options_after_the_command_and_from_the_environment(qual):
    expected = [{"id": "sql-out", "stage": "mql", "score": 60, "owner": None}]
    proc = leadflow("leads", "list", "--stage", "mql", "--json", "--db", qual.db)
    assert proc.returncode == 0 and json.loads(proc.stdout) == expected
    proc = leadflow("leads", "show", "sql-out", "--json",
                    env=clean_env(LEADFLOW_DB=str(qual.db), LEADFLOW_RULES=str(qual.rules)))
    assert proc.returncode == 0 and json.loads(proc.stdout)["stage"] == "mql"


def test_unknown_lead_is_a_problem_not_a_crash(qual):
    proc = qual.run("leads", "show", "nobody", "--json", expect=1)
    assert proc.stdout == "" and "no lead 'nobody'" in proc.stderr.splitlines()


# =====================================================================================================
# Usage errors: exit code 2
# =====================================================================================================

@pytest.mark.parametrize("args", [
    ["--no-such-option", "leads", "list"],
    ["leads", "list", "--no-such-option"],
    ["no-such-command"],
    ["leads", "list", "--stage", "nonsense"],
    ["leads", "show"],
    ["ingest"],
    ["ingest", "{missing}"],
    ["leads", "show", "L", "--json"],  # no database yet
    ["leads", "list", "--json"],       # no database yet
])
def test_usage_errors_exit_2(tmp_path, args):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("leadflow: 1\n")
    args = [a.replace("{missing}", str(tmp_path / "missing.jsonl")) for a in args]
    proc = Leadflow(tmp_path / "absent.db", rules)(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == "" and proc.stderr.strip()


def test_ingest_missing_file_writes_nothing(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("leadflow: 1\n")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "e1", "lead": "L", "type": "visit", "at": ts()}) + "\n")
    proc = Leadflow(tmp_path / "t.db", rules)("ingest", str(good), str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "missing.jsonl" in proc.stderr
    if (tmp_path / "t.db").exists():
        with closing(sqlite3.connect(tmp_path / "t.db")) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


# =====================================================================================================
# Crash: SIGKILL during a large ingest, then ingest the same file again
# =====================================================================================================

CRASH_RULES = QUAL.replace("""
    bant:""", """
        - { id: page, on: page_view, points: 3, max_points: 15 }
      negative:
        - { id: bounced, on: email_bounced, points: -5, max_points: 10 }
      decay: { half_life: 7d }
    bant:""", 1)
assert "half_life: 7d" in CRASH_RULES
N_LEADS, PER_LEAD = 3000, 10


def generate(path: Path) -> int:
    rng = random.Random(20261102)
    events = []
    for n in range(N_LEADS):
        lead = f"lead-{n:05d}"
        t = rng.randrange(0, 30 * 86400)
        attrs = {"title": rng.choice(["VP Sales", "Engineer", "vp marketing", "Student"]),
                 "budget": rng.choice([5000, 20000, None]), "country": rng.choice(["US", "DE", "IN"])}
        events.append((t, f"{lead}/0", lead, "lead_updated", attrs))
        for k in range(1, PER_LEAD):
            t += rng.randrange(60, 4 * 86400)
            etype = rng.choice(["page_view", "demo_requested", "pricing_inquiry", "email_bounced", "lead_updated",
                                "sql_accepted", "deal_won", "page_view"])
            data = {"pain": rng.choice(["slow", None])} if etype == "lead_updated" else {"url": f"/p{k}"}
            events.append((t, f"{lead}/{k}", lead, etype, data))
    events.sort()
    with path.open("w") as fh:
        for t, eid, lead, etype, data in events:
            at = (T0 + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(json.dumps({"id": eid, "lead": lead, "type": etype, "at": at, "data": data}) + "\n")
    return len(events)


def count_events(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_sigkill_during_ingest_then_rerun_equals_a_clean_run(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(CRASH_RULES))
    data = tmp_path / "big.jsonl"
    total = generate(data)
    assert total == N_LEADS * PER_LEAD
    crashed, clean = tmp_path / "crashed.db", tmp_path / "clean.db"

    history = ("--trusted", "--max-future", "365d")  # generated history: reps' verdicts, dates after today
    cmd = leadflow_command("--db", crashed, "--rules", rules, "ingest", data, "--json", *history)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if crashed.exists() and count_events(crashed) >= 1000:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # kill in the middle of a later batch
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    kept = count_events(crashed)
    assert 0 < kept < total

    resumed = Leadflow(crashed, rules)("ingest", str(data), "--json", *history, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    counts = json.loads(resumed.stdout)
    assert counts["rejected"] == 0
    assert counts["duplicates"] == kept and counts["applied"] == total - kept

    fresh = Leadflow(clean, rules)("ingest", str(data), "--json", *history, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    fresh_counts = json.loads(fresh.stdout)
    assert (fresh_counts["applied"], fresh_counts["duplicates"]) == (total, 0)
    assert fresh_counts["stages"] == counts["stages"]

    listed = [json.loads(Leadflow(db, rules)("leads", "list", "--json").stdout) for db in (crashed, clean)]
    assert len(listed[0]) == N_LEADS and listed[0] == listed[1]
    assert len({r["stage"] for r in listed[1]}) >= 4  # the sample below is not all one kind of lead

    sample = [r["id"] for r in listed[1][::N_LEADS // 12]]
    for lead in sample:
        a = Leadflow(crashed, rules)("leads", "show", lead, "--json")
        b = Leadflow(clean, rules)("leads", "show", lead, "--json")
        assert a.returncode == b.returncode == 0
        assert json.loads(a.stdout) == json.loads(b.stdout), lead

    tables = ("events", "decisions", "contributions", "stage_history", "outbox", "leads")
    sizes = []
    for db in (crashed, clean):
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone() == (total, total)
            sizes.append({t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables})
        finally:
            conn.close()
    assert sizes[0] == sizes[1]
