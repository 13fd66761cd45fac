"""The CRM webhooks across kill -9 of the real `leadflow serve`: every stage change and assignment
reaches a loopback receiver, once per delivery id, signed, however the kills fall.

Senders post each lead's events in order and resend what was not answered. The service is
SIGKILLed at seeded random moments and twice from inside the receiver while a webhook is in flight
(the request arrived, its answer never leaves): such a delivery must come again with the same id and
the same body. After the last restart the service drains its outbox. Then the receiver's distinct
delivery ids are exactly the changes, worked out by hand from the rules and the events (and equal to
the stage history the database holds), nothing is missing, and every request carried a valid
signature (checked with hmac here). Repeats on the wire are allowed only as copies of one id.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import json
import random
import sqlite3
import threading
import time
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import httpx

from tests.bot_harness import RULES, WEBHOOK_TOKEN
from tests.leadflow_cli import clean_env
from tests.servers import KillableServe

SECRET = "crash-hook-secret"
HOOK_RULES = RULES + """\
webhooks:
  - { name: crm, url_env: CRM_HOOK_URL, secret_env: CRM_HOOK_SECRET, kinds: [stage_changed, sql_assigned] }
"""


def lead_events(i: int) -> tuple[str, list[dict]]:
    """kind 0: a VP with budget who asks for a demo (SQL, for a rep); kind 1: the same in DE (SQL, for
    the fallback channel: the DE rep is away); kind 2: an intern who only views a page (stays new)."""
    lead, kind = f"W{i:04d}", i % 3
    at = f"2026-11-02T{9 + i % 8:02d}:{i % 60:02d}:00Z"
    data = {"title": "Intern" if kind == 2 else "VP Sales", "budget": 20000, "country": "DE" if kind == 1 else "US"}
    events = [{"id": f"{lead}-1", "lead": lead, "type": "lead_updated", "at": at, "data": data},
              {"id": f"{lead}-2", "lead": lead, "type": "page_view", "at": at, "data": {"url": "/pricing"}}]
    if kind != 2:
        events.append({"id": f"{lead}-3", "lead": lead, "type": "demo_requested", "at": at, "data": {}})
    return lead, events


def expected_changes(plan: list[tuple[str, list[dict]]]) -> collections.Counter:
    """By hand from the rules: every lead enters `new`; the demo gives a VP 30 + 40 points (MQL at 50)
    and three BANT criteria (SQL), so an SQL lead goes new -> mql -> sql and is assigned once."""
    out: collections.Counter = collections.Counter()
    for lead, events in plan:
        out[(lead, "stage_changed", None, "new")] += 1
        if any(e["type"] == "demo_requested" for e in events):
            out[(lead, "stage_changed", "new", "mql")] += 1
            out[(lead, "stage_changed", "mql", "sql")] += 1
            out[(lead, "sql_assigned", None, None)] += 1
    return out


class CrashReceiver:
    """A webhook receiver that keeps every request; `in_flight` callables run while a request is held
    (they kill the service), and that request is then never answered."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.in_flight: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:  # the sender was killed halfway through writing it: no request arrived
                    self.close_connection = True
                    return
                with receiver.lock:
                    receiver.received.append((dict(self.headers), body))
                    kill = receiver.in_flight.pop(0) if receiver.in_flight and len(receiver.received) % 7 == 0 \
                        else None
                if kill:
                    kill()  # the sender dies holding the request: no answer ever reaches it
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Serve(KillableServe):
    """The real `leadflow serve` posting to the CRM hook, restarted on the same port after every kill."""

    def __init__(self, tmp: Path, hook_url: str):
        rules = tmp / "rules"
        rules.mkdir()
        (rules / "rules.yaml").write_text(HOOK_RULES.replace("capacity: 5", "capacity: 50"))
        super().__init__(tmp / "lf.db", rules, clean_env(LEADFLOW_WEBHOOK_TOKEN=WEBHOOK_TOKEN, CRM_HOOK_URL=hook_url,
                                                          CRM_HOOK_SECRET=SECRET))


def send_all(url: str, leads: list[list[dict]], done: threading.Event) -> None:
    """Post each event until it is answered (a lost answer means: send it again)."""
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}) as client:
        for events in leads:
            for event in events:
                while not done.is_set():
                    try:
                        r = client.post("/v1/events", content=json.dumps(event))
                    except httpx.TransportError:
                        time.sleep(0.05)
                        continue
                    if r.status_code < 500:
                        assert r.status_code == 200, r.text
                        break
                    time.sleep(0.05)


def open_hooks(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()[0]


def signed_ok(headers: dict, body: bytes) -> bool:
    ts = headers.get("X-Leadflow-Timestamp", "")
    want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return ts.isdigit() and hmac.compare_digest(headers.get("X-Leadflow-Signature", ""), want)


def test_every_change_reaches_the_receiver_once_per_id_across_kill_9(tmp_path):
    rng = random.Random(10)
    plan = [lead_events(i) for i in range(30)]
    receiver = CrashReceiver()
    serve = Serve(tmp_path, receiver.url)
    receiver.in_flight = [serve.kill, serve.kill]
    done = threading.Event()
    senders = [threading.Thread(target=send_all, args=(f"http://127.0.0.1:{serve.port}",
                                                       [ev for _, ev in plan[k::3]], done)) for k in range(3)]
    try:
        serve.start()
        for t in senders:
            t.start()
        kill_at = sorted(time.time() + rng.uniform(0.3, 3.0) for _ in range(3))
        deadline = time.time() + 180
        # until every planned kill has happened too: a fast server may have drained before the last one
        while any(t.is_alive() for t in senders) or open_hooks(serve.db) or kill_at or receiver.in_flight and \
                len(receiver.received) < 7 * 2:
            assert time.time() < deadline, f"not drained; {len(receiver.received)} requests received"
            if serve.proc.poll() is not None:
                serve.start()
            elif kill_at and time.time() >= kill_at[0]:
                kill_at.pop(0)
                serve.kill()
            time.sleep(0.05)
    finally:
        done.set()
        for t in senders:
            t.join(timeout=10)
        serve.stop()
        receiver.close()
    assert serve.kills >= 3 and receiver.in_flight == []  # both in-flight kills happened
    assert all(signed_ok(h, b) for h, b in receiver.received)  # no request without a valid signature
    copies: dict[str, set[bytes]] = collections.defaultdict(set)
    for headers, body in receiver.received:
        copies[headers["X-Leadflow-Delivery"]].add(body)
    assert all(len(bodies) == 1 for bodies in copies.values())  # a repeat is a copy of the same delivery
    assert len(receiver.received) >= len(copies) + 2  # the two held requests came again after the restarts
    got = collections.Counter()
    for (body,) in copies.values():
        b = json.loads(body)
        assert b["delivery_id"] in copies
        got[(b["lead"], b["kind"], b["data"].get("from"), b["data"].get("to"))] += 1
    assert got == expected_changes(plan)  # each change once by id, none missing, none extra
    with closing(sqlite3.connect(serve.db)) as conn:
        history = conn.execute("SELECT count(*) FROM stage_history").fetchone()[0]
        assignments = conn.execute("SELECT count(*) FROM assignments").fetchone()[0]
    assert sum(n for (_, kind, _, _), n in got.items() if kind == "stage_changed") == history
    assert sum(n for (_, kind, _, _), n in got.items() if kind == "sql_assigned") == assignments
    print({"requests": len(receiver.received), "deliveries": len(copies), "kills": serve.kills})
