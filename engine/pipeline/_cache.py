"""What one ingest batch reads and writes of its leads, once for the whole batch.

Without it, every event costs two statements before it is evaluated (is its id in the log? what is its
lead's state?), a JSON parse of the state, and a rewrite of the lead's row (about 1 KB of JSON) after.
A batch already locks all its leads up front, so their rows cannot change under it except through the
batch itself: it reads them in two statements, keeps each lead's state object as the batch's events
change it, remembers the ids it applied, and writes each lead's row once, after its last event
(`flush`, before the batch commits). Nothing else in an event's path reads a lead's row.

The pipeline uses it only while no event has failed: an event that raises undoes the whole batch,
which then runs again event by event, each in its own savepoint, without the cache (see `_batch`), so
the cache never holds a state an undone event changed in memory.
"""
from __future__ import annotations

from typing import Iterable

from leadflow.rules import LeadState
from leadflow.store import Store, StoredEvent


class BatchCache:
    def __init__(self, store: Store, leads: Iterable[str], event_ids: Iterable[str]):
        self.store = store
        self._leads = set(leads)  # asked for: a lead here without a state has no row
        self._ids = set(event_ids)
        self._states: dict[str, LeadState] = store.load_states(self._leads)
        self._events: dict[str, StoredEvent] = store.stored_events(self._ids)
        self._rows: dict[str, tuple[LeadState, float, float, str]] = {}  # lead -> its row, to write in `flush`

    def stored_event(self, event_id: str) -> StoredEvent | None:
        found = self._events.get(event_id)
        if found is not None or event_id in self._ids:
            return found
        return self.store.stored_event(event_id)

    def state(self, lead: str) -> LeadState | None:
        found = self._states.get(lead)
        if found is not None or lead in self._leads:
            return found
        return self.store.load_state(lead)

    def applied(self, event: dict, at: float, digest: str, state: LeadState, created: bool, version: str) -> None:
        """The event is in the log now (in this transaction) and `state` is what its lead's row must hold."""
        self._ids.add(event["id"])
        self._events[event["id"]] = StoredEvent(digest, event["lead"], event["type"], at, "")
        self._leads.add(state.id)
        self._states[state.id] = state
        first = self._rows.get(state.id)
        self._rows[state.id] = (state, first[1] if first else at, at, version)  # created_at: the first event's

    def flush(self) -> None:
        """Write every changed lead's row once (inside the batch's transaction)."""
        if self._rows:
            self.store.write_leads(self._rows.values())
            self._rows.clear()
