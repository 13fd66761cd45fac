"""The durable scheduler: nurture steps and decay ticks, kept in the store and run by the worker.

Every step runs in its own transaction together with the move of the enrolment's program counter,
and what a step sends is an outbox row keyed by (enrolment, step): killed at any moment, the worker
re-runs at most the step it was in, and the key keeps that step from sending twice. Late steps run
when the worker comes back. Time comes from the injected clock, so `worker --until` and the tests
can fast-forward.

Any number of processes may run the scheduler on one database (see leadflow.store's _claims.py): a
due enrolment is leased to one run (`lease` seconds of wall-clock time, renewed as its steps go on,
given back when the run ends); each step holds the lead's lock and commits only while its run still holds
the lease, so a run that lost its lease stops before writing. A crashed run's leases expire, or are
taken over at once when its process is provably gone (same machine, pid no longer running). A decay
timer is taken in the transaction that applies its tick, under the lead's lock, and put back by a
rollback.

Decay: after each event an MQL with `demote_below` gets a timer at the moment its decaying score
will cross that line (engagement decays exponentially, so the moment can be solved for); when it is
due a `decay_tick` event re-evaluates just that lead. Leads that cannot change have no timer.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from leadflow.core import Claimer, add_working_time, format_time, holder_gone, parse_hours
from leadflow.rules import LeadState, MissingFields, RuleSet, Track, TrackEntry, holds, render, rule_value
from leadflow.store import Store

log = logging.getLogger("leadflow.scheduler")
BUSINESS = parse_hours("mon-fri 00:00-24:00", "UTC")
MAX_STEPS_PER_RUN = 100  # a guard against a track that loops without waiting
MAX_ENROLMENTS_PER_RUN = 500  # enrolments one run takes on (the rest wait for the next run)
CLAIM = 25  # enrolments leased at a time: small, so that several processes share a backlog
LEASE = 60.0  # seconds of wall-clock time a run holds an enrolment without taking a step


class _History:
    """Event times by type, read from the store only if a condition actually counts events; a
    track's conditions only see what happened since the lead enrolled."""

    def __init__(self, store: Store, lead: str, types: set, since: float | None = None):
        self.args = (store, lead, types, since)
        self.loaded: dict | None = None
        self.extra: dict = {}

    def _load(self) -> dict:
        if self.loaded is None:
            store, lead, types, since = self.args
            found = store.event_times(lead, types) if types else {}
            if since is not None:
                found = {t: [x for x in times if x >= since] for t, times in found.items()}
            for etype, times in self.extra.items():
                found.setdefault(etype, []).extend(times)
            self.loaded = found
        return self.loaded

    def add(self, etype: str, at: float) -> None:
        self.extra.setdefault(etype, []).append(at)

    def get(self, etype: str, default: Any = None) -> Any:
        return self._load().get(etype, default)


def _history(store: Store, lead: str, types: set, since: float | None = None) -> _History:
    return _History(store, lead, types, since)


def on_event(store: Store, rules: RuleSet, state: LeadState, event: dict, at: float) -> bool:
    """Enrol, exit, wake waiting enrolments and set the decay timer (inside the event's transaction).
    Returns True when a recycled lead met its track's goal and should be reopened."""
    reopen = False
    for track in rules.nurture:
        entry = state.tracks.get(track.id)
        active = bool(entry and entry.status == "active")
        history = _history(store, state.id, track.event_types, entry.enrolled_at if active else None)
        if event["type"] in track.event_types:  # the event being applied is not stored yet
            history.add(event["type"], at)
        if active:
            if entry.waiting_for:  # the enrolment row says what it waits for; a stale marker is dropped
                row = store.active_enrollment(state.id, track.id)
                if row and row["waiting_for"] == event["type"]:  # `wait: { until: EVENT }` is over
                    store.update_enrollment(row["id"], row["pc"], "active", at, None, at)
                entry.waiting_for = row["waiting_for"] if row and row["waiting_for"] != event["type"] else None
            if track.exit is not None and holds(track.exit, state.attrs, state, state.clock, history):
                _finish(store, state, track.id, "exited", at, "goal met: left the track")
                reopen = reopen or state.stage == "recycled"
            continue
        if track.enroll is None or not holds(track.enroll, state.attrs, state, state.clock, history):
            continue
        if entry and (track.reenroll is None or at - entry.enrolled_at < track.reenroll):
            continue
        enrollment = store.enroll(state.id, track.id, at)
        state.tracks[track.id] = TrackEntry("active", at)
        store.log_step({"id": enrollment, "lead": state.id, "track": track.id}, -1, "enroll", at,
                       f"enrolled in {track.id}")
    due = demote_time(state, rules)
    if due is not None and store.current_stage_imported(state.id):
        due = None  # decay never demotes a stage a CRM import set (the pipeline would undo it, tick after tick)
    if due != state.decay_due or event["type"] == "decay_tick":  # the tick's own timer was just removed
        store.set_timer(state.id, "decay", due)
        state.decay_due = due
    return reopen


def reopen_event(lead: str, cause: str, at: float) -> dict:
    return {"id": f"reopen:{lead}:{cause}", "lead": lead, "type": "lead_reopened", "at": format_time(at),
            "data": {"reason": "nurture goal met"}}


def _finish(store: Store, state: LeadState, track_id: str, status: str, at: float, why: str) -> None:
    row = store.active_enrollment(state.id, track_id)
    if row:
        store.update_enrollment(row["id"], row["pc"], status, None, None, at)
        store.log_step(row, row["pc"], status, at, why)
    entry = state.tracks.get(track_id)
    if entry:
        entry.status = status


def demote_time(state: LeadState, rules: RuleSet) -> float | None:
    """When the decaying score of this MQL falls below `demote_below`; None when it never will."""
    if state.stage != "mql" or rules.demote_below is None or not rules.half_life or state.clock is None:
        return None
    raw = sum(rule_value(state, rid, state.clock, rules.half_life) for rid in state.tallies)
    room = rules.demote_below - state.fit - 0.01  # engagement must fall below this, after rounding
    if raw <= 0 or room <= 0:
        return None  # nothing left to decay, or fit alone keeps it up
    if raw <= room:
        return state.clock + 60.0  # as good as below already: tick a minute later
    return state.clock + rules.half_life * math.log2(raw / room) + 60.0


class _StepFailed(Exception):
    """A nurture step raised; carries the program counter of that step (its cause is the error)."""

    def __init__(self, pc: int):
        super().__init__(f"nurture step {pc} failed")
        self.pc = pc


class ApplyInternal(Protocol):
    """How the scheduler hands its own events (a decay tick, a nurture `set`, a reopening) to the
    pipeline: the pipeline's `apply_internal`, passed in so that nurture never imports the pipeline
    (which imports nurture for `on_event`)."""

    def __call__(self, event: dict, source: str, strict: bool = True) -> object: ...


class Scheduler:
    """Runs due nurture steps and decay ticks for one rule set; built again when the rules change.
    `lease`: seconds an enrolment stays leased to a run without a step (the steps renew it); `wall`:
    the real clock leases are measured on (shared by every process, unlike a fast-forwarded one)."""

    def __init__(self, store: Store, rules: RuleSet, apply_internal: ApplyInternal, lease: float = LEASE,
                 wall: Callable[[], float] = time.time):
        self.store = store
        self.rules = rules
        self.apply_internal = apply_internal
        self.lease = lease
        self.wall = wall

    def run_due(self, now: float) -> dict:
        counts = {"steps": 0, "ticks": 0}
        holder = Claimer.here().to_text()  # this run, in this process
        # leases of runs whose process is provably gone are taken at once (asked once per run: rare)
        gone = [h for h in self.store.enrollment_holders(now, self.wall()) if holder_gone(h)]
        seen: set[int] = set()
        while len(seen) < MAX_ENROLMENTS_PER_RUN:
            rows = self._claim(now, holder, gone)
            again = [row for row in rows if row["id"] in seen]  # due again at once: left to the next run
            if again:
                with self.store.transaction():
                    for row in again:
                        self.store.release_enrollment(row["id"], holder)
            if len(again) == len(rows):
                break
            for row in rows:
                if row["id"] not in seen:
                    seen.add(row["id"])
                    counts["steps"] += self._run_leased(row, now, holder)
        counts["ticks"] = self._ticks(now)
        return counts

    def _claim(self, now: float, holder: str, gone: list[str]) -> list[dict]:
        """Lease due enrolments to this run: free ones, expired ones, and those whose holder is gone."""
        wall = self.wall()
        with self.store.transaction():
            return self.store.claim_enrollments(now, holder, wall, wall + self.lease, CLAIM, gone)

    def _run_leased(self, row: dict, now: float, holder: str) -> int:
        """Run one leased enrolment's due steps; a step that raises fails the enrolment, not the run."""
        try:
            return self._advance(row, now, holder)
        except Exception as exc:  # one broken step must not stop the others
            pc = exc.pc if isinstance(exc, _StepFailed) else row["pc"]
            cause = exc.__cause__ if isinstance(exc, _StepFailed) else exc
            log.error("nurture step %s of enrolment %s failed", pc, row["id"], exc_info=cause)
            with self.store.transaction():
                self.store.lock_leads((row["lead"],))
                if self.store.hold_enrollment(row["id"], holder, self.wall(), self.lease) is not None:
                    self.store.update_enrollment(row["id"], pc, "failed", None, None, now)
                    self.store.log_step(row, pc, "failed", now, f"{type(cause).__name__}: {cause}"[:300])
                    self.store.release_enrollment(row["id"], holder)
            return 0

    def _ticks(self, now: float) -> int:
        """Apply due decay ticks, each in the transaction that takes its timer; a timer whose lead is
        busy (an event, or another process's tick) is left for the next pass rather than waited for."""
        ticks = 0
        for lead, kind, _ in self.store.due_timers(now):
            with self.store.transaction():
                if not self.store.try_lock_lead(lead):
                    continue
                due = self.store.take_timer(lead, kind, now)
                if due is None:  # another process ticked it, or an event moved it later
                    continue
                # not strict: a tick that cannot be applied is logged and dead-lettered, the others go on
                self.apply_internal({"id": f"tick:{lead}:{int(due)}", "lead": lead, "type": "decay_tick",
                                     "at": format_time(max(due, 0)), "data": {}}, "scheduler", strict=False)
            ticks += 1
        return ticks

    def _advance(self, row: dict, now: float, holder: str) -> int:
        """Step a leased enrolment until it waits or ends, each step in its own transaction that holds
        the lead and renews the lease first; the lease is given back with the last step."""
        rules, store = self.rules, self.store
        track = next((t for t in rules.nurture if t.id == row["track"]), None)
        steps = 0
        when = max(row["next_at"], 0.0)  # a step is due at its own time, however late the worker runs
        for _ in range(MAX_STEPS_PER_RUN):
            try:
                with store.transaction():
                    store.lock_leads((row["lead"],))  # the step rewrites the lead's state, like an event
                    current = store.hold_enrollment(row["id"], holder, self.wall(), self.lease)
                    if current is None:  # the lease ran out and another run took it: it goes on from here
                        return steps
                    row = current
                    if row["status"] != "active" or row["next_at"] is None or row["next_at"] > now:
                        store.release_enrollment(row["id"], holder)  # an event ended or woke it meanwhile
                        return steps
                    state = store.load_state(row["lead"])
                    if track is None or state is None:
                        store.update_enrollment(row["id"], row["pc"], "stopped", None, None, now)
                        store.release_enrollment(row["id"], holder)
                        return steps
                    _, done = self._step(track, row, state, when, rules)
                    if done:
                        store.release_enrollment(row["id"], holder)
            except Exception as exc:  # the steps before it are committed: the failure is this step's
                raise _StepFailed(row["pc"]) from exc
            steps += 1
            if done:
                return steps
        with store.transaction():  # a track that loops without waiting: the next run goes on with it
            store.release_enrollment(row["id"], holder)
        return steps

    def _step(self, track: Track, row: dict, state: LeadState, when: float, rules: RuleSet) -> tuple[int, bool]:
        """Run the instruction at row['pc']; (next pc, True when the enrolment now waits or ended)."""
        store, pc = self.store, row["pc"]
        history = _history(store, state.id, track.event_types, row["enrolled_at"])
        if track.exit is not None and holds(track.exit, state.attrs, state, when, history):
            _finish(store, state, track.id, "exited", when, "goal met: left the track")
            store.save_state(state)
            if state.stage == "recycled":
                self.apply_internal(reopen_event(state.id, f"{row['id']}", when), source="nurture")
            return pc, True
        ins = track.program[pc]
        if ins.op == "end":
            _finish(store, state, track.id, "done", when, "track finished")
            store.save_state(state)
            return pc, True
        if ins.op in ("wait", "wait_until"):
            if ins.op == "wait":
                due = add_working_time(BUSINESS, when, ins.arg) if ins.business else when + ins.arg
                waiting = None
            else:
                due, waiting = when + (ins.at_most or 0.0), ins.arg
                # the worker may run this step late: an awaited event that came in meanwhile ends the wait
                seen = [t for t in store.event_times(state.id, {ins.arg}).get(ins.arg, []) if when <= t < due]
                if seen:
                    due, waiting = seen[0], None
                state.tracks.setdefault(track.id, TrackEntry("active", when)).waiting_for = waiting
                store.save_state(state)
            store.update_enrollment(row["id"], pc + 1, "active", due, waiting, when)
            store.log_step(row, pc, ins.op, when, f"wait until {format_time(due)}" +
                           (f" or {waiting}" if waiting else ""))
            return pc + 1, True
        if ins.op == "if":
            chosen = holds(ins.arg, state.attrs, state, when, history)
            store.log_step(row, pc, "if", when, "condition held: then" if chosen else "condition did not hold: else")
            nxt = pc + 1 if chosen else ins.target
        elif ins.op == "jump":
            nxt = ins.target
        elif ins.op == "set":
            self.apply_internal({"id": f"nurture:{row['id']}:{pc}", "lead": state.id, "type": "lead_updated",
                                 "at": format_time(when), "data": ins.arg}, source="nurture")
            store.log_step(row, pc, "set", when, json.dumps(ins.arg))
            nxt = pc + 1
        else:  # send / notify
            fields = {**state.attrs, "id": state.id, "score": state.score, "owner": state.owner or "",
                      "stage": state.stage}
            try:
                subject, text = render(ins.arg, rules.template_dir, fields)
            except MissingFields as exc:  # never a message with blanks: this step fails, the track goes on
                store.log_step(row, pc, "failed", when, f"{ins.arg['channel']} not sent: {exc}")
                subject = None
            if subject is not None:
                payload = {"lead": state.id, "track": track.id, "enrollment": row["id"], "step": pc,
                           "channel": ins.arg["channel"], "template": ins.arg.get("template"), "subject": subject,
                           "text": text, "to": state.attrs.get("email"), "owner": state.owner}
                store.add_outbox(f"nurture:{row['id']}:{pc}", ins.arg["channel"], state.id, payload)
                store.log_step(row, pc, "send", when, f"{ins.arg['channel']}: {subject or text[:60]}")
            nxt = pc + 1
        store.update_enrollment(row["id"], nxt, "active", when, None, when)
        return nxt, False
