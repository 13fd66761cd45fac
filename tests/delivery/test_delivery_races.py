"""Delivery when things race or misbehave: two dispatchers on one database, a database that is busy
at the wrong moment, a mail server that answers QUIT oddly, a hostile Retry-After, line breaks Python
knows and e-mail headers do not. Each test failed before its fix (Slack's dropped connections and
renamed or archived channels: tests/test_bot_channels.py)."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time

import pytest

from leadflow.delivery import ChannelSender, ChannelSettings, DeliveryError, Dispatcher, list_outbox
from leadflow.delivery._dispatcher import LEASE
from leadflow.delivery._failures import MAX_RETRY_AFTER
from leadflow.delivery._lease import Claimer
from leadflow.delivery._senders import header_value
from leadflow.service import ManualClock
from leadflow.store import Store
from tests.bot_harness import NAMED, SECRET, TOKEN, Clock, Service, sql_events
from tests.leadflow_cli import T0, clean_env, run
from tests.slack_fake import SlackFake


@pytest.fixture
def fake():
    with SlackFake() as f:
        yield f


def cards(fake: SlackFake) -> list[str]:
    """The outbox key of every chat.postMessage Slack carried out (answered or not)."""
    return [c["args"]["metadata"]["event_payload"]["key"] for c in fake.calls
            if c["method"] == "chat.postMessage" and not c.get("failed")]


# -- two dispatchers: the claim is a lease ----------------------------------------------------------

def test_worker_once_beside_serve_leaves_the_card_being_sent_alone(tmp_path, fake):
    """`leadflow worker --once` runs while `serve` is posting a card (Slack is slow): it must not resume
    the row serve is sending now, or the card is posted twice."""
    slow = threading.Event()
    fake.hold["chat.postMessage"] = slow
    with Service(tmp_path, fake, rules=NAMED) as svc:
        svc.send_events(sql_events("lead-de", country="DE"))  # a card for the queue; serve's worker posts it
        deadline = time.time() + 10
        while fake.holding != ["chat.postMessage"]:
            assert time.time() < deadline, "serve never posted the card"
            time.sleep(0.02)
        row = svc.service.store.outbox("card")[0]
        assert row["status"] == "sending" and row["lease_until"] > time.time() + LEASE / 2
        env = clean_env(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, LEADFLOW_SLACK_API_URL=fake.url)
        once = run(["--db", svc.settings.db, "--rules", svc.settings.rules, "worker", "--once", "--json"], env)
        assert json.loads(once.stdout)["delivered"] == 0
        slow.set()  # Slack answers serve at last
        svc.drain()
        assert svc.service.store.outbox_status("card:1") == "done"
    assert cards(fake) == ["card:1"]
    assert len(fake.history_of("#sales-queue")) == 1


def _claim(store: Store, key: str, holder: Claimer, until: float) -> None:
    row = next(r for r in store.outbox() if r["key"] == key)
    with store.transaction():
        assert store.outbox_claim(row["id"], row["status"], row["attempts"], holder.to_text(), until)


def _exited_child() -> subprocess.Popen:
    """A child process that has exited but is not reaped yet (a zombie)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    return child


@pytest.mark.skipif(not hasattr(os, "waitid") or not os.path.exists("/proc/self/stat"), reason="Linux only")
def test_a_row_whose_holder_is_gone_is_resumed_at_once_others_wait_for_their_lease(tmp_path, receiver):
    store = Store(str(tmp_path / "o.db"))
    wall = Clock(time.time())
    dispatcher = Dispatcher(store, [ChannelSender(ChannelSettings(webhook_url=receiver.url), store)],
                            ManualClock(T0), wall=wall)
    leads = ("dead", "zombie", "busy-here", "reused-pid", "elsewhere")
    with store.transaction():
        for lead in leads:
            store.add_outbox(f"hook:{lead}", "webhook", lead, {"text": lead})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    zombie = _exited_child()
    here = Claimer.here()
    try:
        until = wall.now + LEASE
        _claim(store, "hook:dead", dataclasses.replace(here, pid=dead.pid), until)  # killed: its pid is free
        _claim(store, "hook:zombie", dataclasses.replace(here, pid=zombie.pid), until)  # killed, not reaped yet
        _claim(store, "hook:busy-here", Claimer.here(), until)  # another dispatcher of this (live) process
        _claim(store, "hook:reused-pid", dataclasses.replace(here, started="1"), until)  # this pid, a later start:
        _claim(store, "hook:elsewhere", dataclasses.replace(here, machine="other-host||", pid=dead.pid), until)
        assert dispatcher.run_once() == 3
        assert sorted(receiver.leads()) == ["dead", "reused-pid", "zombie"]  # resumed without waiting
        wall.now += LEASE + 1  # nobody finished the others within their lease: they are taken over
        assert dispatcher.run_once() == 2
        assert sorted(receiver.leads()) == sorted(leads)
        assert {r["status"] for r in store.outbox()} == {"done"}
    finally:
        zombie.wait()


# -- a busy database never fails a row for good --------------------------------------------------------

class Blocker:
    """Another process's writer on the same SQLite file, taking and releasing the write lock exactly
    when the store under test starts its Nth and Mth transaction (SQLite's own trace hook; the store
    tries BEGIN again while the lock is taken, so a run of BEGINs is one transaction starting)."""

    def __init__(self, store: Store, path: str, take_at: int, release_at: int):
        self.other = sqlite3.connect(path, isolation_level=None)
        self.take_at, self.release_at, self.begins, self.last = take_at, release_at, 0, ""
        self.store = store
        store.busy_timeout = 0.05  # give up on a lock quickly (30 s in production)
        if take_at == 0:
            self.other.execute("BEGIN IMMEDIATE")
        store.conn.set_trace_callback(self.trace)

    def trace(self, sql: str) -> None:
        again, self.last = self.last.startswith("BEGIN"), sql
        if sql.startswith("BEGIN") and not again:
            self.begins += 1
            if self.begins == self.take_at:
                self.other.execute("BEGIN IMMEDIATE")
            if self.begins == self.release_at and self.other.in_transaction:
                self.other.execute("COMMIT")

    def close(self) -> None:
        self.store.conn.set_trace_callback(None)
        if self.other.in_transaction:
            self.other.execute("COMMIT")
        self.other.close()


def test_a_locked_database_at_the_claim_leaves_the_row_for_the_next_pass(tmp_path, receiver):
    path = str(tmp_path / "l.db")
    store = Store(path)
    dispatcher = Dispatcher(store, [ChannelSender(ChannelSettings(webhook_url=receiver.url), store)], ManualClock(T0))
    with store.transaction():
        store.add_outbox("hook:1", "webhook", "L1", {"text": "hello"})
    blocker = Blocker(store, path, take_at=0, release_at=2)  # locked during the claim, free right after
    try:
        assert dispatcher.run_once() == 0
    finally:
        blocker.close()
    row = store.outbox()[0]
    assert (row["status"], row["attempts"], receiver.leads()) == ("pending", 0, [])  # untouched, not failed
    assert dispatcher.run_once() == 1
    assert store.outbox_status("hook:1") == "done" and receiver.leads() == ["L1"]


def test_a_transient_failure_that_cannot_be_recorded_is_not_made_final(tmp_path, receiver):
    path = str(tmp_path / "t.db")
    store = Store(path)
    clock = ManualClock(T0)
    dispatcher = Dispatcher(store, [ChannelSender(ChannelSettings(webhook_url=receiver.url), store)], clock)
    receiver.plan = {"L1": [(503, {})]}
    with store.transaction():
        store.add_outbox("hook:1", "webhook", "L1", {"text": "hello"})
    blocker = Blocker(store, path, take_at=2, release_at=3)  # claimed; locked while the 503 is recorded
    try:
        assert dispatcher.run_once() == 0
    finally:
        blocker.close()
    row = store.outbox()[0]
    assert (row["status"], row["attempts"], row["next_at"]) == ("pending", 1, T0 + 2)  # its backoff
    assert row["last_error"].startswith("http_busy")
    clock.now += 3
    assert dispatcher.run_once() == 1
    assert receiver.leads() == ["L1", "L1"]


# -- e-mail ------------------------------------------------------------------------------------------

GOODBYES = {"421": b"421 4.3.2 shutting down\r\n", "garbage": b"bye then\r\n"}


class OddSmtp:
    """A mail server on loopback that takes every message (250) and then answers QUIT with `goodbye`:
    "421" (a reply other than 221), "garbage" (no reply code) or "reset" (a reset, no answer)."""

    def __init__(self, goodbye: str):
        self.goodbye = goodbye
        self.accepted: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 odd.test ESMTP\r\n")
                data: list | None = None
                for line in lines:
                    if data is not None:
                        if line == b".\r\n":
                            self.accepted.append(b"".join(data))
                            data = None
                            conn.sendall(b"250 2.0.0 queued\r\n")
                        else:
                            data.append(line)
                    elif line[:4].upper() == b"DATA":
                        data = []
                        conn.sendall(b"354 go ahead\r\n")
                    elif line[:4].upper() == b"QUIT":
                        if self.goodbye in GOODBYES:
                            conn.sendall(GOODBYES[self.goodbye])
                        else:  # close with a reset (RST), not a polite FIN
                            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        break
                    else:
                        conn.sendall(b"250 OK\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("goodbye", ["421", "garbage", "reset"])
def test_an_email_the_server_took_is_not_sent_again_whatever_quit_says(tmp_path, goodbye):
    server = OddSmtp(goodbye)
    store = Store(str(tmp_path / "m.db"))
    clock = ManualClock(T0)
    sender = ChannelSender(ChannelSettings(smtp_host="127.0.0.1", smtp_port=server.port), store)
    dispatcher = Dispatcher(store, [sender], clock)
    with store.transaction():
        store.add_outbox("nurture:1:0", "email", "L1", {"to": "ann@acme.example", "subject": "Hello", "text": "Hi"})
    try:
        assert dispatcher.run_once() == 1
        clock.now += 3600
        dispatcher.run_once()
    finally:
        server.close()
    assert len(server.accepted) == 1
    assert store.outbox_status("nurture:1:0") == "done"


def test_every_line_break_python_knows_is_a_bad_header():
    breaks = [c for c in map(chr, range(0x110000)) if len(f"a{c}b".splitlines()) > 1]
    assert {"\x85", "\x1c", "\x1d", "\x1e", "\v", "\f", "\u2028", "\u2029"} <= set(breaks)
    for c in breaks + ["\x00", "\x7f", "\x9b", "\ud800"]:
        with pytest.raises(DeliveryError) as err:
            header_value("subject", f"Hi ACME{c}Bcc: x@evil.example")
        assert err.value.code == "bad_header" and err.value.permanent, repr(c)
    assert header_value("subject", "Grüße, 東京 🚀") == "Grüße, 東京 🚀"


def test_a_header_python_refuses_fails_at_once_and_nothing_is_sent(tmp_path):
    server = OddSmtp("421")
    store = Store(str(tmp_path / "h.db"))
    good = ChannelSender(ChannelSettings(smtp_host="127.0.0.1", smtp_port=server.port), store)
    refused = ChannelSender(ChannelSettings(smtp_host="127.0.0.1", smtp_port=server.port, smtp_from="<"), store)
    subjects = ["Hi ACME\x85Bcc: x@evil.example", "Hi\x1dthere", "Hi\u2029there"]
    with store.transaction():
        for n, subject in enumerate(subjects):
            store.add_outbox(f"nurture:{n}:0", "email", "L1", {"to": "ann@acme.example", "subject": subject,
                                                                "text": "x"})
    try:
        assert Dispatcher(store, [good], ManualClock(T0)).run_once() == 0
        with store.transaction():  # a sender address the e-mail library cannot parse (it raises, not a DeliveryError)
            store.add_outbox("nurture:9:0", "email", "L1", {"to": "ann@acme.example", "subject": "Hello", "text": "x"})
        assert Dispatcher(store, [refused], ManualClock(T0)).run_once() == 0
    finally:
        server.close()
    rows = store.outbox()
    outcomes = [(r["status"], r["attempts"], r["last_error"].split(":")[0]) for r in rows]
    assert outcomes == [("failed", 1, "bad_header")] * 4  # at once, for good
    assert server.accepted == []


# -- Retry-After ------------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after, wait", [
    ("inf", 2), ("nan", 2), ("1e400", 2), ("soon", 2), ("99999999999", MAX_RETRY_AFTER),
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER), ("120", 120)])
def test_retry_after_is_bounded_and_finite(tmp_path, receiver, retry_after, wait):
    store = Store(str(tmp_path / "r.db"))
    dispatcher = Dispatcher(store, [ChannelSender(ChannelSettings(webhook_url=receiver.url), store)], ManualClock(T0))
    receiver.plan = {"L1": [(429, {"Retry-After": retry_after})]}
    with store.transaction():
        store.add_outbox("hook:1", "webhook", "L1", {"text": "hello"})
    dispatcher.run_once()
    row = store.outbox()[0]
    assert (row["status"], row["next_at"]) == ("pending", T0 + wait)  # default backoff, or at most an hour
    assert list_outbox(store)[0].next_at is not None
