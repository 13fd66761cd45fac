"""The webhook's group commit in a child process (engine/service/_writer.py): answers only once
committed, nothing lost or doubled when the child dies, the rule version followed, and no child left
behind when the serving process dies."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from leadflow.intake import Intake
from leadflow.rules import load_compiled
from leadflow.service import WriterProcess, WriterUnavailable
from leadflow.store import Store
from tests.bot_harness import RULES, WEBHOOK_TOKEN, Service
from tests.leadflow_cli import clean_env, leadflow_command
from tests.servers import free_port


def _rules(tmp_path: Path, text: str = RULES) -> str:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yaml").write_text(text)
    return str(rules)


def _item(event_id: str, lead: str = "L1", etype: str = "demo_requested", **data) -> str:
    return json.dumps({"id": event_id, "lead": lead, "type": etype, "at": "2026-11-02T09:00:00Z", "data": data})


@pytest.fixture
def started():
    """Writers a test started, closed after it (their children stopped) whatever the test did."""
    writers: list[WriterProcess] = []

    def start(db: str, rules: str, version=None) -> WriterProcess:  # noqa: ANN001
        version = version or (lambda: load_compiled(rules).rules.version)
        writer = WriterProcess(db, rules, Intake(clock=time.time), version)
        writers.append(writer)
        writer.start()
        return writer

    yield start
    for writer in writers:
        writer.close()


def _wait(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_child_applies_each_item_and_answers_once_committed(db_url, tmp_path, started):
    writer = started(db_url, _rules(tmp_path))
    assert writer.alive and writer.pid != os.getpid()
    no_lead = json.dumps({"id": "e2", "type": "demo_requested", "at": "2026-11-02T09:00:00Z"})
    receipts = writer.submit_events([_item("e1"), "{not json", no_lead, _item("e1")]).result(30)
    assert [r.status for r in receipts] == ["applied", "rejected", "rejected", "duplicate"]
    assert receipts[0].event_id == "e1" and receipts[2].field == "lead"
    writer.submit_dead_letter("{broken", "not JSON: at line 1").result(30)
    assert writer.requests == 2 and writer.submitted == 2
    store = Store(db_url)
    try:
        assert [d["event_id"] for d in store.decisions("L1")] == ["e1"]
        reasons = [d["reason"] for d in store.dead_letters()]
        assert "not JSON: at line 1" in reasons and len(reasons) == 3  # two refused items and the body
    finally:
        store.close()
    pid = writer.pid
    writer.close()  # the child finishes and exits (and is waited for)
    assert not writer.alive and not psutil.pid_exists(pid)


def test_a_stage_reached_comes_back_with_the_receipt(tmp_path, started):
    writer = started(str(tmp_path / "lf.db"), _rules(tmp_path))
    receipts = writer.submit_events([_item("u1", etype="lead_updated", title="VP Sales", budget=50000),
                                     _item("d1")]).result(30)
    assert [r.status for r in receipts] == ["applied", "applied"]
    assert receipts[1].stage is not None and receipts[0].stage != receipts[1].stage


def test_a_killed_child_fails_what_it_held_and_is_replaced(tmp_path, started):
    db = str(tmp_path / "lf.db")
    writer = started(db, _rules(tmp_path))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the child cannot begin its transaction: the request stays in flight
    try:
        held = writer.submit_events([_item("k1")])
        first = writer.pid
        psutil.Process(first).kill()
        with pytest.raises(WriterUnavailable):
            held.result(30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _wait(lambda: writer.alive and writer.starts == 2)
    assert writer.pid != first
    # nothing of the held request was committed, so sending it again applies it, once
    assert [r.status for r in writer.submit_events([_item("k1")]).result(30)] == ["applied"]
    assert [r.status for r in writer.submit_events([_item("k1")]).result(30)] == ["duplicate"]


def test_a_child_that_cannot_start_says_why(tmp_path):
    writer = WriterProcess(str(tmp_path / "lf.db"), _rules(tmp_path, "leadflow: 1\nscoring: [\n"), Intake(),
                           lambda: "")
    with pytest.raises(WriterUnavailable, match="could not start"):
        writer.start()
    assert not writer.alive
    with pytest.raises(WriterUnavailable):
        writer.submit_events([_item("x1")])


def test_the_child_follows_the_rule_version_of_the_serving_process(tmp_path, started):
    rules = _rules(tmp_path)
    live = {"version": load_compiled(rules).rules.version}
    writer = started(str(tmp_path / "lf.db"), rules, lambda: live["version"])
    writer.submit_events([_item("v1")]).result(30)
    Path(rules, "rules.yaml").write_text(RULES.replace("points: 40", "points: 45"))
    writer.submit_events([_item("v2")]).result(30)  # the serving process has not switched yet: neither does the child
    live["version"] = load_compiled(rules).rules.version
    writer.submit_events([_item("v3")]).result(30)
    store = Store(str(tmp_path / "lf.db"))
    try:
        versions = {d["event_id"]: d["rules_version"] for d in store.decisions("L1")}
    finally:
        store.close()
    assert versions["v1"] == versions["v2"] != versions["v3"] == live["version"]


def test_the_webhook_answers_503_while_the_writer_restarts_and_then_applies(tmp_path):
    with Service(tmp_path, None) as svc:
        writer = svc.app.state.writer
        blocker = sqlite3.connect(svc.settings.db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            answer: list = []
            sender = threading.Thread(target=lambda: answer.append(svc.send_events(_event("w1"))))
            sender.start()
            _wait(lambda: writer.submitted == 1)
            psutil.Process(writer.pid).kill()
            sender.join(30)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert len(answer) == 1 and answer[0].status_code == 503 and "send them again" in answer[0].json()["error"]
        assert answer[0].headers["retry-after"] == "1"
        _wait(lambda: writer.alive)
        assert svc.health()["writer"] == {"mode": "process", "alive": True}
        assert svc.send_events(_event("w1")).json()["status"] == "applied"


def _event(event_id: str) -> dict:
    return json.loads(_item(event_id))


def test_the_child_exits_when_serve_is_killed(tmp_path):
    """kill -9 of `leadflow serve` leaves no writer process behind (it sees its pipe close)."""
    rules = _rules(tmp_path)
    port = free_port()
    env = clean_env(LEADFLOW_WEBHOOK_TOKEN=WEBHOOK_TOKEN)
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(leadflow_command("--db", tmp_path / "lf.db", "--rules", rules, "serve", "--port", port),
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait(lambda: _healthy(port))  # served only once its writer process is ready
        children = _writers(psutil.Process(proc.pid))
        assert len(children) == 1
        proc.kill()
        proc.wait(30)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [] and gone == children
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthy(port: int) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("writer") == {"mode": "process", "alive": True}


def _writers(parent: psutil.Process) -> list[psutil.Process]:
    """The processes multiprocessing spawned for `parent` (not its resource tracker, if it has one)."""
    return [child for child in parent.children(recursive=True) if "spawn_main" in _cmdline(child)]


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # gone meanwhile
        return ""


def test_a_caller_that_goes_away_does_not_stop_the_answers(tmp_path, started):
    """The webhook's task cancelled while its request is in flight (a client gone, a server shutting
    down) must not cost the answers of everyone after it."""
    import asyncio

    db = str(tmp_path / "lf.db")
    writer = started(db, _rules(tmp_path))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def go_away() -> None:
        task = asyncio.ensure_future(asyncio.wrap_future(writer.submit_events([_item("c1")])))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(go_away())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # the abandoned request was still applied, and what comes after it is answered
    assert [r.status for r in writer.submit_events([_item("c1"), _item("c2")]).result(30)] == ["duplicate", "applied"]
    assert writer.alive


def test_exiting_without_close_does_not_hang(tmp_path):
    """A forced exit (a second Ctrl-C) skips `close`; the child, which ignores SIGTERM, still gets the
    end of its input before multiprocessing waits for it at exit."""
    script = ("import time\n"
              "from leadflow.intake import Intake\n"
              "from leadflow.service import WriterProcess\n"
              f"w = WriterProcess({str(tmp_path / 'lf.db')!r}, {_rules(tmp_path)!r}, Intake(), lambda: '')\n"
              "w.start()\n"
              "print(w.pid, flush=True)\n")
    proc = subprocess.run([*leadflow_command()[:1], "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout)
    _wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 30)


def test_a_child_that_holds_a_request_past_the_deadline_is_replaced(tmp_path):
    """A stuck child (here: waiting on a write lock that is never released, with a long busy timeout)
    is killed once a request has waited past the deadline: that request gets 503, a new child starts."""
    db = str(tmp_path / "lf.db")
    writer = WriterProcess(db, _rules(tmp_path), Intake(clock=time.time), lambda: "", busy_timeout=lambda: 600.0,
                           deadline=2.0)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        first = writer.pid
        with pytest.raises(WriterUnavailable):
            writer.submit_events([_item("h1")]).result(60)
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        _wait(lambda: writer.alive and writer.starts == 2)
        assert [r.status for r in writer.submit_events([_item("h1")]).result(30)] == ["applied"]
    finally:
        writer.close()
