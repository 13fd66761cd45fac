"""Webhook -> Slack card latency, measured against the real `leadflow serve` process.

The service runs as its own process (as in production) with the Slack Web API pointed at the fake.
Leads arrive at a steady rate, two events each (an update, then a demo request that makes the lead an
SQL); the latency is the time from POSTing the SQL-making event to the card's chat.postMessage
reaching the fake. The CI run is short; the full 100 events/s for 30 s run is marked slow:
`python -m pytest -m slow tests/test_latency.py -s` prints the figures quoted in the README.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.bot_harness import RULES, SECRET, TOKEN, WEBHOOK_TOKEN, sql_events
from tests.leadflow_cli import ROOT, clean_env, leadflow_command
from tests.servers import free_port
from tests.slack_fake import SlackFake


def run(tmp: Path, rate: float, seconds: float, flood: int = 0) -> dict:
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES.replace("capacity: 5", "capacity: 100000"))
    port = free_port()
    with SlackFake() as fake:
        env = clean_env(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, LEADFLOW_SLACK_API_URL=fake.url,
                        LEADFLOW_WEBHOOK_TOKEN=WEBHOOK_TOKEN)
        proc = subprocess.Popen(leadflow_command("--db", tmp / "lf.db", "--rules", rules, "serve", "--port", port),
                                cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                  headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
            deadline = time.time() + 20
            while True:
                try:
                    up = client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    up = False  # not listening yet
                if up:
                    break
                if time.time() > deadline:
                    raise RuntimeError(proc.stderr.read().decode() if proc.poll() is not None else "no health")
                time.sleep(0.05)
            if flood:  # sustained rate: one event per request, back to back, then 100 per request
                t0 = time.perf_counter()
                for i in range(flood):
                    event = {"id": f"f{i}", "lead": f"F{i % 500}", "type": "page_view", "at": "2026-11-02T09:00:00Z",
                             "data": {"url": "/pricing"}}
                    assert client.post("/v1/events", content=json.dumps(event)).status_code == 200
                single = flood / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                for b in range(flood // 100):
                    batch = [{"id": f"g{b}-{i}", "lead": f"G{i}", "type": "page_view", "at": "2026-11-02T09:00:00Z",
                              "data": {}} for i in range(100)]
                    assert client.post("/v1/events", content=json.dumps(batch)).status_code == 200
                return {"single_events_per_s": round(single), "batched_events_per_s": round(flood / (time.perf_counter() - t0))}
            sent: dict = {}
            n = int(rate * seconds)
            start = time.perf_counter()
            slow_requests = 0
            for i in range(n):
                due = start + i / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                lead = f"L{i // 2}"
                event = sql_events(lead)[i % 2]
                t0 = time.time()
                r = client.post("/v1/events", content=json.dumps(event))
                assert r.status_code == 200, r.text
                if time.time() - t0 > 0.25:
                    slow_requests += 1
                if i % 2:
                    sent[lead] = t0
            elapsed = time.perf_counter() - start
            cards = fake.wait_for("chat.postMessage", len(sent), timeout=60,
                                  where=lambda c: c["args"].get("blocks"))
            arrived = {}
            for call in cards:
                lead = call["args"]["text"].split()[2]
                assert lead not in arrived, f"two cards for {lead}"
                arrived[lead] = call["at"]
            latencies = sorted((arrived[lead] - t0) * 1000 for lead, t0 in sent.items())
            return {"events": n, "events_per_s_sent": round(n / elapsed, 1), "cards": len(arrived),
                    "p50_ms": round(statistics.median(latencies), 1),
                    "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
                    "max_ms": round(latencies[-1], 1), "slow_requests": slow_requests}
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_latency_small(tmp_path):
    result = run(tmp_path, rate=40, seconds=3)
    print(result)
    assert result["cards"] == 60  # one card per SQL, none lost, none doubled


@pytest.mark.slow
def test_latency_100_events_per_second_for_30_seconds(tmp_path):
    result = run(tmp_path, rate=100, seconds=30)
    print(result)
    assert result["cards"] == 1500 and result["p99_ms"] < 250


@pytest.mark.slow
def test_webhook_sustained_rate(tmp_path):
    result = run(tmp_path, rate=0, seconds=0, flood=5000)
    print(result)
    assert result["single_events_per_s"] > 0
