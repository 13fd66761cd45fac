"""Tuning the bundled rules (nurture templates and rule tests included) and applying proposals: from
the CLI (`rules tune --out`, `--apply`), from the library, and with the Slack Apply button over real
HTTP. A proposal made from rules that changed since is refused, never written over the edits.

The labelled data is a `leadflow demo` database: generated leads whose SQLs reps accepted or
rejected, so every clone has it."""
from __future__ import annotations

import functools
import json
import random
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from leadflow.core import parse_time
from leadflow.learning import schedule_proposal
from leadflow.service import LeadService
from tests.bot_harness import Service, click_payload
from tests.datasets import ROOT
from tests.leadflow_cli import leadflow
from tests.slack_fake import SlackFake

BUNDLED = ROOT / "rules"
STALE = "rules changed since this proposal was made; a new proposal will follow"
TUNING = "leadflow: 1\ntuning: { channel: C0MARKET1, min_labels: 20 }\n"


cli = functools.partial(leadflow, check=True)  # the shipped command; a failure shows its output


def bundled_copy(dst: Path) -> Path:
    """The bundled rule set as a live rule directory: its YAML files, templates and rule tests."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in BUNDLED.glob("*.yaml"):
        shutil.copy(f, dst)
    shutil.copytree(BUNDLED / "templates", dst / "templates")
    shutil.copytree(BUNDLED / "tests", dst / "tests")
    return dst


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """A database made by `leadflow demo` with the bundled rules: 200 leads, 45 with a rep's verdict;
    then every lead's deal won or lost, more often won the higher its score (a fixed draw), so there
    are enough labels of each kind for tune to change points (the demo's verdicts alone are too few)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    cli("--rules", str(BUNDLED), "demo", "--out", str(path), "--leads", "200", "--json")
    leads = json.loads(cli("--db", str(path), "--rules", str(BUNDLED), "leads", "list", "--limit", "1000",
                           "--json").stdout)
    rng = random.Random(11)
    outcomes = path.parent / "outcomes.jsonl"
    with open(outcomes, "w", encoding="utf-8") as fh:
        for lead in sorted(leads, key=lambda x: x["id"]):
            won = rng.random() < min(0.9, max(0.1, lead["score"] / 150))
            fh.write(json.dumps({"id": f"{lead['id']}-outcome", "lead": lead["id"], "at": "2026-12-01T10:00:00Z",
                                 "type": "deal_won" if won else "deal_lost", "data": {}}) + "\n")
    cli("--db", str(path), "--rules", str(BUNDLED), "ingest", str(outcomes), "--json")
    return path


def copy_db(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def test_tune_on_the_bundled_rules_copies_templates_and_rule_tests_but_no_junk(demo_db, tmp_path):
    live = bundled_copy(tmp_path / "rules")
    (live / "NOTES.md").write_text("not part of the rule set\n")
    (live / ".scoring.yaml.swp").write_text("editor leftovers\n")
    (live / "templates" / "case_study.md~").write_text("backup\n")
    (live / "proposals").mkdir()
    (live / "proposals" / "old.yaml").write_text("leadflow: 1\n")
    before = snapshot(live)
    out = tmp_path / "proposal"
    r = cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--out", str(out), "--json", check=False)
    assert r.returncode == 0, r.stderr  # was: UNKNOWN_TEMPLATE for every nurture template
    report = json.loads(r.stdout)
    assert report["leads"] >= 200 and report["validation"]["folds"] == 5
    assert report["validation"]["before"]["auc"] is not None and report["validation"]["after"]["auc"] is not None
    files = set(snapshot(out))
    assert files == {"nurture.yaml", "qualification.yaml", "routing.yaml", "scoring.yaml", "TUNING.md", "calibration.yaml",
                     "templates/case_study.md", "templates/checking_in.md", "templates/webinar_invite.md",
                     "tests/qualification.yaml"}
    for name in ("templates/case_study.md", "templates/checking_in.md", "templates/webinar_invite.md",
                 "tests/qualification.yaml", "nurture.yaml", "routing.yaml"):
        assert (out / name).read_bytes() == before[name], name
    assert (out / "scoring.yaml").read_bytes() != before["scoring.yaml"]
    check = cli("rules", "check", str(out), check=False)
    assert check.returncode == 0, check.stderr
    ran = cli("rules", "test", str(out), check=False)
    tested = re.search(r"(\d+) of (\d+) rule tests", ran.stdout + ran.stderr)
    ran = cli("rules", "test", str(live))
    bundled = re.search(r"(\d+) of (\d+) rule tests", ran.stdout + ran.stderr)
    assert tested and bundled and tested.group(2) == bundled.group(2) != "0"  # the rule tests came along
    assert snapshot(live) == before  # --out never touches the live rules
    again = cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--out", str(tmp_path / "p2"), "--json")
    assert json.loads(again.stdout) == report and snapshot(tmp_path / "p2") == snapshot(out)


def test_tune_apply_writes_only_the_changed_rule_files(demo_db, tmp_path):
    live = bundled_copy(tmp_path / "rules")
    before = snapshot(live)
    cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--out", str(tmp_path / "p"))
    r = cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--apply", check=False)
    assert r.returncode == 0, r.stderr
    after = snapshot(live)
    assert after["scoring.yaml"] == (tmp_path / "p" / "scoring.yaml").read_bytes() != before["scoring.yaml"]
    changed = {name for name in before if after.get(name) != before[name]}
    # new points, and the gates moved to admit as many leads as before; templates, tests, routing, nurture untouched
    assert changed == {"scoring.yaml", "qualification.yaml"}
    assert set(after) - set(before) == {"TUNING.md", "calibration.yaml"}  # and nothing left behind
    assert after["calibration.yaml"] == (tmp_path / "p" / "calibration.yaml").read_bytes()
    check = cli("rules", "check", str(live), check=False)
    assert check.returncode == 0, check.stderr


def test_out_may_not_replace_the_rules_it_is_made_from(demo_db, tmp_path):
    live = bundled_copy(tmp_path / "rules")
    before = snapshot(live)
    for out in (live, tmp_path):
        r = cli("--db", str(demo_db), "--rules", str(live), "rules", "tune", "--out", str(out), check=False)
        assert r.returncode == 2 and "would replace the rules it is made from" in r.stderr
    assert snapshot(live) == before


def _service(tmp_path: Path, demo_db: Path, clock) -> LeadService:  # noqa: ANN001
    live = bundled_copy(tmp_path / "rules")
    (live / "tuning.yaml").write_text(TUNING)
    return LeadService(str(copy_db(demo_db, tmp_path / "lf.db")), str(live), clock=clock)


def propose(service: LeadService) -> int:
    """One scheduled tuning run, as the service's work loop makes it."""
    return schedule_proposal(service.store, service.pipeline.compiled.rules, service.rules_dir, service.clock())


def test_a_stale_proposal_is_refused_and_a_fresh_one_follows(demo_db, tmp_path):
    now = parse_time("2027-01-04T09:00:00Z")
    service = _service(tmp_path, demo_db, lambda: now)
    live = Path(service.rules_dir)
    try:
        assert propose(service) == 1 and propose(service) == 0  # weekly: not due again
        first = service.store.proposal(1)
        assert json.loads(first["report"])["rules_version"] == service.pipeline.version
        routing = (live / "routing.yaml").read_text().replace("managers: [U0MGR0001]", "managers: [U0MGR0001, U0MGR0002]")
        (live / "routing.yaml").write_text(routing)  # a manager is added after the proposal was made
        edited = snapshot(live)

        assert service.apply_proposal(1, "U0MGR0001") == ("stale", STALE)
        assert snapshot(live) == edited  # nothing reverted, nothing written
        row = service.store.proposal(1)
        assert (row["status"], row["decided_by"]) == ("stale", "U0MGR0001")
        assert service.apply_proposal(1, "U0MGR0001")[0] == "already"

        assert propose(service) == 1  # due at once, made from the edited rules
        second = service.store.proposal(2)
        assert second["dir"] != first["dir"] and Path(first["dir"], "TUNING.md").exists()
        status, message = service.apply_proposal(2, "U0MGR0002")
        assert status == "done", message
        assert (live / "routing.yaml").read_text() == routing  # the edit made before this proposal stays
        assert (live / "scoring.yaml").read_bytes() == Path(second["dir"], "scoring.yaml").read_bytes()
        changed = {name for name, data in snapshot(live).items() if edited.get(name) != data}
        assert changed == {"scoring.yaml", "qualification.yaml", "calibration.yaml"}  # the calibration comes along
        assert service.pipeline.compiled.rules.version != json.loads(second["report"])["rules_version"]
    finally:
        service.store.close()


def test_a_proposal_without_a_recorded_rule_version_is_refused(demo_db, tmp_path):
    now = parse_time("2027-01-04T09:00:00Z")
    service = _service(tmp_path, demo_db, lambda: now)
    try:
        assert propose(service) == 1
        row = service.store.proposal(1)
        report = json.loads(row["report"])
        del report["rules_version"]  # as proposals made before versions were recorded
        with service.store.transaction():
            pid = service.store.add_proposal(row["dir"], now, report)
        before = snapshot(Path(service.rules_dir))
        assert service.apply_proposal(pid, "U0MGR0001") == ("stale", STALE)
        assert snapshot(Path(service.rules_dir)) == before
    finally:
        service.store.close()


def test_slack_apply_on_the_bundled_rules_refuses_a_stale_proposal_and_applies_the_next(demo_db, tmp_path):
    live = bundled_copy(tmp_path / "rules")
    copy_db(demo_db, tmp_path / "lf.db")
    with SlackFake() as fake, Service(tmp_path, fake, rules=TUNING) as svc:  # rules.yaml: the tuning section
        before = svc.service.pipeline.version
        proposals = lambda c: c["args"]["channel"] == "C0MARKET1"  # noqa: E731  (the demo's own cards go elsewhere)
        post = fake.wait_for("chat.postMessage", timeout=60, where=proposals)[0]["args"]
        assert "Rule tuning proposal #1" in json.dumps(post["blocks"])
        card = {"channel": "C0MARKET1", "ts": fake.messages["C0MARKET1"][0]["ts"]}
        routing = (live / "routing.yaml").read_text().replace("managers: [U0MGR0001]", "managers: [U0MGR0001, U0MGR0002]")
        (live / "routing.yaml").write_text(routing)
        edited = snapshot(live)

        assert svc.interactive(click_payload("proposal_apply", "1", "U0MGR0001", card)).status_code == 200
        note = fake.wait_for("chat.postEphemeral")[0]["args"]
        assert note["user"] == "U0MGR0001" and STALE in note["text"]
        update = fake.wait_for("chat.update", where=proposals)[0]["args"]
        assert update["ts"] == card["ts"] and "Not applied" in json.dumps(update["blocks"])
        assert all(b["type"] != "actions" for b in update["blocks"])
        assert snapshot(live) == edited and svc.service.store.proposal(1)["status"] == "stale"

        second = fake.wait_for("chat.postMessage", 2, timeout=60, where=proposals)[1]["args"]
        assert "Rule tuning proposal #2" in json.dumps(second["blocks"])
        card2 = {"channel": "C0MARKET1", "ts": fake.messages["C0MARKET1"][-1]["ts"]}
        svc.interactive(click_payload("proposal_apply", "2", "U0MGR0002", card2))  # the manager added by the edit
        update = fake.wait_for("chat.update", 2, where=proposals)[1]["args"]
        assert update["ts"] == card2["ts"] and "Applied* by <@U0MGR0002>" in json.dumps(update["blocks"])
        row = svc.service.store.proposal(2)
        assert (row["status"], row["decided_by"]) == ("applied", "U0MGR0002")
        assert (live / "routing.yaml").read_text() == routing
        assert (live / "scoring.yaml").read_bytes() == Path(row["dir"], "scoring.yaml").read_bytes()
        assert {n for n, d in snapshot(live).items() if edited.get(n) != d} == {"scoring.yaml", "qualification.yaml",
                                                                                "calibration.yaml"}
        assert set(snapshot(Path(row["dir"]))) >= {"templates/case_study.md", "tests/qualification.yaml"}
        assert svc.service.pipeline.version != before


def test_a_copy_has_the_live_version_and_copies_only_regular_files(tmp_path):
    import os

    from leadflow.core import LeadflowError
    from leadflow.rules import copy_rule_dir, dir_version, load_rules

    live = bundled_copy(tmp_path / "live")
    (live / ".events.yaml").write_text("leadflow: 1\n")  # hidden and editor files are not rule files, live or copied
    (live / "#scoring.yaml").write_text("leadflow: 1\n")
    secret = tmp_path / "secret.md"
    secret.write_text("Subject: s\n\nthe server's secret\n")
    os.symlink("/dev/zero", live / "templates" / "zero.md")
    os.symlink(secret, live / "templates" / "outside.md")
    os.mkfifo(live / "templates" / "pipe.md")
    os.mkfifo(live / "tests" / "pipe.yaml")
    copy = tmp_path / "copy"
    copy_rule_dir(str(live), str(copy))  # used to read /dev/zero forever, or raise shutil.Error on the pipe
    assert dir_version(str(copy)) == dir_version(str(live))
    assert sorted(p.name for p in (copy / "templates").iterdir()) == sorted(
        p.name for p in (live / "templates").iterdir() if p.name not in ("zero.md", "outside.md", "pipe.md"))
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    # a template that is a link out of templates/ is not a template
    nurture = (live / "nurture.yaml").read_text()
    (live / "nurture.yaml").write_text(nurture.replace("template: case_study", "template: outside", 1))
    with pytest.raises(LeadflowError) as err:
        load_rules(str(live))
    assert [p.code for p in err.value.problems] == ["UNKNOWN_TEMPLATE"]
