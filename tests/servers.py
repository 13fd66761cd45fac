"""Small servers the tests run on loopback: a free port, an SMTP mailbox (aiosmtpd), a receiver for
outgoing webhooks, and the real `leadflow serve` for the crash tests to kill. Fixtures that start
them are in conftest.py."""
from __future__ import annotations

import contextlib
import email
import json
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import httpx
from aiosmtpd.controller import Controller

from tests.leadflow_cli import ROOT, leadflow_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """An SMTP handler that keeps every accepted message with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list = []
        self.lock = threading.Lock()
        self.port = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001 - aiosmtpd's hook name
        with self.lock:
            self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


@contextlib.contextmanager
def running_smtp(box: Mailbox) -> Iterator[Mailbox]:
    """A real SMTP server on a free loopback port, answering with `box`'s hooks."""
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    try:
        yield box
    finally:
        controller.stop()


class Receiver:
    """An outgoing-webhook receiver on loopback that answers per lead: a list of (status, headers)."""

    def __init__(self) -> None:
        self.plan: dict[str, list] = {}
        self.received: list = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                lead = json.loads(body)["lead"]
                receiver.received.append((dict(self.headers), body))
                planned = receiver.plan.get(lead)
                status, headers = planned.pop(0) if planned else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def leads(self) -> list[str]:
        return [json.loads(body)["lead"] for _, body in self.received]


class KillableServe:
    """The real `leadflow serve` on one port, killed with SIGKILL and started again on the same port
    by the crash tests; `kills` counts the kills that hit a running process."""

    def __init__(self, db: Path, rules: Path, env: dict):
        self.db, self.rules, self.env = db, rules, env
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.kills = 0

    def start(self) -> None:
        """Start it and wait until /healthz answers; return early if it was killed while starting
        (the caller starts it again)."""
        self.proc = subprocess.Popen(leadflow_command("--db", self.db, "--rules", self.rules, "serve", "--port",
                                                      self.port), cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while self.proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            assert time.time() < deadline, "leadflow serve did not come up"
            time.sleep(0.05)

    def kill(self) -> bool:
        """SIGKILL the running process; False when there was none to kill."""
        with self.lock:
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
                self.kills += 1
                return True
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
