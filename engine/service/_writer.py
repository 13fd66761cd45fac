"""Where the webhook's events are written: a group commit in a process of its own, or in a thread.

`leadflow serve` answers HTTP, runs the worker loop and applies the webhook's events. In one process
those share one interpreter lock, and a profile under load (`leadflow bench --webhook`) had the HTTP
side at 40% of it and the group-commit writer, whose transaction holds the database's write lock
while it evaluates, at 45%: the writer waited for the interpreter while holding the lock everyone
else waited for, and the machine's second core sat idle. `WriterProcess` runs the group commit
(_writer_child.py) in a child process with its own store and rules; this process sends it each
request's raw items over a pipe and answers the sender once the child says the transaction holding
them is committed (with an fsync, as before: an acknowledgement still means "on disk").

What can go wrong, and what the sender hears:
- the child's transaction fails (disk full, database locked past the timeout): `StoreFailed`,
  nothing of the request was kept, send it again;
- the child dies (killed, out of memory) with requests in flight: `WriterUnavailable` for each, since
  one may have been committed just before; sending it again is safe (an id already stored is
  answered `duplicate`). A new child is started at once, then after a backoff while starts fail;
  meanwhile requests get `WriterUnavailable` at once rather than waiting. A child that holds a
  request past DEADLINE is taken as stuck and killed, and goes the same way.
- this process dies: the child sees its pipe close, finishes what it was given, and exits.

`ThreadWriter` is the same interface over a `GroupCommit` thread in this process (LEADFLOW_WRITER=thread:
one process, as before, with less memory and about a fifth fewer events per second on two cores).
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import replace
from typing import Callable, Protocol

from leadflow.intake import Intake
from leadflow.pipeline import GroupCommit, Outcome, Pipeline
from leadflow.store import Store

from ._receipt import Receipt
from ._writer_child import ChildSettings, run, submit_dead_letter

log = logging.getLogger("leadflow.writer")
START_TIMEOUT = 120.0  # seconds a new writer process may take to open the database and load the rules
# A request's answer comes within a group's time plus the database's busy timeout (30 s) in the worst
# case; one held much longer means the child is stuck (nothing else would ever answer it).
DEADLINE = 300.0
POLL = 1.0  # seconds between two looks at the oldest request held, while no answer comes
RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # after consecutive failed starts


class WriterUnavailable(Exception):
    """The writer process is not running, or stopped while it held the request: whether the request
    was committed is not known, and sending it again is safe."""


class StoreFailed(Exception):
    """The writer's transaction failed: nothing of the request was kept."""


class EventWriter(Protocol):
    """What the webhook writes through. Futures resolve once the transaction is committed."""

    def start(self) -> None: ...
    def submit_events(self, items: list[str]) -> Future: ...  # resolves to list[Receipt]
    def submit_dead_letter(self, body: str, reason: str) -> Future: ...
    def close(self) -> None: ...
    @property
    def alive(self) -> bool: ...


class ThreadWriter:
    """The group commit on a thread of this process."""

    def __init__(self, store: Store, pipeline: Callable[[], Pipeline], intake: Intake):
        self.store, self.intake = store, intake
        self.group = GroupCommit(store, pipeline=pipeline)

    def start(self) -> None:
        """Nothing to start: the group commit starts its thread with the first request."""

    def submit_events(self, items: list[str]) -> Future:
        return _chain(self.group.submit_events(items, "webhook", self.intake),
                      lambda outcomes: [Receipt.of(o) for o in outcomes])

    def submit_dead_letter(self, body: str, reason: str) -> Future:
        return submit_dead_letter(self.group, body, reason)

    def close(self) -> None:
        self.group.close()

    @property
    def alive(self) -> bool:
        return True

    @property
    def submitted(self) -> int:
        return self.group.submitted

    @property
    def groups(self) -> int:
        return self.group.groups

    @property
    def requests(self) -> int:
        return self.group.requests


def _chain(source: Future, convert: Callable[[list[Outcome]], list[Receipt]]) -> Future:
    """A future of `convert(source's result)`. Cancelling it (the caller went away) cancels the
    source too, so the group commit skips the request if it has not started it."""
    result: Future = Future()

    def done(f: Future) -> None:
        if f.cancelled() or result.done():
            return
        try:
            exc = f.exception()
            if exc is not None:
                result.set_exception(exc)
            else:
                result.set_result(convert(f.result()))
        except InvalidStateError:  # cancelled meanwhile: nobody is waiting for it
            pass

    source.add_done_callback(done)
    result.add_done_callback(lambda r: source.cancel() if r.cancelled() else None)
    return result


class WriterProcess:
    """The group commit in a child process (see the module's docstring)."""

    def __init__(self, db: str, rules: str, intake: Intake, version: Callable[[], str],
                 log_level: int = logging.INFO, busy_timeout: Callable[[], float | None] = lambda: None,
                 deadline: float = DEADLINE):
        """version: the rule version this process runs now; the child follows it. busy_timeout: read
        at each start, the seconds the child waits for another writer (the serving store's setting).
        deadline: seconds a request may wait for its answer before the child is taken as hung."""
        self._deadline = deadline
        self._settings = ChildSettings(db, rules, intake, log_level)
        self._version = version
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()  # the running child and the requests it holds
        self._send_lock = threading.Lock()  # one message at a time into the requests' pipe
        self._requests = None  # where requests go to the running child, None while there is none
        self._proc = None
        self._pending: dict[int, tuple[Future, float]] = {}  # in the order sent: the future, when
        self._next_id = 0
        self._closing = False
        self._failed_starts = 0
        self.starts = 0  # children started (tests, /healthz)
        self.groups = 0  # the child's counters, as of its last answer: transactions and requests they held
        self.requests = 0
        self.submitted = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the child and wait until it is ready; raises WriterUnavailable saying why it is not."""
        if self._closing:
            raise WriterUnavailable("the writer is closed")
        ctx = multiprocessing.get_context("spawn")  # nothing of this process (threads, connections) inherited
        # Two one-way pipes, not one two-way: closing the requests' end must reach the child as the end of
        # its input while our reader thread is still blocked reading the answers (a socket closed under a
        # blocked reader stays open until that read returns, so the child would never see it).
        inbox, requests = ctx.Pipe(duplex=False)
        answers, outbox = ctx.Pipe(duplex=False)
        settings = replace(self._settings, busy_timeout=self._busy_timeout())
        proc = ctx.Process(target=run, args=(inbox, outbox, settings), name="leadflow-writer", daemon=True)
        proc.start()
        inbox.close()  # only the child holds these ends now: its death closes the answers' pipe
        outbox.close()
        try:
            if not answers.poll(START_TIMEOUT):
                proc.kill()
                raise WriterUnavailable(f"the writer process did not start within {START_TIMEOUT:g} s")
            kind, detail = answers.recv()
        except (EOFError, OSError):
            kind, detail = "fatal", "it exited while starting"
        except WriterUnavailable:
            _stop(proc, requests, answers)
            raise
        if kind != "ready":
            _stop(proc, requests, answers)
            raise WriterUnavailable(f"the writer process could not start: {detail} (exit code {proc.exitcode})")
        with self._lock:
            closing = self._closing
            if not closing:
                self._requests, self._proc = requests, proc
                self.starts += 1
        if closing:  # closed while this one started: it stops on the end of its input
            _stop(proc, requests, answers)
            raise WriterUnavailable("the writer is closed")
        # At interpreter exit, multiprocessing terminates its daemon children and then waits for them; this
        # one ignores SIGTERM and stops at the end of its input, so that input is closed first (a Finalize
        # with a priority runs before that step) in case `close` was never called (a forced exit).
        multiprocessing.util.Finalize(requests, requests.close, exitpriority=10)
        threading.Thread(target=self._read, args=(answers, requests, proc, time.monotonic()),
                         name="leadflow-writer-reader", daemon=True).start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests, let those in flight be answered, then stop the child."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            requests, proc, self._requests = self._requests, self._proc, None
        if requests is not None:
            with self._send_lock:
                requests.close()  # the child finishes what it was given and exits
        if proc is not None:
            proc.join(max(deadline - time.monotonic(), 1.0))
            if proc.is_alive():
                proc.kill()
                proc.join()

    @property
    def alive(self) -> bool:
        proc = self._proc
        return self._requests is not None and proc is not None and proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- requests -----------------------------------------------------------------------------------
    def submit_events(self, items: list[str]) -> Future:
        return self._submit(lambda rid: ("events", rid, items, self._version()))

    def submit_dead_letter(self, body: str, reason: str) -> Future:
        return self._submit(lambda rid: ("dead", rid, body, reason))

    def _submit(self, message: Callable[[int], tuple]) -> Future:
        future: Future = Future()
        # Running from the start: a caller that goes away (its asyncio task cancelled, which cancels the
        # future it wraps) cannot cancel it, so the answer, when it comes, always has somewhere to go.
        future.set_running_or_notify_cancel()
        with self._lock:
            requests = self._requests
            if self._closing or requests is None:
                raise WriterUnavailable("the writer process is not running (it is being restarted)")
            self._next_id += 1
            rid = self._next_id
            self._pending[rid] = (future, time.monotonic())  # before it is sent: its answer may come back at once
            self.submitted += 1
        # Sent outside `_lock`: a large body waits for the child to read it, and meanwhile the reader
        # thread must still take answers off the other pipe (it needs `_lock` to find their futures).
        try:
            with self._send_lock:
                requests.send(message(rid))
        except (OSError, ValueError) as exc:  # it just died (or is being replaced): the reader restarts it
            with self._lock:
                self._pending.pop(rid, None)
            raise WriterUnavailable(f"the writer process stopped ({exc})") from None
        return future

    def _read(self, answers, requests, proc, started: float) -> None:  # noqa: ANN001 - multiprocessing's types
        try:
            while True:
                try:
                    if not answers.poll(POLL):
                        self._check_deadline(proc)
                        continue
                    kind, rid, value, (self.groups, self.requests) = answers.recv()
                except (EOFError, OSError):
                    break
                with self._lock:
                    future, _ = self._pending.pop(rid, (None, 0.0))
                if future is None:
                    continue
                if kind == "done":
                    future.set_result(value)
                elif kind == "failed":
                    future.set_exception(StoreFailed(value))
                else:  # committed or not, the child could not say
                    future.set_exception(WriterUnavailable(value))
        except Exception:  # noqa: BLE001 - whatever it was, the requests held must still be answered
            log.exception("reading the writer process's answers failed")
            proc.kill()
        finally:
            answers.close()
            self._gone(requests, proc, started)

    def _check_deadline(self, proc) -> None:  # noqa: ANN001
        """A child that holds a request past the deadline is taken as hung, and killed: its requests
        are answered 503 (see `_gone`) and a new child starts, instead of waiting forever."""
        with self._lock:
            oldest = next(iter(self._pending.values()), None)
        if oldest is not None and time.monotonic() - oldest[1] > self._deadline:
            log.error("the writer process has held a request for more than %g s; stopping it", self._deadline)
            proc.kill()

    def _gone(self, requests, proc, started: float) -> None:  # noqa: ANN001
        """The child's end closed: fail what it held, and start another unless we are closing."""
        with self._lock:
            if self._requests is requests:
                self._requests = None
            pending, self._pending = self._pending, {}
            closing = self._closing
        with self._send_lock:
            requests.close()
        code = _wait(proc)
        for future, _ in pending.values():
            future.set_exception(WriterUnavailable("the writer process stopped while it held this request"))
        if closing:
            return
        log.error("the writer process stopped (exit code %s); starting another", code)
        self._failed_starts = 0 if time.monotonic() - started > 60 else self._failed_starts
        self._restart()

    def _restart(self) -> None:
        while not self._closing:
            time.sleep(RESTART_DELAYS[min(self._failed_starts, len(RESTART_DELAYS) - 1)])
            if self._closing:
                return
            try:
                self.start()
                log.info("a new writer process is ready")
                return
            except Exception as exc:  # noqa: BLE001 - keep trying: the webhook answers 503 meanwhile
                self._failed_starts += 1
                if not self._closing:
                    log.error("%s; trying again", exc)


def _stop(proc, *pipes) -> None:  # noqa: ANN001
    """A child that did not become the writer: its input closed, waited for (killed if need be)."""
    for pipe in pipes:
        pipe.close()
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join()


def _wait(proc, timeout: float = 5.0) -> int | None:  # noqa: ANN001
    proc.join(timeout)
    return proc.exitcode
