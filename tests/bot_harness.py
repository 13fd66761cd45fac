"""Start the real service (uvicorn on a free loopback port) against the Slack fake, and talk to it
the way Slack and webhook callers do: real HTTP, real signatures."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import uvicorn

from leadflow.bots.asgi import build_asgi, build_service
from leadflow.bots.config import Settings

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-0000-leadflow"
WEBHOOK_TOKEN = "hook-token-123"

RULES = """\
leadflow: 1
events:
  demo_requested: demo form
  page_view: a page view
scoring:
  fit:
    - id: senior
      when: { title: { matches: "(?i)\\\\b(vp|director)\\\\b" } }
      points: 30
  engagement:
    - id: demo
      on: demo_requested
      points: 40
bant:
  budget: { when: { budget: { at_least: 10000 } } }
  authority: { when: { title: { matches: "(?i)vp|director" } } }
  need: { when: { event: demo_requested } }
stages:
  mql:
    when: { score: { at_least: 50 } }
  sql:
    when: { all: [ { bant: { at_least: 3 } }, { event: demo_requested } ] }
reps:
  - { id: alice, name: Alice, slack: U0ALICE01, weight: 2, capacity: 5 }
  - { id: bob, name: Bob, slack: U0BOB0001, weight: 1, capacity: 5 }
  - { id: cara, name: Cara, slack: U0CARA001, away: true }
routing:
  - { when: { country: DE }, pool: [cara] }
  - { pool: [alice, bob] }
fallback: { channel: "C0QUEUE01" }
sla:
  accept_within: 4h
  remind_at: 50%
  on_timeout: reassign
  escalate_after: 2
  escalate_to: "C0MANAGER"
feedback:
  reject_reasons:
    - { id: no_budget, label: "No budget" }
    - { id: student, label: "Student", then: disqualify }
    - { id: not_now, label: "Not now", then: { nurture: recycle } }
    - { id: wrong_rep, label: "Wrong territory", then: reassign }
managers: [U0MGR0001]
"""
# the same desk with Slack channel names instead of ids for the queue and the managers
NAMED = RULES.replace('fallback: { channel: "C0QUEUE01" }', 'fallback: { channel: "#sales-queue" }') \
             .replace('escalate_to: "C0MANAGER"', 'escalate_to: "#sales-managers"')


class Clock:
    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


class Service:
    """A running `leadflow serve` app with its settings, service object and base URL."""

    def __init__(self, tmp: Path, fake, clock: Clock | None = None, rules: str = RULES, run_worker: bool = True,  # noqa: ANN001
                 db: str | None = None, **settings):
        rules_dir = tmp / "rules"
        rules_dir.mkdir(exist_ok=True)
        (rules_dir / "rules.yaml").write_text(rules)
        self.settings = Settings(db=db or str(tmp / "lf.db"), rules=str(rules_dir), bot_token=TOKEN,
                                 signing_secret=SECRET, slack_api_url=fake.url if fake else None,
                                 webhook_token=WEBHOOK_TOKEN, **settings)
        if fake is None:
            self.settings.bot_token = self.settings.signing_secret = None
        self.clock = clock or time.time
        self.console: list[str] = []
        self.service, client = build_service(self.settings, clock=self.clock, console=_Lines(self.console))
        self.app = build_asgi(self.settings, self.service, client, run_worker=run_worker, interval=0.05)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Service":
        self.thread.start()
        deadline = time.time() + 10
        while not (self.server.started and self.server.servers):
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.service.store.close()

    def drain(self, timeout: float = 15.0, horizon: float | None = None) -> None:
        """Let the worker run until nothing is due: no outbox row pending or sending that falls due
        within `horizon` seconds of the service's clock (30 s on the wall clock, so a Retry-After wait
        is sat out; 0 on a manual clock). Call it before asserting that something did NOT happen."""
        if horizon is None:
            horizon = 30.0 if self.clock is time.time else 0.0
        deadline = time.time() + timeout
        while True:
            self.service.wake.set()
            limit = self.clock() + horizon
            busy = [r["key"] for r in self.service.store.outbox_rows(("pending", "sending"), 1000)
                    if r["status"] == "sending" or r["next_at"] <= limit]
            if not busy:
                return
            if time.time() > deadline:
                raise AssertionError(f"the worker did not drain: {busy}")
            time.sleep(0.02)

    # -- callers ------------------------------------------------------------------------------------
    def send_events(self, events, token: str | None = WEBHOOK_TOKEN, **kw) -> httpx.Response:  # noqa: ANN001
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/v1/events", content=json.dumps(events), headers=headers, **kw)

    def health(self) -> dict:
        """GET /healthz with the webhook token: the details (without credentials it says only ok)."""
        return self.http.get("/healthz", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}).json()

    def slack(self, body: bytes, content_type: str, ts: int | None = None, secret: str = SECRET,
              headers: dict | None = None) -> httpx.Response:
        ts = int(time.time()) if ts is None else ts
        signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        h = {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature, "Content-Type": content_type}
        h.update(headers or {})
        return self.http.post("/slack/events", content=body, headers=h)

    def interactive(self, payload: dict, **kw) -> httpx.Response:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self.slack(body, "application/x-www-form-urlencoded", **kw)

    def command(self, text: str, user: str, **kw) -> httpx.Response:
        body = urllib.parse.urlencode({"command": "/leadflow", "text": text, "user_id": user, "channel_id": "C0STATS01",
                                       "team_id": "T0TEAM001", "response_url": "http://127.0.0.1:9/unused",
                                       "trigger_id": "13345224609.738474920.8088930838d88f008e0"}).encode()
        return self.slack(body, "application/x-www-form-urlencoded", **kw)

    def event(self, event: dict, event_id: str, **kw) -> httpx.Response:
        body = json.dumps({"type": "event_callback", "team_id": "T0TEAM001", "api_app_id": "A0APP0001",
                           "event": event, "event_id": event_id, "event_time": int(time.time())}).encode()
        return self.slack(body, "application/json", **kw)


class _Lines:
    def __init__(self, out: list):
        self.out = out

    def write(self, text: str) -> None:
        if text.strip():
            self.out.append(text.strip())

    def flush(self) -> None:
        return None


def click_payload(action_id: str, value: str, user: str, card: dict) -> dict:
    """A block_actions payload built from a card the fake recorded (as Slack would send it)."""
    return {"type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM001"},
            "api_app_id": "A0APP0001", "token": "legacy", "team": {"id": "T0TEAM001"},
            "container": {"type": "message", "message_ts": card["ts"], "channel_id": card["channel"]},
            "channel": {"id": card["channel"]}, "message": {"ts": card["ts"]}, "trigger_id": "trigger-123",
            "response_url": "http://127.0.0.1:9/unused",
            "actions": [{"action_id": action_id, "block_id": "decide", "value": value, "type": "button",
                         "action_ts": str(time.time())}]}


def sql_events(lead: str, country: str = "US", at: str = "2026-11-02T09:00:00Z") -> list[dict]:
    return [{"id": f"{lead}-1", "lead": lead, "type": "lead_updated", "at": at,
             "data": {"name": f"Ann {lead}", "title": "VP Sales", "budget": 20000, "country": country,
                      "email": f"{lead}@acme.example", "company": "Acme"}},
            {"id": f"{lead}-2", "lead": lead, "type": "demo_requested", "at": at, "data": {}}]


def load_lead_events(prefix: str, i: int) -> tuple[str, list[dict]]:
    """Lead number i of a load test, by kind (i % 3): an SQL for a rep, an SQL for the fallback channel
    (country DE), or an intern who stays new; its id and events, all at one time."""
    lead, kind = f"{prefix}{i:04d}", i % 3
    at = f"2026-11-02T{9 + i % 8:02d}:{i % 60:02d}:00Z"
    title = "Intern" if kind == 2 else "VP Sales"
    events = [{"id": f"{lead}-1", "lead": lead, "type": "lead_updated", "at": at,
               "data": {"name": f"Ann {lead}", "title": title, "budget": 20000, "country": "DE" if kind == 1 else "US",
                        "email": f"{lead.lower()}@acme.example", "company": "Acme"}},
              {"id": f"{lead}-2", "lead": lead, "type": "page_view", "at": at, "data": {"url": "/pricing"}}]
    if kind != 2:
        events.append({"id": f"{lead}-3", "lead": lead, "type": "demo_requested", "at": at, "data": {}})
    return lead, events
