"""One long-lived object that holds the pipeline, the sales desk and the delivery loop.

`leadflow serve` and `leadflow worker` both run a `LeadService`. What delivery may read is its
`view` (a read-only DeliveryView, see _view.py): notifiers are built with it and handed to
`deliver_through`, so nothing below the service holds the service itself. Rule files are re-read when they
change; a rule set with problems is logged, reported and ignored, so a bad edit never stops a running
service (the previous version keeps running, and loading is retried, until the files are fixed).
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Callable

from leadflow.core import LeadflowError, Location, Problem, parse_duration, printable
from leadflow.delivery import Dispatcher, Notifier
from leadflow.desk import SalesDesk
from leadflow.learning import apply_proposal, dismiss_proposal, schedule_proposal
from leadflow.nurture import LEASE, Scheduler
from leadflow.pipeline import Pipeline
from leadflow.rules import MAX_FILE_BYTES, load_compiled, rule_dir_lock, rule_files
from leadflow.runtime import Engine
from leadflow.store import Store

from ._presence import Presence
from ._view import DeliveryView

log = logging.getLogger("leadflow.service")
GATHER = 0.05  # seconds a woken worker waits for more commits before its pass (see LeadService.run)


def _stat(path: str, content: bool) -> tuple:
    """A file's identity; for rule files also a digest of (at most the checked size of) its bytes, since
    an edit can keep the size and land within the same mtime tick."""
    try:
        st = os.stat(path)
        if not content:
            return st.st_mtime_ns, st.st_size, st.st_ino
        with open(path, "rb") as fh:
            return st.st_size, hashlib.sha256(fh.read(MAX_FILE_BYTES + 1)).digest()
    except OSError:
        return (None,)


class LeadService:
    def __init__(self, db_path: str, rules_dir: str, clock: Callable[[], float] = time.time, lease: float = LEASE,
                 proposals_dir: str | None = None):
        """lease: seconds a nurture enrolment stays leased to this process without progress (another
        instance takes it over after that); proposals_dir: where tuning proposals are written (default:
        beside a SQLite database file, or beside the rules directory for PostgreSQL)."""
        self.rules_dir = rules_dir
        self.clock = clock
        self.lease = lease
        self.proposals_dir = proposals_dir
        self.engine = Engine()
        self.store = Store(db_path)
        self.pipeline = Pipeline(self.store, load_compiled(rules_dir), self.engine)
        self.desk = SalesDesk(self.pipeline, clock)
        self.view = DeliveryView(self.store, lambda: self.pipeline.compiled.rules, lambda: self.desk.routing)
        self.dispatcher: Dispatcher | None = None  # set by deliver_through; without it rows wait in the outbox
        self.scheduler = _scheduler(self.pipeline, lease)
        self.wake = threading.Event()
        self.presence: Presence | None = None  # this process in the instances table (serve and worker set it)
        self.rule_problems: list = []
        self._stamp = self._rules_stamp()
        self._failed_stamp: tuple | None = None  # the files of the last failed load, retried as below
        self._retry_at = 0.0
        self._retry_delay = 1.0  # doubles up to 60 s while the same files keep failing with an error
        # The loop and an Apply click both reload. One at a time, and never while a proposal's files are
        # being written: a load of a half-written set, or of older files finishing last, would switch the
        # service to rules nobody wrote.
        self._rules_lock = threading.RLock()

    def deliver_through(self, notifiers: list[Notifier]) -> None:
        """Deliver outbox rows through these notifiers (built with `self.view` when they render cards)."""
        self.dispatcher = Dispatcher(self.store, notifiers, self.clock)

    def _rules_stamp(self) -> tuple:
        """What loading depends on: the rule files and the templates they name (adding a missing
        template must retry a load that failed for want of it)."""
        templates = os.path.join(self.rules_dir, "templates")
        names = sorted(os.listdir(templates)) if os.path.isdir(templates) else []
        return (tuple((p, *_stat(p, True)) for p in rule_files(self.rules_dir))
                + tuple((n, *_stat(os.path.join(templates, n), False)) for n in names))

    def reload_rules(self) -> bool:
        """Switch to changed rule files if they are valid; returns True when a new version is live.

        Whatever goes wrong while loading (problems in the files, or any exception: a file vanishing
        mid-read, the engine refusing the compiled rules, the database busy) is logged, shown in
        `rule_problems` (and /healthz), and tried again until the files load; the running
        version stays live meanwhile. Once they load, the problems clear, also when the fixed files are
        the version already running. Problems in the files are checked again only when the files change
        (a big broken file must not cost seconds on every pass); other errors are retried with a backoff
        doubling from 1 s to 60 s."""
        with self._rules_lock:
            return self._reload_rules()

    def _reload_rules(self) -> bool:
        stamp = None
        try:
            stamp = self._rules_stamp()
            if stamp == self._stamp and not self.rule_problems:
                return False
            if stamp == self._failed_stamp and self.clock() < self._retry_at:
                return False  # the same files failed: problems in them wait for an edit, errors back off
            with rule_dir_lock(self.rules_dir):  # a proposal being written waits, or is waited for
                stamp = self._rules_stamp()  # what the files are now that no proposal is half-written
                compiled = load_compiled(self.rules_dir)
                if self._rules_stamp() != stamp:
                    return False  # written to while loading (an editor or git, which take no lock): next pass
            switched = compiled.rules.version != self.pipeline.version
            if switched:
                # build everything first: if the desk refuses the rules (bad hours), nothing is half-switched
                pipeline = Pipeline(self.store, compiled, self.engine)
                desk = SalesDesk(pipeline, self.clock)
                scheduler = _scheduler(pipeline, self.lease)
                self.pipeline, self.desk, self.scheduler = pipeline, desk, scheduler
        except LeadflowError as exc:  # problems in the files: checking them again cannot help until they change
            self._failed_stamp, self._retry_at = stamp, float("inf")
            self._reload_failed(exc.problems)
            return False
        except Exception as exc:  # noqa: BLE001 - any failure must be reported and retried, never escape
            self._retry_delay = min(60.0, self._retry_delay * 2) if stamp == self._failed_stamp else 1.0
            self._failed_stamp, self._retry_at = stamp, self.clock() + self._retry_delay
            self._reload_failed([Problem("RULES_RELOAD_FAILED", f"loading the rules failed: {exc!r}",
                                         Location(self.rules_dir), "the last good version keeps running")])
            return False
        self._stamp, self._failed_stamp = stamp, None
        if self.rule_problems:
            log.info("rule problems cleared; rules %s are live", compiled.rules.version)
        self.rule_problems = []
        for w in compiled.rules.warnings if switched else ():
            log.warning("rules %s: %s: warning: %s: %s", compiled.rules.version, printable(str(w.location)), w.code,
                        printable(w.message))
        if switched:
            log.info("rules %s are live", compiled.rules.version)
        return switched

    def _reload_failed(self, problems: list) -> None:
        if problems != self.rule_problems:  # a failure is logged once, not on every retry
            for p in problems:
                log.error("rules not reloaded: %s: %s: %s", printable(str(p.location)), p.code, printable(p.message))
        self.rule_problems = problems

    def work_once(self) -> dict:
        """One pass of background work: route new SQLs, check SLAs, deliver notifications."""
        due = self.scheduler.run_due(self.clock())
        routed = self.desk.route_pending()
        sla = self.desk.tick()
        digests = self.schedule_digest() + schedule_proposal(self.store, self.pipeline.compiled.rules,
                                                             self.rules_dir, self.clock(), self.proposals_dir)
        delivered = self.dispatcher.run_once() if self.dispatcher else 0
        return {**due, "routed": routed, **sla, "digests": digests, "delivered": delivered}

    def run_until(self, until: float, clock: "ManualClock") -> dict:
        """Fast-forward: run every due step, tick, SLA deadline and delivery up to `until`, in time order."""
        totals: dict = {}

        def once() -> int:
            done = 0
            for key, value in self.work_once().items():
                totals[key] = totals.get(key, 0) + value
                done += value
            return done

        stalled = 0
        while stalled < 3:
            progress = once()
            nxt = self.store.next_due()
            if nxt is None or nxt > until:
                break
            if nxt > clock.now:
                clock.now, stalled = nxt, 0
            else:
                stalled = 0 if progress else stalled + 1
        clock.now = max(clock.now, until)
        once()
        return totals

    def schedule_digest(self) -> int:
        """Queue the periodic stats digest: once per period, whatever restarts happen and however many
        instances share the database (the period is claimed on its `schedule` row, compare-and-set,
        in the transaction that queues the digest)."""
        digest = self.pipeline.compiled.rules.section("digest")
        if not digest:
            return 0
        every = parse_duration(digest.get("every", "7d"))
        now = self.clock()
        last = self.store.last_run("digest")
        if last is not None and now - last < every:
            return 0  # the common case, answered without a write
        with self.store.transaction():
            if not self.store.claim_run("digest", now, every):
                return 0  # another instance has this period
            since = now - every
            self.store.add_outbox(f"digest:{int(since // every)}", "digest", "", {
                "channel": digest["channel"], "since": since, "until": now})
        return 1

    def apply_proposal(self, proposal_id: int, by: str) -> tuple[str, str]:
        """Apply a tuning proposal over the live rules (see engine.learning) and switch to them."""
        with self._rules_lock:
            return apply_proposal(self.store, self.rules_dir, proposal_id, by, self.clock(), self._reload_version)

    def dismiss_proposal(self, proposal_id: int, by: str) -> tuple[str, str]:
        return dismiss_proposal(self.store, proposal_id, by, self.clock())

    def _reload_version(self) -> str:
        self.reload_rules()
        return self.pipeline.version

    def run(self, stop: threading.Event, interval: float = 1.0, gather: float = GATHER) -> None:
        """Work until `stop` is set; `wake` cuts the wait short when new work was just committed.

        gather: once woken, wait this long for more commits before the pass. Under webhook load a
        commit lands every few milliseconds; a pass per commit repeats the pass's fixed work (rule
        files checked, due enrolments and SQLs looked up, one claim transaction each) for one or two
        rows, and its transactions stand in the way of the next group commit. A pass at most every
        `gather` seconds does the same work in batches, for a card that leaves that much later."""
        while not stop.is_set():
            try:
                self.reload_rules()
                if self.presence:  # the heartbeat comes from this loop: a hung loop stops showing as live
                    self.presence.beat(self.pipeline.version)
                self.work_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any single failure
                log.exception("background work failed; retrying")
            if self.wake.wait(interval) and gather > 0:
                stop.wait(gather)
            self.wake.clear()


def _scheduler(pipeline: Pipeline, lease: float) -> Scheduler:
    """The scheduler for a pipeline's rules; its own events go back through that pipeline."""
    return Scheduler(pipeline.store, pipeline.compiled.rules, pipeline.apply_internal, lease)


class ManualClock:
    """A clock that only moves when told to (worker --until, tests)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now
