"""Several instances on one PostgreSQL database: two real `leadflow serve` processes and one
`leadflow worker`, started by the shipped command on a database of the test's own.

- Every instance is listed in every /healthz with the rule version it runs, and the versions are said
  to differ while they do; `leadflow stats --by rules_version` slices by the version that made each
  decision; an instance that stops cleanly leaves the list.
- Under load, with each lead's events spread over both serves (each event waits for the answer to
  the one before it, as a sender behind a load balancer does) and each serve SIGKILLed once and
  restarted: every acknowledged event is stored once, each lead ends as a single-process ingest of
  the same events in the same order leaves it, and every SQL gets one assignment and one Slack card.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from leadflow.store import Store
from tests.bot_harness import RULES, SECRET, TOKEN, load_lead_events
from tests.leadflow_cli import ROOT, clean_env, leadflow, leadflow_command
from tests.servers import KillableServe
from tests.slack_fake import SlackFake

HOOK_SECRET = "multi-instance-hook-secret"
COMPARED = ("stage", "score", "fit", "engagement", "attrs", "bant", "disqualified", "tallies", "counts")


def signed(body: bytes) -> dict[str, str]:
    """The webhook's HMAC headers for this body, worked out here as a caller does (not by leadflow)."""
    ts = str(int(time.time()))
    return {"X-Leadflow-Timestamp": ts,
            "X-Leadflow-Signature": "sha256=" + hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + body,
                                                         hashlib.sha256).hexdigest()}


def health(serve: KillableServe) -> dict:
    """GET /healthz with credentials: the details, instances included."""
    r = httpx.get(f"http://127.0.0.1:{serve.port}/healthz", headers=signed(b""), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def rules_dir(tmp: Path, name: str, text: str) -> Path:
    directory = tmp / name
    directory.mkdir()
    (directory / "rules.yaml").write_text(text)
    return directory


class Worker:
    """The real `leadflow worker` process (stopped cleanly, with SIGTERM)."""

    def __init__(self, db: str, rules: Path, env: dict):
        self.proc = subprocess.Popen(leadflow_command("--db", db, "--rules", rules, "worker"), cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=20)


def until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `check` until it gives a true value (something that must come to be, never an absence)."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def stop_all(*instances: KillableServe | Worker) -> None:
    for instance in instances:
        instance.stop()


# ---- rule versions across instances ---------------------------------------------------------------

def test_healthz_lists_every_instance_with_its_rules_version_and_stats_slice_by_version(tmp_path, pg_url):
    env = clean_env(LEADFLOW_WEBHOOK_SECRET=HOOK_SECRET)
    old, new = rules_dir(tmp_path, "old", RULES), rules_dir(tmp_path, "new", RULES.replace("at_least: 50",
                                                                                          "at_least: 45"))
    a, b = KillableServe(pg_url, old, env), KillableServe(pg_url, new, env)
    worker = None
    try:
        a.start()
        b.start()
        worker = Worker(pg_url, old, env)
        seen = until("three live instances", lambda: (h := health(a)) and len(h["instances"]) == 3 and h)
        mine, theirs = seen["rules_version"], health(b)["rules_version"]
        assert mine != theirs and seen["versions_differ"] is True and seen["rules_versions"] == sorted([mine, theirs])
        assert sorted((i["role"], i["rules_version"]) for i in seen["instances"]) == \
            sorted([("serve", mine), ("serve", theirs), ("worker", mine)])
        assert seen["instance"] in {i["id"] for i in seen["instances"]}
        # one lead decided by each version; the stats slice them apart
        for serve, lead in ((a, "x"), (b, "y")):
            for event in [{"id": f"{lead}-1", "lead": lead, "type": "lead_updated", "at": "2026-11-02T09:00:00Z",
                           "data": {"title": "VP Sales", "budget": 20000}},
                          {"id": f"{lead}-2", "lead": lead, "type": "demo_requested", "at": "2026-11-02T09:01:00Z",
                           "data": {}}]:
                body = json.dumps(event).encode()
                r = httpx.post(f"http://127.0.0.1:{serve.port}/v1/events", content=body, headers=signed(body))
                assert r.status_code == 200 and r.json()["status"] == "applied", r.text
        # a one-pass worker on the same URL: it works, and it is off the list again when it exits
        once = json.loads(leadflow("--db", pg_url, "--rules", old, "worker", "--once", "--json", env=env,
                                   check=True).stdout)
        assert set(once) >= {"routed", "delivered"}
        assert len(health(a)["instances"]) == 3
        stats = json.loads(leadflow("--db", pg_url, "--rules", old, "stats", "--by", "rules_version", "--json",
                                    env=env, check=True).stdout)
        assert {s["value"]: s["stages"].get("sql") for s in stats["by"]} == {mine: 1, theirs: 1}
        # the new version reaches the old instances' directory: all three reload and the list agrees again
        (old / "rules.yaml").write_text((new / "rules.yaml").read_text())
        agreed = until("one version everywhere", lambda: (h := health(a)) and not h["versions_differ"] and h)
        assert agreed["rules_versions"] == [theirs] and len(agreed["instances"]) == 3
        # a clean stop takes an instance off the list (it has exited: no waiting for it to age out)
        assert worker.stop() == 0
        b.stop()
        assert [i["role"] for i in health(a)["instances"]] == ["serve"]
    finally:
        stop_all(a, b, *([worker] if worker else []))
    store = Store(pg_url)
    try:
        assert store.count("instances") == 0  # every instance stopped cleanly and removed itself
    finally:
        store.close()


# ---- kill -9 of each serve under load -----------------------------------------------------------------

def lead_events(i: int) -> tuple[str, list[dict]]:
    """Three kinds of lead: SQLs for a rep, SQLs for the fallback channel (DE: its rep is away), and
    interns who stay new. The last event (a lower budget) comes after the demo: applied before it,
    the lead would miss a BANT criterion and never be an SQL, so the order within a lead shows."""
    lead, events = load_lead_events("M", i)
    events.append({"id": f"{lead}-{len(events) + 1}", "lead": lead, "type": "lead_updated", "at": events[0]["at"],
                   "data": {"budget": 5000}})
    return lead, events


@dataclass
class Load:
    """What the senders share with the test: the answers, and a gate that holds them two thirds in
    until the second kill is due (so that it lands mid-load however slow the first restart was)."""
    ports: list[int]
    acked: list = field(default_factory=list)  # (event, index of the serve that answered it)
    failures: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    hold_at: float = float("inf")


def send_all(load: Load, leads: list[tuple[int, list[dict]]], pace: float) -> None:
    """Post each lead's events in order, each only once the one before it was answered: in rounds (the
    first event of every lead, then the second...), so that each lead's events span the whole load;
    event k of lead n goes to serve (n + k) % 2, and what gets no answer to the other serve, as a load
    balancer would send it."""
    rounds = max(len(events) for _, events in leads)
    with httpx.Client(timeout=10) as client:
        for k in range(rounds):
            for n, event in ((n, events[k]) for n, events in leads if k < len(events)):
                target = (n + k) % 2
                if len(load.acked) >= load.hold_at:
                    load.gate.wait(30)
                while not load.done.is_set():
                    body = json.dumps(event).encode()
                    try:
                        r = client.post(f"http://127.0.0.1:{load.ports[target]}/v1/events", content=body,
                                        headers=signed(body))
                    except httpx.TransportError:  # that serve is down: the other one takes it
                        target = 1 - target
                        time.sleep(0.01)
                        continue
                    if r.status_code >= 500:
                        target = 1 - target
                        time.sleep(0.01)
                        continue
                    if r.status_code == 200 and r.json().get("status") in ("applied", "duplicate"):
                        load.acked.append((event, target))
                    else:
                        load.failures.append((event["id"], r.status_code, r.text))
                    break
                time.sleep(pace)  # a steady stream rather than a burst


def test_two_serves_and_a_worker_on_one_database_survive_kill_9_of_each_serve(tmp_path, pg_url):
    plan = [lead_events(i) for i in range(90)]
    total = sum(len(events) for _, events in plan)
    rules = rules_dir(tmp_path, "rules", RULES.replace("capacity: 5", "capacity: 12"))
    with SlackFake() as fake:
        env = clean_env(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, LEADFLOW_SLACK_API_URL=fake.url,
                        LEADFLOW_WEBHOOK_SECRET=HOOK_SECRET)
        serves = [KillableServe(pg_url, rules, env), KillableServe(pg_url, rules, env)]
        worker = None
        load = Load([s.port for s in serves], hold_at=total * 2 / 3)
        numbered = [(n, events) for n, (_, events) in enumerate(plan)]
        senders = [threading.Thread(target=send_all, args=(load, numbered[k::6], 0.03)) for k in range(6)]
        killed: list[str] = []

        def kill_and_restart(victim: KillableServe) -> None:
            killed.append(health(victim)["instance"])
            victim.kill()
            victim.start()  # the other serve takes the load meanwhile

        try:
            for serve in serves:
                serve.start()
            worker = Worker(pg_url, rules, env)
            until("both serves and the worker listed", lambda: len(health(serves[0])["instances"]) == 3)
            started = time.time()
            for t in senders:
                t.start()
            deadline = started + 40
            opened_at = 0
            while any(t.is_alive() for t in senders):
                assert time.time() < deadline, f"senders did not finish; {len(load.acked)} of {total} acknowledged"
                if not killed and len(load.acked) >= total / 3:
                    kill_and_restart(serves[0])
                elif len(killed) == 1 and not load.gate.is_set() and len(load.acked) >= load.hold_at:
                    opened_at = len(load.acked)
                    load.gate.set()  # the held senders all post at once ...
                elif len(killed) == 1 and load.gate.is_set() and len(load.acked) >= opened_at + 3:
                    kill_and_restart(serves[1])  # ... and the other serve dies with some of them in flight
                time.sleep(0.01)
            load_took = time.time() - started

            def drained() -> bool:
                store = Store(pg_url)
                try:
                    return not store.outbox_rows(("pending", "sending"))
                finally:
                    store.close()

            until("the outbox drained", drained, timeout=30)
            listed = {i["id"]: i["role"] for i in health(serves[1])["instances"]}
            restarted = {health(s)["instance"] for s in serves}
        finally:
            load.done.set()
            load.gate.set()
            for t in senders:
                t.join(timeout=10)
            codes = [worker.stop()] if worker else []
            stop_all(*serves)
        cards = collections.Counter(
            (c["args"].get("metadata") or {}).get("event_payload", {}).get("key")
            for c in fake.of("chat.postMessage") if c["args"].get("blocks") and not c.get("lost_answer"))

    acked = load.acked
    assert load.failures == [] and codes == [0]
    assert [s.kills for s in serves] == [1, 1] and len(killed) == 2
    # the restarted serves and the worker are listed (a killed one too, until it has not been seen for LIVE s)
    assert sorted(role for i, role in listed.items() if i not in killed) == ["serve", "serve", "worker"]
    assert restarted <= set(listed) and not restarted & set(killed)
    sent = [e["id"] for _, events in plan for e in events]
    assert sorted({e["id"] for e, _ in acked}) == sorted(sent)  # every event was acknowledged in the end
    by_serve = collections.defaultdict(set)
    for event, target in acked:
        by_serve[event["lead"]].add(target)
    both = sum(len(targets) == 2 for targets in by_serve.values())
    assert both >= len(plan) * 2 / 3  # most leads reached both serves (not those whose serve was restarting)
    # the single-process reference: the acknowledged events, each lead's in the order they were sent
    clean = tmp_path / "clean.db"
    first = {}
    for event, _ in acked:
        first.setdefault(event["id"], event)
    log = tmp_path / "acked.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in first.values()))
    leadflow("--db", clean, "--rules", rules, "ingest", log, "--json", env=clean_env(), check=True)

    served, reference = Store(pg_url), Store(str(clean))
    try:
        stored = collections.Counter(row[0] for row in served.sql("SELECT id FROM events"))
        assert stored == collections.Counter(sent)  # each acknowledged event exactly once
        assert served.dead_letters() == []
        for lead, _ in plan:
            got, want = served.load_state(lead), reference.load_state(lead)
            assert {k: getattr(got, k) for k in COMPARED} == {k: getattr(want, k) for k in COMPARED}, lead
        sqls = sorted(lead for lead, _ in plan if reference.load_state(lead).stage == "sql")
        assert len(sqls) == 60
        assignments = served.assignments()
        assert sorted(a["lead"] for a in assignments) == sqls  # one assignment per SQL
        assert set(cards) == {f"card:{a['id']}" for a in assignments} and set(cards.values()) == {1}  # one card each
        assert any(a["rep"] is None for a in assignments)  # some went to the fallback channel
        assert sorted(r[0] for r in served.sql("SELECT id FROM instances")) == sorted(killed)  # clean stops left
    finally:
        served.close()
        reference.close()
    print({"events": total, "load_s": round(load_took, 1), "leads_on_both": both, "assignments": len(assignments),
           "cards": len(cards)})
