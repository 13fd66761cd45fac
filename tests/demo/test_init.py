"""A new user's first minutes outside the repository: `leadflow init` writes a starter project that
checks, tests and ingests as it is, and never overwrites a file; `leadflow demo` runs in any folder
(the bundled rules where there is no ./rules, saying so), writes where --db says, and leaves nothing
behind when it fails."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.leadflow_cli import ROOT, clean_env, leadflow_command, rows


def in_folder(folder: Path, *args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    """`leadflow ARGS` run in `folder`, as a user at a shell prompt there."""
    return subprocess.run(leadflow_command(*args), cwd=folder, env=env or clean_env(), capture_output=True,
                          text=True, timeout=120)


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def bundled_rule_set() -> dict[str, bytes]:
    """The repository's rules/ as a rule set: the top-level rule files, schema and reference, templates
    and tests (not the examples or the package's __init__)."""
    rules = ROOT / "rules"
    keep = [p for p in rules.iterdir() if p.is_file() and (p.suffix == ".yaml" or p.name in ("schema.json",
                                                                                              "REFERENCE.md"))]
    keep += [p for sub in ("templates", "tests") for p in (rules / sub).rglob("*") if p.is_file()
             and "__pycache__" not in p.parts]
    return {"rules/" + p.relative_to(rules).as_posix(): p.read_bytes() for p in keep}


def test_init_writes_a_project_that_checks_tests_and_ingests_as_it_is(tmp_path):
    proc = in_folder(tmp_path, "init", "crm")
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "crm"
    written = files_under(project)
    assert {str(Path(line).relative_to("crm").as_posix()) for line in proc.stdout.splitlines()} == set(written)
    expected = bundled_rule_set()
    assert {k: v for k, v in written.items() if k.startswith("rules/")} == expected
    assert {"README.md", "events.jsonl", ".gitignore"} <= set(written)
    assert b"*.db" in written[".gitignore"]  # lead data stays out of git

    for command in (["rules", "check"], ["rules", "test"]):
        step = in_folder(project, *command)
        assert step.returncode == 0, f"{command}: {step.stdout}{step.stderr}"
    events = [json.loads(line) for line in written["events.jsonl"].decode().splitlines() if line.strip()]
    ingested = in_folder(project, "ingest", "events.jsonl", "--json")
    assert ingested.returncode == 0, ingested.stderr
    answer = json.loads(ingested.stdout)
    assert (answer["applied"], answer["rejected"]) == (len(events), 0)
    assert sum(answer["stages"].values()) == len({e["lead"] for e in events})
    # the example shows the whole point: a lead that asks for a demo with budget and authority is an SQL
    assert ("ann@acme.example", "sql") in rows(project / "leadflow.db", "SELECT id, stage FROM leads")


def test_init_defaults_to_the_current_folder_and_keeps_what_is_there(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    proc = in_folder(tmp_path, "init")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rules" / "scoring.yaml").is_file() and (tmp_path / "notes.txt").read_text() == "mine"


def test_init_refuses_to_overwrite_names_every_file_and_writes_nothing(tmp_path):
    project = tmp_path / "crm"
    (project / "rules").mkdir(parents=True)
    (project / "README.md").write_text("our own readme")
    (project / "rules" / "scoring.yaml").write_text("leadflow: 1\n# edited by marketing\n")
    proc = in_folder(tmp_path, "init", "crm")
    assert proc.returncode == 1
    named = {line.split(": FILE_EXISTS: ")[0] for line in proc.stderr.splitlines() if ": FILE_EXISTS: " in line}
    assert named == {str(Path("crm") / "README.md"), str(Path("crm") / "rules" / "scoring.yaml")}
    assert files_under(project) == {"README.md": b"our own readme",
                                    "rules/scoring.yaml": b"leadflow: 1\n# edited by marketing\n"}

    assert in_folder(tmp_path, "init").returncode == 0  # the parent folder is free
    again = in_folder(tmp_path, "init")  # a second init over its own project changes nothing
    assert again.returncode == 1 and again.stderr.count("FILE_EXISTS") == len(bundled_rule_set()) + 3


def test_init_into_a_file_is_a_problem(tmp_path):
    (tmp_path / "crm").write_text("a file")
    proc = in_folder(tmp_path, "init", "crm")
    assert proc.returncode == 1 and "NOT_A_DIRECTORY" in proc.stderr and (tmp_path / "crm").read_text() == "a file"


# ---- the demo from any folder ---------------------------------------------------------------------

def demo_report(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_demo_in_an_empty_folder_runs_the_bundled_rules_and_says_so(tmp_path):
    proc = in_folder(tmp_path, "demo", "--json")
    report = demo_report(proc)
    assert "bundled" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leadflow-demo.db"]  # nothing else left behind
    leads = rows(tmp_path / "leadflow-demo.db", "SELECT count(*) FROM leads")[0][0]
    assert sum(report["stages"].values()) == leads == 60
    same_rules = demo_report(in_folder(tmp_path, "--rules", ROOT / "rules", "demo", "--json"))
    assert same_rules["rules_version"] == report["rules_version"]  # the bundled rules are the repository's


def test_demo_uses_the_rules_in_the_folder_and_fails_on_them_rather_than_fall_back(tmp_path):
    assert in_folder(tmp_path, "init").returncode == 0
    proc = in_folder(tmp_path, "demo", "--json")
    assert proc.returncode == 0 and "./rules" in proc.stderr and "bundled" not in proc.stderr
    with open(tmp_path / "rules" / "scoring.yaml", "a") as fh:
        fh.write("\nnot_a_section: 1\n")
    before = (tmp_path / "leadflow-demo.db").read_bytes()
    broken = in_folder(tmp_path, "demo")
    assert broken.returncode == 1 and "scoring.yaml" in broken.stderr
    assert (tmp_path / "leadflow-demo.db").read_bytes() == before  # the last good demo is kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".leadflow-demo")]


def test_a_failing_demo_leaves_no_database(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = in_folder(tmp_path, "--rules", "empty", "demo", "--db", "x.db")
    assert proc.returncode == 1 and "NO_RULE_FILES" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    missing = in_folder(tmp_path, "demo", "--db", "no/such/x.db")
    assert missing.returncode == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_demo_writes_where_db_says_but_never_where_the_environment_points(tmp_path):
    for args, name in ((["--db", "a.db", "demo"], "a.db"), (["demo", "--db", "b.db"], "b.db"),
                       (["demo", "--out", "c.db"], "c.db")):
        assert demo_report(in_folder(tmp_path, *args, "--json"))["db"] == name
        assert rows(tmp_path / name, "SELECT count(*) FROM leads")[0][0] == 60
    (tmp_path / "real.db").write_bytes(b"the shop's own leads")
    demo_report(in_folder(tmp_path, "demo", "--json", env=clean_env(LEADFLOW_DB="real.db")))
    assert (tmp_path / "real.db").read_bytes() == b"the shop's own leads"
    assert (tmp_path / "leadflow-demo.db").is_file()
