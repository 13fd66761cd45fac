"""The writer process's side of `WriterProcess` (see _writer.py): its own store, rules and group commit.

It reads requests from its end of the pipe, hands them to a `GroupCommit` (the same one `serve`
runs in a thread otherwise), and sends each request's receipts back once the transaction holding
it is committed. It follows the rule version the serving process runs: every request names it, and
a group that finds it behind loads the rule files again (at most every RELOAD_EVERY seconds while
the versions differ, through the service's own reload, so a broken file keeps the last good version
here too). It stops when the pipe closes: on `close()`, and when the serving process dies, however
it dies, after finishing what it was given.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection

from leadflow.intake import Intake
from leadflow.pipeline import GroupCommit, Pipeline

from ._receipt import Receipt
from ._service import LeadService

log = logging.getLogger("leadflow.writer")
RELOAD_EVERY = 0.5  # seconds between two tries to follow the serving process's rule version


@dataclass
class ChildSettings:
    """What the writer process needs to open the same database and rules as the serving process."""

    db: str
    rules: str
    intake: Intake
    log_level: int = logging.INFO
    busy_timeout: float | None = None  # seconds to wait for another writer (SQLite): the serving store's


def submit_dead_letter(writer: GroupCommit, body: str, reason: str) -> Future:
    """Keep a webhook body that is not JSON as a dead letter, in the writer's next group (both writers)."""
    return writer.submit(lambda: writer.store.dead_letter(body, reason, "", "webhook", None))


def run(inbox: Connection, outbox: Connection, settings: ChildSettings) -> None:
    """The process's main: ready, then requests until the pipe closes."""
    # The serving process decides when this one stops (Ctrl-C reaches the whole process group; a
    # service manager's SIGTERM may too): stopping here mid-group would refuse requests it could finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        service = LeadService(settings.db, settings.rules)
    except Exception as exc:  # noqa: BLE001 - told to the serving process, which reports it and tries again
        outbox.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    if settings.busy_timeout is not None:  # the writer thread's connection is opened after this
        service.store.busy_timeout = settings.busy_timeout
    try:
        _Child(inbox, outbox, service, settings.intake).serve()
    finally:
        service.store.close()


class _Child:
    def __init__(self, inbox: Connection, outbox: Connection, service: LeadService, intake: Intake):
        self.inbox, self.outbox, self.service, self.intake = inbox, outbox, service, intake
        self.writer = GroupCommit(service.store, pipeline=self._pipeline)
        self.wanted = service.pipeline.version  # the serving process's version, as the last request named it
        self._next_reload = 0.0
        self._send_lock = threading.Lock()
        self._parent_gone = False

    def serve(self) -> None:
        self._send(("ready", self.service.pipeline.version))
        while True:
            try:
                message = self.inbox.recv()
            except (EOFError, OSError):
                break  # closed by the serving process, or it died: finish what was given, then stop
            kind, rid = message[0], message[1]
            if kind == "events":
                self.wanted = message[3]
                future = self.writer.submit_events(message[2], "webhook", self.intake)
            elif kind == "dead":
                body, reason = message[2], message[3]
                future = submit_dead_letter(self.writer, body, reason)
            else:
                log.error("unknown request %r from the serving process", kind)
                continue
            future.add_done_callback(lambda f, rid=rid, kind=kind: self._answer(rid, kind, f))
        self.writer.close()  # every answer is sent before it returns
        self.outbox.close()

    def _pipeline(self) -> Pipeline:
        """The pipeline for the next group: the serving process's version when it can be loaded."""
        service = self.service
        if self.wanted != service.pipeline.version and time.monotonic() >= self._next_reload:
            self._next_reload = time.monotonic() + RELOAD_EVERY
            service.reload_rules()
        return service.pipeline

    def _answer(self, rid: int, kind: str, future: Future) -> None:
        """Runs once the request's transaction is committed (or failed)."""
        counters = (self.writer.groups, self.writer.requests)
        try:
            value = future.result()
        except Exception as exc:  # noqa: BLE001 - nothing of the request was kept
            self._send(("failed", rid, f"{type(exc).__name__}: {exc}", counters))
            return
        try:
            receipts = [Receipt.of(o) for o in value] if kind == "events" else []
            self._send(("done", rid, receipts, counters))
        except Exception as exc:  # noqa: BLE001 - committed, but the answer could not be made: say so
            log.exception("answering request %s failed", rid)
            self._send(("unknown", rid, f"committed, but the answer failed: {type(exc).__name__}", counters))

    def _send(self, message: tuple) -> None:
        if self._parent_gone:
            return
        with self._send_lock:
            try:
                self.outbox.send(message)
            except (OSError, EOFError, ValueError):  # the serving process died: what was committed stays
                self._parent_gone = True
