"""What one ingest batch reads of its leads and events, read once for the whole batch.

Without it, every event costs two statements before it is evaluated (is its id in the log? what is its
lead's state?) and a JSON parse of the state. A batch already locks all its leads up front, so their
rows cannot change under it except through the batch itself: it reads them in two statements, then
keeps each lead's state object as the batch's events change it, and remembers the ids it applied.

Whatever an undone event (a rolled-back savepoint) may have touched is no longer known: `forget`
drops everything and later events read the database again, as they would without the cache.
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

    def applied(self, event: dict, at: float, digest: str, state: LeadState) -> None:
        """The event is in the log now (in this transaction) and `state` is its lead's row."""
        self._ids.add(event["id"])
        self._events[event["id"]] = StoredEvent(digest, event["lead"], event["type"], at, "")
        self._leads.add(state.id)
        self._states[state.id] = state

    def forget(self) -> None:
        self._leads.clear()
        self._ids.clear()
        self._states.clear()
        self._events.clear()
