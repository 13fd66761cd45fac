"""Group commit: one writer thread applies the work of every waiting request in one transaction.

An acknowledgement must mean "on disk", so each commit waits for an fsync (a durable transaction:
synchronous=FULL). One fsync per request would cap the webhook at the disk's fsync rate, so requests
that arrive while a commit is in flight queue up and the next transaction takes them all: each
request's work runs in its own savepoint (a request that fails is rolled back alone and gets its
error), and every request is answered only after the COMMIT that holds it has returned. If the
COMMIT itself fails, every request of the group gets the error and none is acknowledged.

Several instances on one PostgreSQL database each run their own group transactions, and each
request locks its leads as it goes, so two groups can wait on each other's leads in a circle. The
server then fails one statement with a deadlock (`store.is_retryable`); that request's savepoint is
rolled back, the rest of its group commits (releasing the locks the other instance waits for), and
the request runs again at the head of the NEXT group, up to `RETRIES` times, instead of being
answered with an error. A retryable failure of the whole transaction sends back every request it held.

A group of events is first applied the fast way, as an ingest batch is (`Pipeline.batch`): every lead
of the group locked and read at once, each lead's row written once, no savepoint per request or event
(the savepoints and reads were a third of the writer's statements). If anything raises, the whole
transaction is rolled back and the group runs again the careful way above, so one bad request still
fails alone and the others are answered as if it had never been there.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from leadflow.core import GROUP_MAX_EVENTS
from leadflow.intake import Intake, parse_line
from leadflow.store import Store

from ._pipeline import Outcome, Pipeline

log = logging.getLogger("leadflow.groupcommit")
_STOP = object()
RETRIES = 5  # times a request that deadlocked with another instance is run again before it gets the error


@dataclass(eq=False)  # compared by identity
class _Request:
    job: Callable[[Pipeline | None], Any]  # given the group's pipeline (one rule version for the whole group)
    size: int
    future: Future
    tries: int = 0  # transactions it was rolled back from as retryable
    events: list = field(default_factory=list)  # parsed items of an event request, to lock and read at once
    history: bool = False  # an event request whose intake rewrites history: never the fast way


class GroupCommit:
    def __init__(self, store: Store, max_events: int = GROUP_MAX_EVENTS,
                 pipeline: Callable[[], Pipeline] | None = None):
        """pipeline: the live pipeline (it changes when the rules are reloaded); needed by `submit_events`."""
        self.store = store
        self.pipeline = pipeline
        self.max_events = max_events
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.submitted = 0  # requests handed in, commits made, and requests those held (tests, figures)
        self.groups = 0
        self.requests = 0
        self.retried = 0  # requests sent back to the next group after a deadlock
        self.careful = 0  # groups applied again the careful way after something raised the fast way
        self._again: deque[_Request] = deque()  # those requests, in order (touched by the writer thread only)

    def submit(self, job: Callable[[], Any], size: int = 1) -> Future:
        """Run `job` on the writer thread inside the next group transaction; the future resolves
        with its result (or exception) once that transaction is committed."""
        return self._submit(_Request(lambda _pipeline: job(), max(size, 1), Future()))

    def submit_events(self, items: list[str], source: str, intake: Intake) -> Future:
        """Apply these raw items (JSON text, as JSONL lines are) in the next group transaction, with
        the pipeline live when the group starts; the future resolves to their `Outcome`s once committed."""
        if self.pipeline is None:
            raise RuntimeError("this writer was made without a pipeline")
        parsed = [(raw, parse_line(raw)) for raw in items]

        def job(pipeline: Pipeline | None) -> list[Outcome]:
            assert pipeline is not None
            return [pipeline.apply_parsed(raw, obj, source, intake) for raw, obj in parsed]

        return self._submit(_Request(job, max(len(items), 1), Future(), events=[obj for _, obj in parsed],
                                     history=intake.history))

    def _submit(self, request: _Request) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="leadflow-writer", daemon=True)
                self._thread.start()
            self._queue.put(request)
            self.submitted += 1
        return request.future

    def waiting(self) -> int:
        """Requests queued for the next group (with those a deadlock sent back)."""
        return self._queue.qsize() + len(self._again)

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
        while True:
            group: list[_Request] = []
            events = 0
            while self._again and events < self.max_events:  # first, those a deadlock sent back
                group.append(self._again.popleft())
                events += group[-1].size
            if not group:
                if stopping:
                    break
                first = self._queue.get()
                if first is _STOP:
                    break
                group, events = [first], first.size
            while not stopping and events < self.max_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True  # finish what was submitted (and sent back), then stop
                    break
                group.append(item)
                events += item.size
            try:
                self._commit(group)
            except BaseException as exc:  # the writer must outlive anything; nobody is left waiting
                log.exception("group commit failed")
                for request in group:
                    if not request.future.done():
                        request.future.set_exception(exc)

    def _commit(self, group: list[_Request]) -> None:
        group = [r for r in group if r.future.running() or r.future.set_running_or_notify_cancel()]
        if not group:
            return  # every caller went away before its turn: nothing to apply or answer
        pipeline = self.pipeline() if self.pipeline else None
        if pipeline is not None and not any(r.history for r in group) and self._fast(group, pipeline):
            return
        ran: list = []
        again: list[_Request] = []
        try:
            with self.store.transaction(durable=True):
                for request in group:
                    try:
                        with self.store.savepoint("one_request"):
                            ran.append((request, True, request.job(pipeline)))
                    except Exception as exc:  # noqa: BLE001 - this request fails alone
                        if self._retry(request, exc):
                            again.append(request)
                        else:
                            ran.append((request, False, exc))
        except Exception as exc:  # noqa: BLE001 - the COMMIT failed: nothing of this group is on disk
            for request in group:
                if request.future.done():
                    continue
                if request in again or self._retry(request, exc):
                    self._again.append(request)
                else:
                    request.future.set_exception(exc)
            return
        self._again.extend(again)  # run again once this group's locks are released
        self._answer(ran)

    def _fast(self, group: list[_Request], pipeline: Pipeline) -> bool:
        """The group in one go (see the module's docstring); False when it must run the careful way."""
        try:
            with self.store.transaction(durable=True), pipeline.batch(o for r in group for o in r.events):
                ran = [(request, True, request.job(pipeline)) for request in group]
        except Exception:  # noqa: BLE001 - rolled back whole: the careful way finds who failed, or fails them all
            self.careful += 1
            return False
        self._answer(ran)
        return True

    def _answer(self, ran: list) -> None:
        """Called once COMMIT returned: only now may anyone be told their request is on disk."""
        self.groups += 1
        self.requests += len(ran)
        for request, ok, value in ran:
            if ok:
                request.future.set_result(value)
            else:
                request.future.set_exception(value)

    def _retry(self, request: _Request, exc: BaseException) -> bool:
        """Whether a request that failed with `exc` runs again in the next group (and count it)."""
        if not self.store.is_retryable(exc) or request.tries >= RETRIES:
            return False
        request.tries += 1
        self.retried += 1
        log.warning("a request deadlocked with another instance (%s); running it again in the next group",
                    type(exc).__name__)
        return True
