"""A running service and its rule files: whatever breaks a reload is reported and retried, and the
report clears as soon as the files load again, even as the version already running."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import textwrap
from pathlib import Path

from leadflow.service import LeadService
from tests.leadflow_cli import leadflow
from tests.rule_samples import BILLION_LAUGHS

GOOD = textwrap.dedent("""\
    leadflow: 1
    events: { page_view: a page view }
    scoring:
      engagement:
        - id: views
          on: page_view
          points: 5
    stages:
      mql:
        when: { score: { at_least: 10 } }
    """)

def service(tmp_path: Path) -> tuple[LeadService, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(GOOD, encoding="utf-8")
    return LeadService(str(tmp_path / "t.db"), str(rules)), rules / "rules.yaml"


def codes(svc: LeadService) -> list[tuple]:
    return [(p.code, os.path.basename(p.location.file), p.location.line, p.location.column) for p in svc.rule_problems]


def test_an_alias_bomb_is_reported_and_the_report_clears_when_the_running_version_comes_back(tmp_path, caplog):
    svc, path = service(tmp_path)
    good = svc.pipeline.version
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="leadflow.service"):
        assert svc.reload_rules() is False
        assert codes(svc) == [("YAML_ALIAS_LIMIT", "rules.yaml", 6, 8)]
        assert svc.reload_rules() is False  # retried on every pass, still broken, logged once
        assert codes(svc) == [("YAML_ALIAS_LIMIT", "rules.yaml", 6, 8)]
    assert [r.getMessage().split(": ")[2] for r in caplog.records] == ["YAML_ALIAS_LIMIT"]
    assert svc.pipeline.version == good  # the last good version kept running

    path.write_text(GOOD, encoding="utf-8")  # fixed back to exactly the running version
    assert svc.reload_rules() is False  # nothing new to switch to...
    assert svc.rule_problems == []  # ...but the report is gone
    assert svc.pipeline.version == good


def test_a_failed_reload_is_retried_even_when_the_files_look_unchanged(tmp_path):
    # An editor or a checkout can restore a file within the same mtime tick and at the same size; the
    # service must not wait for another change to try again.
    svc, path = service(tmp_path)
    broken = GOOD.replace("points: 5", "pionts: 5")
    assert len(broken) == len(GOOD)
    path.write_text(broken, encoding="utf-8")
    os.utime(path, (1_800_000_000, 1_800_000_000))
    svc.reload_rules()
    assert [c[0] for c in codes(svc)] == ["MISSING_KEY", "UNKNOWN_KEY"]
    path.write_text(GOOD.replace("points: 5", "points: 7"), encoding="utf-8")  # a new version, same size
    os.utime(path, (1_800_000_000, 1_800_000_000))
    assert svc.reload_rules() is True
    assert svc.rule_problems == []


def test_any_exception_in_a_reload_is_reported_and_retried(tmp_path):
    # Not every failure is a problem in the files: the database busy, a file vanishing mid-read, the
    # interpreter out of stack. This one runs the loader out of stack with a valid but deeply nested
    # condition: the exception must neither escape the service loop nor be forgotten.
    svc, path = service(tmp_path)
    deep = "{ not: " * 40 + "{ country: US }" + " }" * 40
    path.write_text(GOOD + f"bant:\n  need:\n    when: {deep}\n", encoding="utf-8")
    limit = sys.getrecursionlimit()
    depth = len(__import__("inspect").stack(0))
    sys.setrecursionlimit(depth + 60)
    try:
        assert svc.reload_rules() is False
    finally:
        sys.setrecursionlimit(limit)
    assert [c[0] for c in codes(svc)] == ["RULES_RELOAD_FAILED"]
    assert "RecursionError" in svc.rule_problems[0].message
    first = svc.rule_problems
    assert svc.reload_rules() is False and svc.rule_problems is first  # backing off: not retried at once
    later = svc.clock() + 1.5
    svc.clock = lambda: later  # past the first backoff (1 s)
    assert svc.reload_rules() is True  # tried again although the files did not change, and loaded
    assert svc.rule_problems == []
    assert "need" in svc.pipeline.compiled.rules.bant


REPS = ('reps:\n  - { id: alice, name: Alice, slack: U0ALICE01, timezone: Europe/London, hours: "mon-fri 09:00-18:00" }\n'
        'routing:\n  - { pool: [alice] }\nfallback: { channel: "#q" }\n')


def test_bad_rep_hours_are_reported_on_every_pass_and_nothing_is_half_switched(tmp_path):
    svc, path = service(tmp_path)
    path.write_text(GOOD + REPS, encoding="utf-8")
    assert svc.reload_rules() is True
    live = svc.pipeline.version
    path.write_text(GOOD + REPS.replace("Europe/London", "Mars/Olympus").replace("Alice,", "Alicia,"), encoding="utf-8")
    for _ in range(3):  # the second pass used to see the new version "running" and clear the report
        assert svc.reload_rules() is False
        assert codes(svc) == [("BAD_TIMEZONE", "rules.yaml", 12, 60)]
        assert svc.pipeline.version == live
        assert svc.desk.pipeline is svc.pipeline and svc.scheduler.rules is svc.pipeline.compiled.rules
        assert svc.desk.routing.reps["alice"].name == "Alice"


def test_a_broken_file_is_checked_again_only_when_the_files_change(tmp_path):
    svc, path = service(tmp_path)
    path.write_text(GOOD + "stages: [oops\n", encoding="utf-8")
    assert svc.reload_rules() is False
    first = svc.rule_problems
    assert first
    for _ in range(3):  # the same files are not parsed again on every pass (a 1 MB one cost 5 s a pass)
        assert svc.reload_rules() is False
        assert svc.rule_problems is first
    path.write_text(GOOD, encoding="utf-8")
    assert svc.reload_rules() is False and svc.rule_problems == []  # fixed: the running version, report cleared


def test_a_template_added_later_retries_the_load(tmp_path):
    svc, path = service(tmp_path)
    path.write_text(GOOD + "nurture:\n  - id: t\n    enroll: { stage: mql }\n    steps:\n"
                    "      - send: { channel: email, template: hello }\n", encoding="utf-8")
    assert svc.reload_rules() is False
    assert [p.code for p in svc.rule_problems] == ["UNKNOWN_TEMPLATE"]
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "hello.md").write_text("Subject: hi\n\nhello {name|there}\n", encoding="utf-8")
    assert svc.reload_rules() is True and svc.rule_problems == []


def test_a_rule_file_over_1_mb_is_refused_before_it_is_parsed(tmp_path):
    svc, path = service(tmp_path)
    path.write_text(GOOD + "# padding\n" * 110_000, encoding="utf-8")
    assert svc.reload_rules() is False
    assert codes(svc) == [("FILE_TOO_LARGE", "rules.yaml", 0, 0)]
    r = leadflow("rules", "check", path.parent)
    assert r.returncode == 1 and "FILE_TOO_LARGE" in r.stderr and "Traceback" not in r.stderr


def test_the_reload_log_line_cannot_be_forged_or_flooded(tmp_path, caplog):
    svc, path = service(tmp_path)
    path.write_text(GOOD + '"evil\\nleadflow.service ERROR forged\\x1b[31m": 1\nlong: &l "' + "k" * 100_000
                    + '"\ntuning: { *l : 1 }\n', encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="leadflow.service"):
        assert svc.reload_rules() is False
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all("\n" not in m and "\x1b" not in m and len(m) < 2000 for m in messages)


DESK = ('reps:\n  - { id: alice, name: Alice, slack: U0ALICE01 }\nrouting:\n  - { pool: [alice] }\n'
        'fallback: { channel: "#sales-queue" }\nfeedback:\n  reject_reasons:\n    - { id: not_now, label: "Not now" }\n')


def test_the_delivery_view_shows_the_live_routing_after_a_reload(tmp_path):
    """Notifiers hold `service.view` for the life of the service: a card delivered after a reload
    must reach the rep and show the reject reasons as the new rules say."""
    svc, path = service(tmp_path)
    path.write_text(GOOD + DESK, encoding="utf-8")
    assert svc.reload_rules() is True
    event = {"id": "e1", "lead": "L1", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {}}
    assert svc.pipeline.apply(event).status == "applied"
    assignment, view = svc.desk.assign("L1"), svc.view
    card = view.card(assignment["id"])
    assert (card.assignment["rep"], card.lead["id"], card.lead["score"]) == ("alice", "L1", 5)
    assert (card.route.slack, card.route.fallback) == ("U0ALICE01", "#sales-queue")
    assert card.reason_labels == {"not_now": "Not now"} and card.assignments == 1
    path.write_text(GOOD + DESK.replace("U0ALICE01", "U0ALICE02").replace("#sales-queue", "#new-queue")
                    .replace('"Not now"', '"Not this quarter"'), encoding="utf-8")
    assert svc.reload_rules() is True
    again = view.card(assignment["id"])
    assert (again.route.slack, again.route.fallback) == ("U0ALICE02", "#new-queue")
    assert again.reason_labels == {"not_now": "Not this quarter"} and view.route("nobody").slack is None


def proposal_dirs(tmp_path: Path, live: Path, count: int) -> tuple[list[Path], set[str]]:
    """`count` proposals that each change two files of `live`, and the versions of every whole set."""
    from leadflow.rules import dir_version

    bulk = "".join(f"    - {{ id: views_{i}, on: page_view, points: 1 }}\n" for i in range(150))

    def write(directory: Path, n: int) -> None:
        (directory / "rules.yaml").write_text(GOOD.replace("points: 5\n", f"points: {n}\n" + bulk), encoding="utf-8")
        (directory / "tuning.yaml").write_text(f"leadflow: 1\ntuning: {{ channel: C0MARKET{n}, min_labels: 20 }}\n",
                                               encoding="utf-8")

    write(live, 0)
    whole, dirs = {dir_version(str(live))}, []
    for n in range(1, count + 1):
        dirs.append(tmp_path / f"proposal-{n}")
        dirs[-1].mkdir()
        write(dirs[-1], n)
        whole.add(dir_version(str(dirs[-1])))
    return dirs, whole


def reloading(svc: LeadService, seen: set, errors: list, stop: threading.Event) -> threading.Thread:
    """The service's loop, reduced to its reloads: every version it switches to goes into `seen`."""
    def loop() -> None:
        while not stop.is_set():
            try:
                svc.reload_rules()
                seen.add(svc.pipeline.version)
            except Exception as exc:  # noqa: BLE001 - reported by the test, never lost in the thread
                errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def test_an_applied_proposal_goes_live_whole_while_the_loop_reloads(tmp_path):
    """A proposal writes several files one after another, while the background loop keeps reloading.
    The loop must never switch to a mix of old and new files, and no slow load of older files may
    finish after the Apply click's and switch the service back (both seen in CI as a flaky
    `rules_version` on /healthz)."""
    from leadflow.rules import dir_version

    svc, path = service(tmp_path)
    proposals, whole = proposal_dirs(tmp_path, path.parent, 8)
    assert svc.reload_rules() is True
    stop, seen, errors = threading.Event(), set(), []
    background = reloading(svc, seen, errors, stop)
    try:
        for directory in proposals:
            with svc.store.transaction():
                pid = svc.store.add_proposal(str(directory), svc.clock(), {"rules_version": dir_version(str(path.parent))})
            status, message = svc.apply_proposal(pid, "U0MGR0001")
            assert status == "done", message
            assert svc.pipeline.version == dir_version(str(directory)) == dir_version(str(path.parent))
    finally:
        stop.set()
        background.join()
    assert errors == [] and svc.rule_problems == []
    assert seen <= whole  # never a mix of two proposals' files


def test_files_written_by_another_process_while_loading_wait_for_the_next_pass(tmp_path):
    """`rules tune --apply` or another instance writes the files without this service's lock: a load
    that saw them change under it is dropped, and the next pass loads the whole set."""
    from leadflow.rules import dir_version, overlay_rule_files

    svc, path = service(tmp_path)
    proposals, whole = proposal_dirs(tmp_path, path.parent, 8)
    assert svc.reload_rules() is True
    stop, seen, errors = threading.Event(), set(), []
    background = reloading(svc, seen, errors, stop)
    try:
        for directory in proposals:
            assert overlay_rule_files(str(directory), str(path.parent), dir_version(str(path.parent)))[0] == "done"
    finally:
        stop.set()
        background.join()
    assert errors == [] and svc.rule_problems == []
    assert seen <= whole
    svc.reload_rules()
    assert svc.pipeline.version == dir_version(str(proposals[-1]))


HALF_WRITER = """
import pathlib, sys, time
from leadflow.rules import rule_dir_lock
live, proposal = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with rule_dir_lock(str(live), exclusive=True):
    (live / "rules.yaml").write_bytes((proposal / "rules.yaml").read_bytes())
    print("half", flush=True)
    time.sleep(1.0)  # long enough for any load that does not wait to read the half-written set
    (live / "tuning.yaml").write_bytes((proposal / "tuning.yaml").read_bytes())
"""


def test_a_reload_waits_for_another_process_writing_under_the_directory_lock(tmp_path):
    """Another process holds the directory's lock while it has written one file of two: the reload
    waits for the whole set instead of switching to a mix no one wrote."""
    from leadflow.rules import dir_version

    svc, path = service(tmp_path)
    proposals, _ = proposal_dirs(tmp_path, path.parent, 1)
    assert svc.reload_rules() is True
    writer = subprocess.Popen([sys.executable, "-c", HALF_WRITER, str(path.parent), str(proposals[0])],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "half"
        svc.reload_rules()
    finally:
        assert writer.wait(timeout=60) == 0
    assert svc.pipeline.version == dir_version(str(proposals[0])) == dir_version(str(path.parent))
