"""`leadflow bench --webhook`: the sustained rate of `POST /v1/events`, one event per request.

A real `leadflow serve` process on a loopback port and a scratch database, with a webhook token, gets
the benchmark's events from many connections at once, each sending one event per request and waiting
for the answer before the next (what a CRM's webhook sender does). Concurrency is what group commit
needs: requests that arrive while a commit is being written to disk go into the next transaction
together, so one fsync acknowledges many of them. The client is a small asyncio loop that writes
ready-made HTTP requests on uvloop, so on a two-core machine it leaves the server most of the CPU; a general
HTTP client in Python would measure itself rather than the server. Every answer must be a 200.

The rate alone says as much about the machine as about leadflow (the same code gave 1,150 and 1,750
events/s on this project's 2-core machine on two days), so the raw engine is timed on the same rules
right before and after, and `ratio` is the webhook's rate over it, as `leadflow bench` gives its own.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import IO, Callable, Iterator

from leadflow.core import LeadflowError, Location, Problem, lead_share
from leadflow.rules import load_compiled
from leadflow.runtime import Baseline

from ._bench import SLICE, raw_facts, spread
from ._synthetic import bench_events

START_TIMEOUT = 60.0  # seconds the server may take to answer /healthz
REFERENCE_SECONDS = 4.0  # of the raw engine, half before the server starts and half after it stops


def webhook_bench(rules_dir: str, n_leads: int, per_lead: int, seed: int, connections: int = 32) -> dict:
    """Events per second that a fresh `leadflow serve` acknowledges, one event per request, and
    durable_rules alone on the same rules, timed just before the server starts and just after it
    stops (half each), so the rate can be compared across machines and moments as a ratio."""
    compiled = load_compiled(rules_dir)
    baseline = Baseline(compiled, raw_facts(compiled, 20000, per_lead, seed))
    _time_baseline(baseline, REFERENCE_SECONDS / 2)
    token = secrets.token_urlsafe(24)
    requests = [_request(token, json.dumps(e).encode()) for e in bench_events(n_leads, per_lead, seed)]
    # one lead's events stay on one connection, in order, as one sender would send them
    lanes: list[list[bytes]] = [[] for _ in range(connections)]
    for raw, lead in requests:
        lanes[lead_share(lead, connections)].append(raw)
    with _server(rules_dir, token) as port:
        started = time.perf_counter()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            answered = runner.run(_drive(port, [lane for lane in lanes if lane]))
        seconds = time.perf_counter() - started
    _time_baseline(baseline, REFERENCE_SECONDS / 2)
    rate, raw = answered / seconds if seconds else 0.0, baseline.rate
    return {"events": answered, "connections": connections, "seconds": round(seconds, 2),
            "events_per_s": round(rate), "raw_engine_events_per_s": round(raw),
            "raw_engine_slices": spread(baseline.slices), "ratio": round(rate / raw, 3) if raw else None}


def _time_baseline(baseline: Baseline, seconds: float) -> None:
    """Slices of the raw engine for about `seconds` (with nothing else running on the machine)."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        baseline.run(SLICE)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where there is one (as the server runs): the client spends less of the CPU
    that it shares with the server on this machine."""
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop
        return None
    return uvloop.new_event_loop


def _request(token: str, body: bytes) -> tuple[bytes, str]:
    lead = json.loads(body)["lead"]
    head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body, lead


async def _drive(port: int, lanes: list[list[bytes]]) -> int:
    answered = [0]
    await asyncio.gather(*(_send_all(port, lane, answered) for lane in lanes))
    return answered[0]


async def _send_all(port: int, lane: list[bytes], answered: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for raw in lane:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                raise LeadflowError([Problem("BENCH_WEBHOOK_REFUSED", f"the webhook answered {status}: "
                                             f"{body[:300].decode('utf-8', 'replace')}", Location("webhook"))])
            answered[0] += 1
    finally:
        writer.close()


@contextmanager
def _server(rules_dir: str, token: str) -> Iterator[int]:
    """`leadflow serve` on a free loopback port and a scratch database, stopped (and removed) after."""
    with tempfile.TemporaryDirectory(prefix="leadflow-webhook-bench-") as tmp:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LEADFLOW_"))}
        env["LEADFLOW_WEBHOOK_TOKEN"] = token
        # its log goes to a file: a pipe nobody reads while the load runs would fill and stall the server
        with open(os.path.join(tmp, "serve.log"), "w+b") as log:
            proc = subprocess.Popen([sys.executable, "-m", "leadflow", "--db", os.path.join(tmp, "bench.db"),
                                     "--rules", rules_dir, "serve", "--port", str(port)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=log)
            try:
                _wait_until_up(proc, port, log)
                yield port
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_until_up(proc: subprocess.Popen, port: int, log: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode("utf-8", "replace")[-2000:]
            raise LeadflowError([Problem("BENCH_WEBHOOK_SERVER", f"`leadflow serve` stopped before answering: {err}",
                                         Location("webhook"))])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.05)
    raise LeadflowError([Problem("BENCH_WEBHOOK_SERVER", f"`leadflow serve` did not answer within {START_TIMEOUT:g} s",
                                 Location("webhook"))])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
