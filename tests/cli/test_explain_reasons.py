"""`leads explain` and `leads show --json` speak the rule authors' words: each contribution's
description, then its id; the stage gate's description with the condition that held; and the
lead's CRM record link when the rules have a `crm` template."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import quote

from tests.leadflow_cli import Leadflow, ev, write

RULES = """\
    leadflow: 1
    scoring:
      fit:
        - id: senior
          description: "a VP:  the person who signs"
          when: { title: { matches: "(?i)\\\\bvp\\\\b" } }
          points: 20
      engagement:
        - { id: demo, on: demo_requested, points: 40, repeat: once }
    stages:
      mql:
        description: enough fit and interest for marketing to hand over
        when: { score: { at_least: 50 } }
    crm: { record_url: "https://crm.example/lead/{crm.id}?tab=activity" }
    """


def setup(tmp_path: Path) -> Leadflow:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(RULES))
    cli = Leadflow(tmp_path / "t.db", rules)
    lines = [ev("1", "L", "lead_updated", title="VP Sales", crm={"id": "00Q5e/x y"}),
             ev("2", "L", "demo_requested"), ev("3", "M", "lead_updated", title="VP Ops")]
    cli("ingest", str(write(tmp_path / "in.jsonl", lines)), check=True)
    return cli


def test_explain_names_each_reason_by_its_description_then_its_id(tmp_path):
    cli = setup(tmp_path)
    text = cli("leads", "explain", "L", check=True).stdout
    lines = text.splitlines()
    assert lines[0].startswith("L is MQL since 2026-11-02T09:00:00Z, because enough fit and interest for "
                               "marketing to hand over (stages.mql: "), lines[0]
    assert any(line.startswith("  +20  a VP: the person who signs (senior)  [") for line in lines), text
    assert "  +40  demo  [" in text  # no description: the id alone, as before
    link = "https://crm.example/lead/" + quote("00Q5e/x y", safe="") + "?tab=activity"
    assert f"In the CRM: {link}" in lines

    shown = json.loads(cli("leads", "show", "L", "--json", check=True).stdout)
    assert {c["rule"]: c["description"] for c in shown["contributions"]} == {
        "senior": "a VP: the person who signs", "demo": "demo"}
    assert shown["crm_url"] == link


def test_a_lead_without_the_crm_attribute_has_no_link(tmp_path):
    cli = setup(tmp_path)
    assert "In the CRM" not in cli("leads", "explain", "M", check=True).stdout
    assert json.loads(cli("leads", "show", "M", "--json", check=True).stdout)["crm_url"] is None
