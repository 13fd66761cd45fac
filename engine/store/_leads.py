"""Events, leads and what each event decided: the event log and everything derived from it.

The event log is the truth; lead rows are derived from it. `record` writes one evaluated event and
everything it caused (the event, the lead row, its decision, contributions, stage changes and, for a
lead that became sales-qualified, the durable `route_sql` work row) in the caller's transaction, so
a crash loses whole events, never half of one, and an event id is never applied twice.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable, Iterator, NamedTuple, Protocol, Sequence

from leadflow.core import compact_json, read_json
from leadflow.intake import storable as _storable
from leadflow.rules import LeadState

from ._outbox import OutboxTable


class Evaluation(Protocol):
    """What the store keeps of one event's evaluation (the runtime's Decision). A protocol, because
    the runtime that makes decisions sits beside the store, not below it."""

    @property
    def rules_version(self) -> str: ...
    @property
    def added(self) -> Sequence[Sequence[Any]]: ...  # (rule id, points) added by event rules
    @property
    def transitions(self) -> Sequence[dict]: ...  # {"from", "to", "reason", "rule"} stage changes

    def trace(self) -> dict: ...


class StoredEvent(NamedTuple):
    """An event as the log holds it, to tell a resent event from a different one under the same id."""
    digest: str | None  # None in rows stored before digests were kept
    lead: str
    type: str
    at: float
    data: str  # JSON text


class StageChange(NamedTuple):
    lead: str
    from_stage: str | None
    to_stage: str
    reason: str


_CHUNK = 500  # ids per `IN (...)`: far below both databases' limits on parameters


def _kept(text: str) -> str:
    """Hostile text as both databases can hold it (see dead_letter)."""
    return _storable(text).replace("\x00", "\\x00")


_json = compact_json


class LeadTables(OutboxTable):
    # -- writes ------------------------------------------------------------------------------------
    def record(self, event: dict, at: float, source: str, state: LeadState, decision: Evaluation,
               created: bool, digest: str | None = None, lead_row: bool = True) -> None:
        """Write one evaluated event and everything it caused (call inside a transaction). Without
        `lead_row` the caller writes the lead's row itself, later in the same transaction (`write_leads`)."""
        now = time.time()
        c = self
        data = _json(event.get("data") or {})
        c._exec("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at, digest) VALUES"
                  " (?,?,?,?,?,?,?,?,?)", (event["id"], event["lead"], event["type"], at, event["at"], data, source,
                                           now, digest))
        if lead_row:
            self.write_leads([(state, at, at, decision.rules_version)])
        c._exec("INSERT INTO decisions (event_id, lead, at, rules_version, trace) VALUES (?,?,?,?,?)",
                  (event["id"], state.id, at, decision.rules_version, _json(decision.trace())))
        if decision.added:
            c._exec_many("INSERT INTO contributions (event_id, lead, rule, points, at) VALUES (?,?,?,?,?)",
                          [(event["id"], state.id, rule, points, at) for rule, points in decision.added])
        if created:
            c._exec("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rule, rules_version, event_id)"
                      " VALUES (?,?,?,?,?,?,?,?)", (state.id, None, "new", at, "first event", None,
                                                    decision.rules_version, event["id"]))
        for t in decision.transitions:
            c._exec("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rule, rules_version, event_id)"
                      " VALUES (?,?,?,?,?,?,?,?)", (state.id, t["from"], t["to"], state.clock, t["reason"], t["rule"],
                                                    decision.rules_version, event["id"]))
            if t["to"] == "sql":
                self.add_outbox(f"route:{state.id}:{event['id']}", "route_sql", state.id,
                                {"lead": state.id, "event_id": event["id"], "score": state.score})

    def write_leads(self, rows: Iterable[tuple[LeadState, float, float, str]]) -> None:
        """Lead rows as of their state: (state, created_at if the row is new, updated_at, rules_version).
        An ingest batch writes each of its leads once, after its last event, instead of once per event."""
        self._exec_many(
            "INSERT INTO leads (id, stage, score, fit, engagement, owner, disqualified, created_at, updated_at,"
            " rules_version, state) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
            " stage=excluded.stage, score=excluded.score, fit=excluded.fit, engagement=excluded.engagement,"
            " owner=excluded.owner, disqualified=excluded.disqualified, updated_at=excluded.updated_at,"
            " rules_version=excluded.rules_version, state=excluded.state",
            [(s.id, s.stage, s.score, s.fit, s.engagement, s.owner, s.disqualified, created_at, updated_at, version,
              _json(s.to_json())) for s, created_at, updated_at, version in rows])

    # -- imported history (see pipeline/_history.py for how it combines with the rules) ---------------
    def add_stage_entry(self, lead: str, from_stage: str | None, to_stage: str, at: float, reason: str,
                        rule: str, rules_version: str, event_id: str) -> None:
        """A stage entry recorded at its own time (imported history), not at the lead's clock."""
        self._exec("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rule, rules_version,"
                          " event_id) VALUES (?,?,?,?,?,?,?,?)",
                          (lead, from_stage, to_stage, at, reason, rule, rules_version, event_id))

    def has_stage_entry(self, lead: str, stage: str, at: float) -> bool:
        return self._value("SELECT 1 FROM stage_history WHERE lead = ? AND to_stage = ? AND at = ?",
                           (lead, stage, at)) is not None

    def current_stage_imported(self, lead: str) -> bool:
        """Whether the lead's newest stage entry (by time) was imported."""
        return self._value("SELECT rule FROM stage_history WHERE lead = ? ORDER BY at DESC, id DESC LIMIT 1",
                           (lead,)) == "imported"

    def rechain_stages(self, lead: str) -> None:
        """Each entry's from_stage is the entry before it in time (after an older entry came in late)."""
        rows = self._exec("SELECT id, from_stage, to_stage FROM stage_history WHERE lead = ? ORDER BY at, id",
                                 (lead,)).fetchall()
        previous = None
        for row_id, from_stage, to_stage in rows:
            if from_stage != previous:
                self._exec("UPDATE stage_history SET from_stage = ? WHERE id = ?", (previous, row_id))
            previous = to_stage

    def backdate_lead(self, lead: str, at: float) -> None:
        """A history import met an older time for this lead: its `new` entry and creation move back to it."""
        self._exec("UPDATE stage_history SET at = ? WHERE lead = ? AND from_stage IS NULL AND to_stage = 'new'"
                          " AND at > ?", (at, lead, at))
        self._exec("UPDATE leads SET created_at = ? WHERE id = ? AND created_at > ?", (at, lead, at))

    def save_state(self, state: LeadState) -> None:
        """A lead changed without an event of its own (a nurture `set`, a decay tick's bookkeeping)."""
        self._exec("UPDATE leads SET state = ?, stage = ?, owner = ? WHERE id = ?",
                          (_json(state.to_json()), state.stage, state.owner, state.id))

    def dead_letter(self, raw: str, reason: str, field: str, source: str, line: int | None) -> None:
        """Keep rejected input, whatever it holds, alike in both databases: lone surrogates become escapes
        (SQLite text must be valid UTF-8) and so does NUL (PostgreSQL text cannot hold it)."""
        self._exec("INSERT INTO dead_letters (received_at, source, line, raw, reason, field) VALUES (?,?,?,?,?,?)",
                   (time.time(), _kept(source), line, _kept(raw), _kept(reason), _kept(field)))

    def note_rules(self, version: str, files: dict[str, str]) -> None:
        """Keep the text of every rule version that ever decided something, so a decision can be explained."""
        with self.transaction():
            self._exec("INSERT OR IGNORE INTO rule_versions (version, loaded_at, files) VALUES (?,?,?)",
                              (version, time.time(), json.dumps(files)))

    # -- reads: one event, one lead ------------------------------------------------------------------
    def has_event(self, event_id: str) -> bool:
        return self._value("SELECT 1 FROM events WHERE id = ?", (event_id,)) is not None

    def stored_event(self, event_id: str) -> StoredEvent | None:
        row = self._exec("SELECT digest, lead, type, at, data FROM events WHERE id = ?", (event_id,)).fetchone()
        return StoredEvent(*row) if row else None

    def latest_event_at(self) -> float | None:
        """The time of the newest event in the log (None when it is empty): "now" for a replayed log."""
        return self._value("SELECT max(at) FROM events")

    def event_times(self, lead: str, types: set[str]) -> dict[str, list[float]]:
        """When this lead's events of these types happened, oldest first, by type."""
        out: dict[str, list[float]] = {}
        if not types:
            return out
        marks = ",".join("?" for _ in types)
        for etype, at in self._exec(f"SELECT type, at FROM events WHERE lead = ? AND type IN ({marks})"
                                           " ORDER BY at", [lead, *sorted(types)]):
            out.setdefault(etype, []).append(at)
        return out

    def load_state(self, lead_id: str) -> LeadState | None:
        row = self._exec("SELECT state FROM leads WHERE id = ?", (lead_id,)).fetchone()
        return LeadState.from_json(read_json(row[0])) if row else None

    def load_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        """The states of those of these leads that have a row, in one statement per 500 ids (a batch
        reads them at once instead of one statement per event)."""
        return {lead: LeadState.from_json(read_json(text))
                for lead, text in self._in_chunks("SELECT id, state FROM leads WHERE id IN", lead_ids)}

    def stored_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        """`stored_event` for many ids at once: those already in the log."""
        return {row[0]: StoredEvent(*row[1:]) for row in
                self._in_chunks("SELECT id, digest, lead, type, at, data FROM events WHERE id IN", event_ids)}

    def _in_chunks(self, sql: str, keys: Iterable[str]) -> Iterator[tuple]:
        keys = list(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            yield from self._exec(f"{sql} ({','.join('?' for _ in chunk)})", chunk).fetchall()

    def lead_row(self, lead_id: str) -> dict | None:
        return self._row("SELECT * FROM leads WHERE id = ?", [lead_id])

    def history(self, lead_id: str) -> list[dict]:
        return self._rows("SELECT from_stage, to_stage, at, reason, rule, rules_version, event_id"
                          " FROM stage_history WHERE lead = ? ORDER BY at, id", [lead_id])

    def decisions(self, lead_id: str) -> list[dict]:
        return self._rows("SELECT d.event_id, d.at, d.rules_version, d.trace, e.type FROM decisions d"
                          " JOIN events e ON e.id = d.event_id WHERE d.lead = ? ORDER BY e.seq", [lead_id])

    # -- reads: all leads ----------------------------------------------------------------------------
    def list_leads(self, stage: str | None = None, limit: int | None = None) -> list[dict]:
        sql = "SELECT id, stage, score, owner FROM leads"
        params: list[object] = []
        if stage:
            sql += " WHERE stage = ?"
            params.append(stage)
        sql += " ORDER BY score DESC, id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, params)

    def stage_counts(self) -> dict[str, int]:
        return {row["stage"]: row["n"] for row in self._rows("SELECT stage, count(*) AS n FROM leads GROUP BY stage"
                                                             " ORDER BY stage")}

    def stage_changes(self) -> Iterator[StageChange]:
        """Every stage change of every lead, in the order they were recorded."""
        for row in self._stream("SELECT lead, from_stage, to_stage, reason FROM stage_history ORDER BY id"):
            yield StageChange(*row)

    def decision_traces(self) -> Iterator[dict]:
        """The trace (rules fired, points added, transitions) of every stored decision."""
        for (trace,) in self._stream("SELECT trace FROM decisions"):
            yield read_json(trace)

    def dead_letters(self, limit: int = 100) -> list[dict]:
        return self._rows("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", [limit])
