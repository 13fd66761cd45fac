"""The main path: validated event -> engine decision -> one transaction in the store.

`Pipeline` is built from its parts (a Store, an Engine, a checked rule set) and is what the CLI, the
HTTP service and the benchmark all call, so every entry point applies events the same way.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .compiler import Compiled, load_compiled
from .errors import EngineError
from .events import Accepted, Rejection, parse_line, validate
from .leadstate import LeadState
from .runtime import Decision, Engine
from .scheduler import on_event, reopen_event
from .store import Store

BATCH = 500


@dataclass
class Outcome:
    status: str  # applied | duplicate | rejected
    event_id: str | None = None
    lead: str | None = None
    reason: str = ""
    field: str = ""
    decision: Decision | None = None


@dataclass
class Counts:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list = field(default_factory=list)  # (source, line, field, reason), first 100

    def add(self, outcome: Outcome, source: str = "", line: int | None = None) -> None:
        if outcome.status == "applied":
            self.applied += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        else:
            self.rejected += 1
            if len(self.rejections) < 100:
                self.rejections.append((source, line, outcome.field, outcome.reason))


class Pipeline:
    def __init__(self, store: Store, compiled: Compiled, engine: Engine | None = None):
        self.store = store
        self.compiled = compiled
        self.engine = engine or Engine()
        self.engine.load(compiled)
        files = {os.path.basename(p): open(p, encoding="utf-8").read() for p in compiled.rules.files}
        store.note_rules(compiled.rules.version, files)

    @classmethod
    def open(cls, db_path: str, rules_dir: str) -> "Pipeline":
        return cls(Store(db_path), load_compiled(rules_dir))

    @property
    def version(self) -> str:
        return self.compiled.rules.version

    def apply(self, obj: object, raw: str | None = None, source: str = "api", line: int | None = None) -> Outcome:
        """Validate and apply one event object in its own transaction."""
        with self.store.transaction():
            return self._apply(obj, raw, source, line)

    def apply_lines(self, lines: Iterable[tuple[int, str]], source: str,
                    progress: Callable[[int], None] | None = None) -> Counts:
        """Apply JSONL lines in batches; a bad line becomes a dead letter and the rest go on."""
        counts = Counts()
        batch: list = []
        for number, raw in lines:
            batch.append((number, raw))
            if len(batch) >= BATCH:
                self._batch(batch, source, counts)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self._batch(batch, source, counts)
            if progress:
                progress(len(batch))
        return counts

    def _batch(self, batch: list, source: str, counts: Counts) -> None:
        with self.store.transaction():
            for number, raw in batch:
                parsed = parse_line(raw)
                outcome = self._apply(parsed, raw, source, number)
                counts.add(outcome, source, number)

    def _apply(self, obj: object, raw: str | None, source: str, line: int | None) -> Outcome:
        if isinstance(obj, Rejection):
            return self._reject(raw or "", obj, source, line)
        checked = validate(obj)
        if isinstance(checked, Rejection):
            return self._reject(raw if raw is not None else json.dumps(obj, default=str), checked, source, line)
        return self._apply_valid(checked, source)

    def _apply_valid(self, checked: Accepted, source: str) -> Outcome:
        event, store = checked.event, self.store
        if store.has_event(event["id"]):
            return Outcome("duplicate", event["id"], event["lead"])
        try:
            with store.savepoint():
                state = store.load_state(event["lead"])
                created = state is None
                state = state or LeadState(event["lead"])
                decision = self.engine.evaluate(self.compiled, state, event, checked.at)
                reopen = False
                if self.compiled.rules.nurture or self.compiled.rules.demote_below is not None:
                    reopen = on_event(store, self.compiled.rules, state, event, checked.at)
                store.record(event, checked.at, source, state, decision, created)
                if reopen:  # the lead met its nurture goal: it climbs again, in this same transaction
                    self._apply_valid(Accepted(reopen_event(state.id, event["id"], checked.at), checked.at), source)
        except EngineError as exc:
            rejection = Rejection("", f"{exc.code}: {exc}")
            return self._reject(json.dumps(event), rejection, source, None)
        return Outcome("applied", event["id"], event["lead"], decision=decision)

    def _reject(self, raw: str, rejection: Rejection, source: str, line: int | None) -> Outcome:
        self.store.dead_letter(raw, rejection.reason, rejection.field, source, line)
        return Outcome("rejected", reason=rejection.reason, field=rejection.field)
