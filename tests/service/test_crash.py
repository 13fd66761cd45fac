"""kill -9 of the real `leadflow serve` process, at random moments, under sustained webhook load.

Senders post one event per request, each lead's events in order, and resend what was not answered
(as any at-least-once integration does). A killer SIGKILLs the service at seeded random moments and
also from inside the Slack fake while a card to a channel is in flight: once after "Slack" took the
card (the answer is lost), once before the request reached it. After the last restart the service
drains its work. Then, whatever the kills hit:

- every acknowledged event is stored exactly once, and nothing became a dead letter;
- every lead's state equals a clean `leadflow ingest` of the same events into a fresh database;
- every assignment has exactly one card in Slack.

The CI run is small; `python -m pytest -m slow tests/test_crash.py -s` runs the large one.
"""
from __future__ import annotations

import collections
import json
import random
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from leadflow.store import Store
from tests.bot_harness import RULES, SECRET, TOKEN, WEBHOOK_TOKEN, load_lead_events
from tests.leadflow_cli import clean_env, leadflow
from tests.servers import KillableServe
from tests.slack_fake import SlackFake

QUEUE = "#sales-queue"
CRASH_RULES = RULES.replace('fallback: { channel: "C0QUEUE01" }', f'fallback: {{ channel: "{QUEUE}" }}')
COMPARED = ("stage", "score", "fit", "engagement", "attrs", "bant", "disqualified", "tallies", "counts")


def lead_events(i: int) -> tuple[str, list[dict]]:
    """Three kinds of lead: SQLs for a rep, SQLs for the fallback channel (DE), and leads that stay new."""
    return load_lead_events("K", i)


class CrashFake(SlackFake):
    """The Slack fake, plus a hook that runs while a channel card is in flight (kills the service)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: list = []  # callables: "after" (Slack took it) or "before" (it never arrived)

    def handle(self, method: str, raw: bytes, headers: dict) -> tuple[int, dict, dict]:
        is_channel_card = method == "chat.postMessage" and _is_channel_card(raw, headers)
        if is_channel_card and self.in_flight and self.in_flight[0][0] == "before":
            _, kill = self.in_flight.pop(0)
            kill()
            return 500, {"ok": False, "error": "internal_error"}, {}
        answer = super().handle(method, raw, headers)
        if is_channel_card and self.in_flight and answer[0] == 200:
            _, kill = self.in_flight.pop(0)
            kill()
        return answer


def _is_channel_card(raw: bytes, headers: dict) -> bool:
    if "json" in headers.get("Content-Type", ""):
        args = json.loads(raw or b"{}")
    else:
        args = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
    meta = args.get("metadata") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    key = (meta.get("event_payload") or {}).get("key", "")
    return key.startswith("card:") and not str(args.get("channel", "")).startswith("D")


class Serve(KillableServe):
    """The real `leadflow serve` with Slack, restarted on the same port after every kill."""

    def __init__(self, tmp: Path, fake: SlackFake):
        rules = tmp / "rules"
        rules.mkdir()
        (rules / "rules.yaml").write_text(CRASH_RULES.replace("capacity: 5", "capacity: 8"))
        super().__init__(tmp / "lf.db", rules, clean_env(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET,
                                                          LEADFLOW_SLACK_API_URL=fake.url,
                                                          LEADFLOW_WEBHOOK_TOKEN=WEBHOOK_TOKEN))


class Killer:
    """Kills the service when the count of acknowledged events reaches the next seeded point.

    It runs in the sender's thread right after an acknowledgement, so each kill lands on a running
    service in the middle of the load; a check from another thread on a timer could come too late
    when the server finishes the last fifth of the load between two looks."""

    def __init__(self, serve: KillableServe, kill_at: list[int]):
        self.serve, self.kill_at, self.lock, self.acked = serve, kill_at, threading.Lock(), 0

    def acknowledged(self) -> None:
        with self.lock:
            self.acked += 1
            if self.kill_at and self.acked >= self.kill_at[0] and self.serve.kill():
                self.kill_at.pop(0)  # a kill that found the service already down is tried again


def send_all(url: str, leads: list[list[dict]], acked: list, failures: list, done: threading.Event,
             killer: Killer) -> None:
    """Post each event until it is answered (a lost answer means: send it again)."""
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}) as client:
        for events in leads:
            for event in events:
                while not done.is_set():
                    try:
                        r = client.post("/v1/events", content=json.dumps(event))
                    except httpx.TransportError:
                        time.sleep(0.05)  # the service is down: try again when it is back
                        continue
                    if r.status_code >= 500:
                        time.sleep(0.05)
                        continue
                    body = r.json()
                    if r.status_code == 200 and body.get("status") in ("applied", "duplicate"):
                        acked.append(event["id"])
                        killer.acknowledged()
                    else:
                        failures.append((event["id"], r.status_code, body))
                    break


def drained(db: Path) -> bool:
    store = Store(str(db))
    try:
        open_rows = [r for r in store.outbox() if r["status"] in ("pending", "sending")]
        return not open_rows
    finally:
        store.close()


def run(tmp: Path, n_leads: int, random_kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    plan = [lead_events(i) for i in range(n_leads)]
    senders = 4
    with CrashFake() as fake:
        serve = Serve(tmp, fake)
        fake.in_flight = [("after", serve.kill), ("before", serve.kill)]
        serve.start()
        acked: list = []
        failures: list = []
        done = threading.Event()
        # the random kills land at random points of the load (by events acknowledged), not of the clock:
        # a faster server must not finish before them
        total = sum(len(events) for _, events in plan)
        killer = Killer(serve, sorted(rng.randint(1, total * 4 // 5) for _ in range(random_kills)))
        threads = [threading.Thread(target=send_all, args=(f"http://127.0.0.1:{serve.port}",
                                                           [ev for _, ev in plan[k::senders]], acked, failures, done,
                                                           killer))
                   for k in range(senders)]
        for t in threads:
            t.start()
        deadline = time.time() + 120 + n_leads
        try:
            while any(t.is_alive() for t in threads):
                assert time.time() < deadline, f"senders did not finish; {len(acked)} acknowledged"
                if serve.proc.poll() is not None:
                    serve.start()  # killed (by the killer or from inside Slack): come back
                time.sleep(0.02)
            while not drained(serve.db):  # let the last instance finish routing and delivering
                assert time.time() < deadline, "the outbox did not drain"
                if serve.proc.poll() is not None:
                    serve.start()
                time.sleep(0.1)
        finally:
            done.set()
            for t in threads:
                t.join(timeout=10)
            serve.stop()
        cards = collections.Counter(
            (c["args"].get("metadata") or {}).get("event_payload", {}).get("key")
            for c in fake.of("chat.postMessage") if c["args"].get("blocks") and not c.get("lost_answer"))
    clean = tmp / "clean.db"
    log = tmp / "events.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for _, events in plan for e in events))
    leadflow("--db", clean, "--rules", serve.rules, "ingest", log, "--json", env=serve.env, check=True)
    assert killer.kill_at == [], "some random kills did not land"
    return {"plan": plan, "acked": acked, "failures": failures, "cards": cards, "kills": serve.kills,
            "db": serve.db, "clean": clean}


def check(result: dict) -> dict:
    plan, served, clean = result["plan"], Store(str(result["db"])), Store(str(result["clean"]))
    try:
        sent = [e["id"] for _, events in plan for e in events]
        assert result["failures"] == []
        assert sorted(set(result["acked"])) == sorted(sent)  # every event was acknowledged in the end
        stored = collections.Counter(row["id"] for row in served.db.query("SELECT id FROM events"))
        assert stored == collections.Counter(sent)  # each exactly once
        assert served.dead_letters() == []
        for lead, _ in plan:
            got, want = served.load_state(lead), clean.load_state(lead)
            assert {k: getattr(got, k) for k in COMPARED} == {k: getattr(want, k) for k in COMPARED}, lead
        assignments = served.assignments()
        sqls = [lead for lead, _ in plan if clean.load_state(lead).stage == "sql"]
        assert sorted(a["lead"] for a in assignments) == sorted(sqls)  # one assignment per SQL
        keys = {f"card:{a['id']}" for a in assignments}
        assert set(result["cards"]) == keys and set(result["cards"].values()) == {1}  # one card each
        to_channel = [a for a in assignments if a["rep"] is None]
        assert to_channel, "no card went to the fallback channel"
        return {"events": len(sent), "kills": result["kills"], "assignments": len(assignments),
                "channel_cards": len(to_channel)}
    finally:
        served.close()
        clean.close()


def test_kill_9_under_load_small(tmp_path):
    figures = check(run(tmp_path, n_leads=45, random_kills=3, seed=9))
    assert figures["kills"] >= 4  # every random kill lands, and at least one of the two in-flight ones
    print(figures)


@pytest.mark.slow
def test_kill_9_under_load_large(tmp_path):
    figures = check(run(tmp_path, n_leads=600, random_kills=25, seed=2026))
    print(figures)
