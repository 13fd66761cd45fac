"""The main path: validated event -> engine decision -> one transaction in the store.

`Pipeline` is built from its parts (a Store, an Engine, a checked rule set) and is what the CLI, the
HTTP service and the benchmark all call, so every entry point applies events the same way.

Every event is applied in its own savepoint, and anything that goes wrong while applying it (a bad
value the checks missed, an engine error, any exception) rolls back that event alone and rejects it
as a dead letter with its raw text: the rest of the file, the batch or the group commit goes on.
Only a failing database (disk full, I/O error) stops the caller, because then nothing can be kept.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from leadflow.core import MAX_ATTRIBUTES, MAX_ATTRIBUTES_BYTES, MAX_EVENT_BYTES, EngineError
from leadflow.intake import (
    INTERNAL,
    OUTSIDE,
    Accepted,
    Intake,
    Rejection,
    Unreadable,
    check_id,
    content_digest,
    parse_line,
    storable,
    validate,
)
from leadflow.nurture import on_event, reopen_event
from leadflow.rules import Compiled, LeadState, load_compiled, merge_attributes
from leadflow.runtime import Decision, Engine
from leadflow.store import Store

from ._cache import BatchCache
from ._history import Before, finish, settle
from ._webhooks import queue_stage_changes

BATCH = 500
RETRIES = 5  # a transaction another process deadlocked with (PostgreSQL) is applied again, this often
log = logging.getLogger("leadflow.pipeline")


@dataclass
class Outcome:
    status: str  # applied | duplicate | conflict | rejected
    event_id: Any = None
    lead: str | None = None
    reason: str = ""
    field: str = ""
    decision: Decision | None = None
    late: bool = False  # older than what the lead had already seen


@dataclass
class Counts:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    late: int = 0  # applied events older than what their lead had already seen
    rejections: list = field(default_factory=list)  # (source, line, field, reason), first 100
    conflicted: list = field(default_factory=list)  # the same, for conflicts

    def add(self, outcome: Outcome, source: str = "", line: int | None = None) -> None:
        if outcome.status == "applied":
            self.applied += 1
            self.late += outcome.late
        elif outcome.status == "duplicate":
            self.duplicates += 1
        elif outcome.status == "conflict":
            self.conflicts += 1
            if len(self.conflicted) < 100:
                self.conflicted.append((source, line, outcome.field, outcome.reason))
        else:
            self.rejected += 1
            if len(self.rejections) < 100:
                self.rejections.append((source, line, outcome.field, outcome.reason))

    def merge(self, other: "Counts") -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.conflicts += other.conflicts
        self.late += other.late
        self.rejections += other.rejections
        self.conflicted += other.conflicted


def _system_failure(exc: BaseException, store: Store) -> bool:
    """Memory or the database itself failing (full disk, I/O, corruption): no event's fault, nothing can be kept."""
    return isinstance(exc, MemoryError) or store.is_system_failure(exc)


class Pipeline:
    def __init__(self, store: Store, compiled: Compiled, engine: Engine | None = None):
        self.store = store
        self.compiled = compiled
        self.engine = engine or Engine()
        self._batch_locks = threading.local()  # .held: leads this thread's batch has locked already
        self.engine.load(compiled)
        files = {os.path.basename(p): _read(p) for p in compiled.rules.files}
        store.note_rules(compiled.rules.version, files)

    @classmethod
    def open(cls, db_path: str, rules_dir: str) -> "Pipeline":
        return cls(Store(db_path), load_compiled(rules_dir))

    @property
    def version(self) -> str:
        return self.compiled.rules.version

    # -- entry points ------------------------------------------------------------------------------
    def apply(self, obj: object, raw: str | None = None, source: str = "api", line: int | None = None,
              intake: Intake = OUTSIDE) -> Outcome:
        """Validate and apply one event object in its own transaction (or the caller's)."""
        with self.store.transaction():
            return self._apply(obj, raw, source, line, intake)

    def apply_text(self, raw: str, source: str, line: int | None = None, intake: Intake = OUTSIDE) -> Outcome:
        """One raw JSONL line or webhook item, inside the caller's transaction."""
        with self.store.transaction():
            return self._apply(parse_line(raw), raw, source, line, intake)

    def apply_internal(self, event: dict, source: str, strict: bool = True) -> Outcome:
        """An event leadflow makes itself (a rep's decision, a tick, a nurture step). Its id must be
        new: finding it taken (an outside sender used it before ids were reserved, or a bug) is
        reported, never a silent duplicate. strict raises EngineError, so the caller's transaction
        (the rep's Accept) rolls back and says why; otherwise the outcome says it and a dead letter
        keeps it."""
        nested = self.store.in_transaction
        with self.store.transaction():
            outcome = self._apply(event, None, source, None, INTERNAL)
        if strict and outcome.status != "applied":
            error = EngineError("INTERNAL_EVENT", f"leadflow's own {event.get('type')} event {event.get('id')!r} for "
                                                  f"{event.get('lead')!r} was not applied: {outcome.reason}",
                                "an event with this id is already in the log (sent from outside before ids were "
                                "reserved?); see `leadflow dead-letters`" if outcome.status == "conflict" else "")
            if nested:  # the caller's transaction rolls back, and this dead letter with it: keep_dead_letter
                error.dead_letter = (_dump(event), outcome.reason, outcome.field or "", source)  # type: ignore[attr-defined]
            raise error
        if outcome.status != "applied":
            log.error("%s event %s not applied: %s", event.get("type"), event.get("id"), outcome.reason)
        return outcome

    def keep_dead_letter(self, error: EngineError) -> None:
        """After the caller's transaction rolled back with `error`, keep the refused event it carries
        as a dead letter in a transaction of its own (the hint points the operator there)."""
        letter = getattr(error, "dead_letter", None)
        if letter is not None and not self.store.in_transaction:
            with self.store.transaction(durable=True):
                self.store.dead_letter(*letter, None)

    def apply_lines(self, lines: Iterable[tuple[int, str]], source: str,
                    progress: Callable[[int], None] | None = None, intake: Intake = OUTSIDE) -> Counts:
        """Apply JSONL lines in transactions of BATCH events, each in its own savepoint: a bad line
        becomes a dead letter and the rest go on."""
        counts = Counts()
        batch: list = []
        for number, raw in lines:
            batch.append((number, raw))
            if len(batch) >= BATCH:
                self._batch(batch, source, counts, intake)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self._batch(batch, source, counts, intake)
            if progress:
                progress(len(batch))
        return counts

    def _batch(self, batch: list, source: str, counts: Counts, intake: Intake) -> None:
        items = []
        for number, raw in batch:
            if isinstance(raw, Unreadable):  # refused by its reader (CSV): kept as a dead letter
                items.append((number, raw.text, raw.rejection))
            else:
                items.append((number, raw, parse_line(raw)))
        # Fast: the batch's reads and lead rows once (BatchCache), no savepoint per event. An event that
        # raises undoes the batch, which runs again the careful way: each event in its own savepoint, so
        # only that one is refused. History imports always go the careful way (they rewrite lead rows).
        fast = not intake.history
        attempt = 1
        while True:
            outcomes: list[tuple[Outcome, int]] = []
            try:
                # one fsync per BATCH events: a finished ingest is on disk
                with self.store.transaction(durable=True), self.batch([obj for _, _, obj in items], fast):
                    for number, raw, obj in items:
                        outcomes.append((self._apply(obj, raw, source, number, intake), number))
            except Exception as exc:
                if self.store.is_retryable(exc) and attempt < RETRIES:
                    attempt += 1
                    log.warning("batch of %s events rolled back (%s); applying it again", len(items),
                                type(exc).__name__)
                    continue
                if fast and not self.store.is_retryable(exc) and not _system_failure(exc, self.store):
                    fast = False  # an event failed: the batch again, event by event
                    continue
                raise
            for outcome, number in outcomes:  # counted once committed, so a retried batch counts once
                counts.add(outcome, source, number)
            return

    @contextmanager
    def batch(self, objs: Iterable[object], fast: bool = True) -> Iterator[None]:
        """Inside the caller's transaction: lock every lead of these parsed events at once, in one order
        (batches of other processes never wait on this one in a circle). `fast`: also read their
        states and stored ids once, write each lead's row once at the end (BatchCache) and apply
        without a savepoint per event; then the caller must undo the whole transaction if anything
        raises, and apply again without `fast`, so that only the failing event is refused."""
        objs = [obj for obj in objs if isinstance(obj, dict)]
        # the ids as they will be stored (NFC), which is what each event locks again as it is applied
        leads = {lead for lead in (check_id("lead", obj.get("lead")) for obj in objs) if isinstance(lead, str)}
        ids = {i for i in (check_id("id", obj.get("id")) for obj in objs) if isinstance(i, str)}
        self.store.lock_leads(leads)
        self._batch_locks.held = leads
        cache = self._batch_locks.cache = BatchCache(self.store, leads, ids) if fast else None
        try:
            yield
            if cache is not None:
                cache.flush()
        finally:
            self._batch_locks.held = ()
            self._batch_locks.cache = None

    def apply_parsed(self, raw: str, obj: object, source: str, intake: Intake = OUTSIDE) -> Outcome:
        """One item already read with `parse_line` (the group commit reads them to lock their leads)."""
        with self.store.transaction():
            return self._apply(obj, raw, source, None, intake)

    # -- one event ----------------------------------------------------------------------------------
    def _apply(self, obj: object, raw: str | None, source: str, line: int | None, intake: Intake) -> Outcome:
        if getattr(self._batch_locks, "cache", None) is not None:  # a fast batch: it undoes itself if this raises
            return self._apply_checked(obj, raw, source, line, intake)
        try:
            with self.store.savepoint():
                return self._apply_checked(obj, raw, source, line, intake)
        except Exception as exc:  # noqa: BLE001 - one event's failure must not take others with it
            if _system_failure(exc, self.store):
                raise
            reason = f"{exc.code}: {exc}" if isinstance(exc, EngineError) else \
                f"could not be applied ({type(exc).__name__}: {exc})"
            if not isinstance(exc, EngineError):
                log.warning("event rejected after %s", type(exc).__name__, exc_info=True)
            return self._reject(raw if raw is not None else _dump(obj), Rejection("", reason), source, line, obj)

    def _apply_checked(self, obj: object, raw: str | None, source: str, line: int | None, intake: Intake) -> Outcome:
        if isinstance(obj, Rejection):
            return self._reject(raw or "", obj, source, line, None)
        checked = validate(obj, intake)
        if isinstance(checked, Rejection):
            return self._reject(raw if raw is not None else _dump(obj), checked, source, line, obj)
        return self._apply_valid(checked, source, intake, raw, line)

    def _apply_valid(self, checked: Accepted, source: str, intake: Intake, raw: str | None = None,
                     line: int | None = None) -> Outcome:
        event, store = checked.event, self.store
        if event["lead"] not in getattr(self._batch_locks, "held", ()):
            store.lock_leads((event["lead"],))  # one event of a lead at a time, across every process
        digest = content_digest(event["lead"], event["type"], checked.at, event["data"])
        cache: BatchCache | None = getattr(self._batch_locks, "cache", None)
        stored = cache.stored_event(event["id"]) if cache else store.stored_event(event["id"])
        if stored is not None:
            # a digest stored before 1.0 and 1 were one number (or none, in an old row): the stored content
            # again (a row this batch wrote has today's digest, and no data in the cache)
            same = stored[0] == digest or \
                (stored[4] != "" and content_digest(stored[1], stored[2], stored[3], json.loads(stored[4])) == digest)
            if same and not intake.internal:
                return Outcome("duplicate", event["id"], event["lead"])
            why = ("is already in the event log; leadflow's own events need new ids" if intake.internal else
                   "was already used for a different event; a changed event needs a new id")
            return self._reject(raw if raw is not None else _dump(event), Rejection("id", why), source, line, event,
                                status="conflict")
        state = cache.state(event["lead"]) if cache else store.load_state(event["lead"])
        created = state is None
        state = state or LeadState(event["lead"])
        if event["type"] == "lead_updated" and not intake.internal:  # a nurture `set` is the rules' own
            problem = _attribute_limits(state.attrs, event["data"])
            if problem:
                return self._reject(raw if raw is not None else _dump(event), problem, source, line, event)
        before = Before.of(state)
        decision = self.engine.evaluate(self.compiled, state, event, checked.at)
        imported = settle(store, self.compiled.rules, state, event, checked.at, decision.transitions, intake, source,
                          before)
        reopen = False
        # History is what happened, not what to do now: an imported MQL from 2024 must not enter a
        # nurture track (its steps would all be due, and the worker would mail people years later).
        if (self.compiled.rules.nurture or self.compiled.rules.demote_below is not None) and not intake.history:
            reopen = on_event(store, self.compiled.rules, state, event, checked.at)
        store.record(event, checked.at, source, state, decision, created, digest, lead_row=cache is None)
        if cache:
            cache.applied(event, checked.at, digest, state, created, decision.rules_version)
        finish(store, state.id, imported, checked.at, created, intake, self.version)
        # the stage webhooks in the same savepoint as the stage history they announce
        queue_stage_changes(store, self.compiled.rules, event["id"], checked.at, state, created, decision.transitions)
        if reopen:  # the lead met its nurture goal: it climbs again, in this same transaction
            again = reopen_event(state.id, event["id"], checked.at)
            outcome = self._apply_valid(Accepted(again, checked.at), source, INTERNAL)
            if outcome.status != "applied":
                raise EngineError("INTERNAL_EVENT", f"the reopening {again['id']} was not applied: {outcome.reason}")
        return Outcome("applied", event["id"], event["lead"], decision=decision, late=before.late(checked.at))

    def _reject(self, raw: str, rejection: Rejection, source: str, line: int | None, obj: object,
                status: str = "rejected") -> Outcome:
        reason = _printable(rejection.reason if len(rejection.reason) <= 500 else rejection.reason[:497] + "...")
        fld = _printable(rejection.field[:300])
        self.store.dead_letter(raw, reason, fld, source, line)
        return Outcome(status, _given_id(obj), reason=reason, field=fld)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _attribute_limits(attrs: dict, data: dict) -> Rejection | None:
    """A lead's attributes are read and rewritten with its state on every event: keep them bounded.
    An update that does not grow an (older) oversized set is let through, so it can be cleaned up."""
    merged = merge_attributes(attrs, data)
    if len(merged) > MAX_ATTRIBUTES and len(merged) > len(attrs):
        return Rejection("data", f"would give the lead {len(merged)} attributes; the limit is {MAX_ATTRIBUTES} "
                                 "(remove unused ones with null)")
    size = len(json.dumps(merged, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass"))
    if size > MAX_ATTRIBUTES_BYTES:
        before = len(json.dumps(attrs, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass"))
        if size > before:
            return Rejection("data", f"would make the lead's attributes {size // 1024} KB; the limit is "
                                     f"{MAX_ATTRIBUTES_BYTES // 1024} KB (keep large text out of attributes)")
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1, line/paragraph separators


def _printable(text: str) -> str:
    """A reason or field (they quote the sender's text) safe to print as one line of stderr or log."""
    return _CONTROL.sub(_escape_control, storable(text))


def _escape_control(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _given_id(obj: object) -> Any:
    """The id a sender gave, to echo in answers (a string, or the number it mistakenly sent)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get("id", obj.get("messageId"))
    if isinstance(value, str):
        return storable(value[:200])
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63:
        return value
    return None


def _dump(obj: object) -> str:
    """Raw text for a dead letter of an object that came without its text."""
    try:
        text = json.dumps(obj, default=str)
    except (ValueError, TypeError, RecursionError):
        text = f"<{type(obj).__name__} that is not JSON>"
    return text if len(text) <= 2 * MAX_EVENT_BYTES else text[:2 * MAX_EVENT_BYTES]
