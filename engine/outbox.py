"""Delivering outbox rows: at least once from the store's side, exactly once with the notifier's help.

A row is claimed (`sending`, committed) before the notifier is called and marked `done` after. A
crash between the two leaves it `sending`; on the next run the notifier is told (`resumed=True`,
with the row's creation time as `since`) so it can look for the message it may already have sent
(the Slack notifier searches the conversation for the row's key) instead of sending it twice.

Each row is delivered on its own: whatever one row raises (a refused address, a bug, a value the
database will not store) is recorded on that row and the loop goes on with the next. How a failure
is handled follows engine/delivery.py: permanent failures fail the row at once with the reason,
transient ones back off (a 429 after exactly its Retry-After), anything else is retried and failed
after about four hours. Failed rows stay in the table: `leadflow outbox --failed` lists them.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

from .delivery import Backoff, DeliveryError, RetryLater, classify
from .store import Store
from .store_outbox import plain_text
from .timeutil import format_time

__all__ = ["Dispatcher", "Notifier", "OutboxEntry", "RetryLater", "list_outbox"]
log = logging.getLogger("leadflow.outbox")


class Notifier(Protocol):
    kinds: tuple

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict: ...


class Dispatcher:
    def __init__(self, store: Store, notifiers: Notifier | list, clock: Callable[[], float] = time.time,
                 backoff: Backoff | None = None):
        self.store = store
        self.notifiers = notifiers if isinstance(notifiers, list) else [notifiers]
        self.by_kind = {kind: n for n in self.notifiers for kind in n.kinds}
        self.clock = clock
        self.backoff = backoff or Backoff()

    def add(self, notifier: Notifier) -> None:
        """Deliver `notifier.kinds` through this notifier too (e.g. e-mail beside Slack)."""
        self.notifiers.append(notifier)
        self.by_kind.update({kind: notifier for kind in notifier.kinds})

    def run_once(self) -> int:
        """Deliver every due row once; returns how many were delivered."""
        delivered = 0
        for row in self.store.due_outbox(self.clock(), tuple(self.by_kind)):
            try:
                delivered += self._deliver(row)
            except Exception as exc:  # noqa: BLE001 - recording the outcome failed: isolate the row, go on
                log.exception("outbox row %s could not be recorded", row["key"])
                self._last_resort(row, "failed", f"unexpected: the outcome was not recorded ({type(exc).__name__})")
        return delivered

    def _deliver(self, row: dict) -> int:
        resumed = row["status"] == "sending" or row["attempts"] > 0  # it may have got through before
        # durable: after a power loss the claim (and, the WAL being sequential, the assignment or step
        # that wrote the row) is on disk whenever the message may have left, so the resume path looks first
        with self.store.transaction(durable=True):
            if not self.store.outbox_claim(row["id"], row["status"], row["attempts"]):
                return 0  # another dispatcher has it
        try:
            payload = _payload(row["payload"])
            result = self.by_kind[row["kind"]].deliver(row["kind"], row["lead"], payload, row["key"], resumed,
                                                      since=row["created_at"] or 0.0)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded on its row
            self._failed(row, classify(exc))
            return 0
        try:
            with self.store.transaction():
                self.store.outbox_done(row["id"], result if isinstance(result, dict) else {})
        except Exception as exc:  # noqa: BLE001 - it was delivered: never leave it to be sent again
            log.exception("outbox row %s was delivered but its result could not be stored", row["key"])
            self._last_resort(row, "done", f"delivered; the result could not be stored ({type(exc).__name__})")
        return 1

    def _failed(self, row: dict, error: DeliveryError) -> None:
        attempts = row["attempts"] + 1
        if error.permanent or self.backoff.give_up(attempts, error):
            reason = str(error) if error.permanent else f"gave up after {attempts} attempts: {error}"
            log.warning("delivery of %s failed for good: %s", row["key"], reason)
            with self.store.transaction():
                self.store.outbox_fail(row["id"], reason)
                self._note_nurture(row, reason)
            return
        log.info("delivery of %s failed (attempt %d), retrying: %s", row["key"], attempts, error)
        with self.store.transaction():
            self.store.outbox_retry(row["id"], str(error), self.clock() + self.backoff.delay(attempts, error))

    def _note_nurture(self, row: dict, reason: str) -> None:
        """A nurture message that cannot be delivered shows in the lead's story as a failed step."""
        payload = _payload_or_none(row["payload"])
        if payload and isinstance(payload.get("enrollment"), int) and isinstance(payload.get("step"), int):
            detail = plain_text(f"{row['kind']} not delivered: {reason}", 300)
            self.store.log_step({"id": payload["enrollment"], "lead": row["lead"], "track": payload.get("track")},
                                payload["step"], "failed", self.clock(), detail)

    def _last_resort(self, row: dict, status: str, note: str) -> None:
        """Writing the outcome raised: set the status with the plainest update, or leave the row (it is retried)."""
        try:
            with self.store.transaction():
                self.store.outbox_mark(row["id"], status, note)
        except Exception:  # noqa: BLE001 - the database itself refuses: the row stays and is tried again
            log.exception("outbox row %s left as it is", row["key"])


def _payload(text: str) -> dict:
    payload = _payload_or_none(text)
    if payload is None:
        raise DeliveryError("bad_payload", "the stored payload is not a JSON object")
    return payload


def _payload_or_none(text: str | None) -> dict | None:
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# -- what the operator sees ---------------------------------------------------------------------------

@dataclass
class OutboxEntry:
    key: str
    kind: str
    lead: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: str | None
    next_at: str | None

    def to_json(self) -> dict:
        return asdict(self)


def list_outbox(store: Store, failed_only: bool = False, include_done: bool = False,
                limit: int = 100) -> list[OutboxEntry]:
    """Undelivered rows (pending, sending, failed), newest first; only failed ones, or every row."""
    statuses = ("failed",) if failed_only else (None if include_done else ("pending", "sending", "failed"))
    rows = store.outbox_rows(statuses, limit)
    return [OutboxEntry(r["key"], r["kind"], r["lead"] or None, r["status"], r["attempts"] or 0, r["last_error"],
                        format_time(r["created_at"]) if r["created_at"] else None,
                        format_time(r["next_at"]) if r["next_at"] and r["status"] == "pending" else None)
            for r in rows]
