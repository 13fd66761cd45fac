"""Small servers the tests run on loopback: a free port, an SMTP mailbox (aiosmtpd) and a receiver
for outgoing webhooks. Fixtures that start them are in conftest.py."""
from __future__ import annotations

import contextlib
import email
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from aiosmtpd.controller import Controller


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
