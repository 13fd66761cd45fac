"""Group commit: one writer thread applies the work of every waiting request in one transaction.

An acknowledgement must mean "on disk", so each commit waits for an fsync (a durable transaction:
synchronous=FULL). One fsync per request would cap the webhook at the disk's fsync rate, so requests
that arrive while a commit is in flight queue up and the next transaction takes them all: each
request's work runs in its own savepoint (a request that fails is rolled back alone and gets its
error), and every request is answered only after the COMMIT that holds it has returned. If the
COMMIT itself fails, every request of the group gets the error and none is acknowledged.
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

from leadflow.core import GROUP_MAX_EVENTS
from leadflow.store import Store

log = logging.getLogger("leadflow.groupcommit")
_STOP = object()


class GroupCommit:
    def __init__(self, store: Store, max_events: int = GROUP_MAX_EVENTS):
        self.store = store
        self.max_events = max_events
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.submitted = 0  # requests handed in, commits made, and requests those held (tests, figures)
        self.groups = 0
        self.requests = 0

    def submit(self, job: Callable[[], Any], size: int = 1) -> Future:
        """Run `job` on the writer thread inside the next group transaction; the future resolves
        with its result (or exception) once that transaction is committed."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="leadflow-writer", daemon=True)
                self._thread.start()
            self._queue.put((job, max(size, 1), future))
            self.submitted += 1
        return future

    def waiting(self) -> int:
        """Requests queued for the next group."""
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Finish what was submitted, then stop the writer."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            group, events = [first], first[1]
            while events < self.max_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                group.append(item)
                events += item[1]
            try:
                self._commit(group)
            except BaseException as exc:  # noqa: BLE001 - the writer must outlive anything; nobody is left waiting
                log.exception("group commit failed")
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc)

    def _commit(self, group: list) -> None:
        ran: list = []
        try:
            with self.store.transaction(durable=True):
                for job, _, future in group:
                    if not future.set_running_or_notify_cancel():
                        continue  # the caller went away before its turn: nothing to apply or answer
                    try:
                        with self.store.savepoint("one_request"):
                            ran.append((future, True, job()))
                    except Exception as exc:  # noqa: BLE001 - this request fails alone
                        ran.append((future, False, exc))
        except Exception as exc:  # noqa: BLE001 - the COMMIT failed: nothing of this group is on disk
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.groups += 1
        self.requests += len(ran)
        for future, ok, value in ran:  # answered only now, after COMMIT returned
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
