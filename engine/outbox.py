"""Delivering outbox rows: at least once from the store's side, exactly once with the notifier's help.

A row is marked `sending` (committed) before the notifier is called and `done` after. A crash between
the two leaves it `sending`; on the next run the notifier is told (`resumed=True`) so it can look for
the message it may already have sent (the Slack notifier searches the channel for the row's key)
instead of sending it twice. Failures are retried with exponential backoff; a notifier asking to wait
(HTTP 429 Retry-After) is retried after exactly that long.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from .store import Store

log = logging.getLogger("leadflow.outbox")
MAX_ATTEMPTS = 60  # backoff doubles up to 5 minutes: about four hours of retries before giving up


class RetryLater(Exception):
    def __init__(self, seconds: float, message: str = ""):
        self.seconds = seconds
        super().__init__(message or f"retry in {seconds}s")


class Notifier(Protocol):
    kinds: tuple

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool) -> dict: ...


class Dispatcher:
    def __init__(self, store: Store, notifiers: Notifier | list, clock: Callable[[], float] = time.time):
        self.store = store
        self.notifiers = notifiers if isinstance(notifiers, list) else [notifiers]
        self.by_kind = {kind: n for n in self.notifiers for kind in n.kinds}
        self.clock = clock

    def add(self, notifier: Notifier) -> None:
        """Deliver `notifier.kinds` through this notifier too (e.g. e-mail beside Slack)."""
        self.notifiers.append(notifier)
        self.by_kind.update({kind: notifier for kind in notifier.kinds})

    def run_once(self) -> int:
        """Deliver every due row once; returns how many were delivered."""
        import json

        delivered = 0
        for row in self.store.due_outbox(self.clock(), tuple(self.by_kind)):
            resumed = row["status"] == "sending" or row["attempts"] > 0  # it may have got through before
            with self.store.transaction():
                self.store.outbox_sending(row["id"])
            payload = json.loads(row["payload"])
            try:
                result = self.by_kind[row["kind"]].deliver(row["kind"], row["lead"], payload, row["key"], resumed)
            except RetryLater as exc:
                with self.store.transaction():
                    self.store.outbox_retry(row["id"], str(exc), self.clock() + exc.seconds)
                continue
            except Exception as exc:  # noqa: BLE001 - any delivery failure is retried, then kept as failed
                attempts = row["attempts"] + 1
                give_up = attempts >= MAX_ATTEMPTS
                log.warning("delivery of %s failed (attempt %d): %s", row["key"], attempts, exc)
                with self.store.transaction():
                    self.store.outbox_retry(row["id"], repr(exc), self.clock() + min(2 ** attempts, 300), give_up)
                continue
            with self.store.transaction():
                self.store.outbox_done(row["id"], result)
            delivered += 1
        return delivered
