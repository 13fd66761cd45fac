"""Delivering outbox rows: at least once from the store's side, exactly once with the notifier's help.

A row is claimed (`sending`, committed) before the notifier is called and marked `done` after. The
due rows are claimed up to CLAIM_BATCH at a time in one durable transaction (one fsync for the lot,
not one per message: under webhook load those fsyncs held the store's lock a tenth of the time) and
then delivered one by one; a claim that outlives half its lease while the rows before it are sent is
renewed for the rest. A crash between claim and `done` leaves a row `sending`; on the next run the
notifier is told (`resumed=True`, with the row's creation time as `since`) so it can look for the
message it may already have sent (the Slack notifier searches the conversation for the row's key)
instead of sending it twice.

The claim is a lease, so several dispatchers on one database (`serve`, and `leadflow worker --once`
beside it) never send a row at the same time: the claim records who holds the row (_lease.py:
machine, pid, process start time, a token per dispatcher) and until when (`LEASE`, 5 minutes of
wall-clock time, whatever clock schedules the rows). A `sending` row is taken over, and resumed,
only when its lease is over or its holder provably no longer runs (same machine, that process is
gone): a restart after a crash resumes at once, a holder on another machine is waited for. The
lease is far longer than a delivery takes: each network call gives up after `NETWORK_TIMEOUT`
(30 s: Slack, SMTP, webhooks) and a delivery makes a handful of them. A delivery that overran its
lease is logged (another dispatcher may have resumed it meanwhile).

Each row is delivered on its own: whatever one row raises (a refused address, a bug, a value the
database will not store) is recorded on that row and the loop goes on with the next. How a failure
is handled follows _failures.py: permanent failures fail the row at once with the reason,
transient ones back off (a 429 after its Retry-After), anything else is retried and failed after
about four hours. Failed rows stay in the table: `leadflow outbox --failed` lists them.

When the database itself refuses a write (`database is locked`, a full disk), the row is left in a
state from which it is retried, never failed for that: a refused claim leaves it as it was (tried
on the next pass); a failure that cannot be recorded leaves it `pending` with its backoff, or
`sending` (resumed, with a look for an earlier copy, when the lease ends). `failed` is written only
for a failure that is final (permanent, or retried for hours).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from leadflow.core import format_time, read_json
from leadflow.store import Store, plain_text

from ._failures import Backoff, DeliveryError, RetryLater, classify
from ._lease import Claimer, holder_gone

__all__ = ["LEASE", "Dispatcher", "Notifier", "OutboxEntry", "RetryLater", "list_outbox"]
log = logging.getLogger("leadflow.outbox")
LEASE = 300.0  # seconds a claimed row is left to its holder: ten times NETWORK_TIMEOUT, far above a delivery
CLAIM_BATCH = 20  # rows claimed in one transaction; after a crash, those not yet delivered are resumed (looked for)


class Notifier(Protocol):
    kinds: tuple

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict: ...


class Dispatcher:
    def __init__(self, store: Store, notifiers: Notifier | list, clock: Callable[[], float] = time.time,
                 backoff: Backoff | None = None, lease: float = LEASE, wall: Callable[[], float] = time.time):
        self.store = store
        self.notifiers = notifiers if isinstance(notifiers, list) else [notifiers]
        self.by_kind = {kind: n for n in self.notifiers for kind in n.kinds}
        self.clock = clock  # schedules rows (a manual clock in `worker --until` and tests)
        self.backoff = backoff or Backoff()
        self.lease = lease
        self.wall = wall  # leases are real time: shared with dispatchers on other clocks
        self.claimer = Claimer.here()

    def run_once(self) -> int:
        """Deliver every due row once; returns how many were delivered."""
        rows = [row for row in self.store.due_outbox(self.clock(), tuple(self.by_kind))
                if row["status"] != "sending" or self._abandoned(row)]  # else another dispatcher sends it now
        delivered = 0
        for start in range(0, len(rows), CLAIM_BATCH):
            claim = self._claim(rows[start:start + CLAIM_BATCH])
            for index, row in enumerate(claim.rows):
                if not claim.keep(index, self):
                    continue  # taken over by another dispatcher while this one delivered the rows before it
                try:
                    delivered += self._deliver(row, claim)
                except Exception:  # noqa: BLE001 - a bug here must not stop the other rows; this one stays as it is
                    log.exception("outbox row %s left for the next pass", row["key"])
        return delivered

    def _abandoned(self, row: dict) -> bool:
        """A `sending` row may be taken over when its lease is over or its holder is provably gone."""
        until = row.get("lease_until")
        return until is None or until <= self.wall() or holder_gone(row.get("claimed_by"))

    def _claim(self, rows: list[dict]) -> "_Claim":
        """Claim these rows in one durable transaction (one fsync for the lot instead of one per row):
        after a power loss the claims (and, the WAL being sequential, the assignments or steps that
        wrote the rows) are on disk whenever a message may have left, so the resume path looks first.
        The rows another dispatcher changed since they were read are left out."""
        claim = _Claim(self.claimer.to_text(), self.wall(), self.lease)
        try:
            with self.store.transaction(durable=True):
                for row in rows:
                    if self.store.outbox_claim(row["id"], row["status"], row["attempts"], claim.holder, claim.until):
                        claim.rows.append(row)
        except Exception as exc:  # noqa: BLE001 - not claimed, nothing sent: the rows are tried on the next pass
            log.warning("%d outbox rows not claimed, tried again later: %s: %s", len(rows), type(exc).__name__, exc)
            return _Claim(claim.holder, claim.started, self.lease)
        return claim

    def _deliver(self, row: dict, claim: "_Claim") -> int:
        resumed = row["status"] == "sending" or row["attempts"] > 0  # it may have got through before
        try:
            payload = _payload(row["payload"])
            result = self.by_kind[row["kind"]].deliver(row["kind"], row["lead"], payload, row["key"], resumed,
                                                      since=row["created_at"] or 0.0)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded on its row
            self._overran(row, claim)
            self._failed(row, classify(exc))
            return 0
        self._overran(row, claim)
        try:
            with self.store.transaction():
                self.store.outbox_done(row["id"], result if isinstance(result, dict) else {})
        except Exception as exc:  # noqa: BLE001 - it was delivered: never leave it to be sent again
            log.exception("outbox row %s was delivered but its result could not be stored", row["key"])
            self._last_resort(row, "done", f"delivered; the result could not be stored ({type(exc).__name__})")
        return 1

    def _overran(self, row: dict, claim: "_Claim") -> None:
        if self.wall() > claim.until:
            log.warning("delivering %s ended after its lease (%.0f s): another dispatcher may have resumed it "
                        "meanwhile", row["key"], self.lease)

    def _failed(self, row: dict, error: DeliveryError) -> None:
        attempts = row["attempts"] + 1
        if error.permanent or self.backoff.give_up(attempts, error):
            reason = str(error) if error.permanent else f"gave up after {attempts} attempts: {error}"
            log.warning("delivery of %s failed for good: %s", row["key"], reason)
            try:
                with self.store.transaction():
                    self.store.outbox_fail(row["id"], reason)
                    self._note_nurture(row, reason)
            except Exception:  # noqa: BLE001 - the nurture note or the reason was refused: fail the row plainly
                log.exception("the failure of outbox row %s could not be recorded in full", row["key"])
                self._last_resort(row, "failed", reason)
            return
        log.info("delivery of %s failed (attempt %d), retrying: %s", row["key"], attempts, error)
        next_at = self.clock() + self.backoff.delay(attempts, error)
        try:
            with self.store.transaction():
                self.store.outbox_retry(row["id"], str(error), next_at)
        except Exception:  # noqa: BLE001 - a transient failure is never made final by a database error
            log.exception("the failure of outbox row %s could not be recorded", row["key"])
            self._last_resort(row, "pending", str(error), next_at)

    def _note_nurture(self, row: dict, reason: str) -> None:
        """A nurture message that cannot be delivered shows in the lead's story as a failed step."""
        payload = _payload_or_none(row["payload"])
        if payload and isinstance(payload.get("enrollment"), int) and isinstance(payload.get("step"), int):
            detail = plain_text(f"{row['kind']} not delivered: {reason}", 300)
            self.store.log_step({"id": payload["enrollment"], "lead": row["lead"], "track": payload.get("track")},
                                payload["step"], "failed", self.clock(), detail)

    def _last_resort(self, row: dict, status: str, note: str, next_at: float | None = None) -> None:
        """Writing the outcome raised: set the status with the plainest update, or leave the row `sending`
        (it is resumed, looking for an earlier copy first, when its lease ends)."""
        try:
            with self.store.transaction():
                self.store.outbox_mark(row["id"], status, note, next_at)
        except Exception:  # noqa: BLE001 - the database itself refuses: the row stays and is tried again
            log.exception("outbox row %s left as it is (sending, resumed when its lease ends)", row["key"])


@dataclass
class _Claim:
    """Rows claimed together, held by `holder` until `until`. Delivering them one after the other may
    take long when a service is slow (every network call may take up to NETWORK_TIMEOUT), so once half
    the lease has gone by, the rows not yet delivered get a fresh lease (`keep`)."""
    holder: str
    started: float
    lease: float
    rows: list = field(default_factory=list)
    lost: set = field(default_factory=set)  # ids another dispatcher took over (found when renewing)
    until: float = 0.0

    def __post_init__(self) -> None:
        self.until = self.started + self.lease

    def keep(self, index: int, dispatcher: "Dispatcher") -> bool:
        """Whether rows[index] is still held by this claim, renewing the lease of the rest when it runs
        low. A renewal need not be durable: if it is lost, the durable claim before it still names the holder."""
        if self.rows[index]["id"] in self.lost:
            return False
        now = dispatcher.wall()
        if now < self.until - self.lease / 2:
            return True
        rest = [r["id"] for r in self.rows[index:] if r["id"] not in self.lost]
        try:
            with dispatcher.store.transaction():
                held = dispatcher.store.outbox_renew(rest, self.holder, now + self.lease)
        except Exception as exc:  # noqa: BLE001 - not renewed: go on while the lease lasts, else leave the rest
            log.warning("the lease of %d outbox rows could not be renewed: %s: %s", len(rest), type(exc).__name__, exc)
            return now < self.until
        self.until = now + self.lease
        self.lost.update(set(rest) - held)
        return self.rows[index]["id"] in held


def _payload(text: str) -> dict:
    payload = _payload_or_none(text)
    if payload is None:
        raise DeliveryError("bad_payload", "the stored payload is not a JSON object")
    return payload


def _payload_or_none(text: str | None) -> dict | None:
    try:
        payload = read_json(text) if text else None
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
