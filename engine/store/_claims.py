"""Claims on background work, so that any number of `serve` and `worker` processes on one database
do each piece of it once.

How a piece of work is claimed depends on how long it takes:

- A nurture enrolment runs several steps, each in a transaction of its own, so it is leased:
  `claim_enrollments` marks due rows with their holder and the lease's end in one statement. On
  PostgreSQL the candidates are locked `FOR UPDATE SKIP LOCKED`, so two claimers neither wait for
  nor take the same row; on SQLite the one writer at a time makes the plain UPDATE ... RETURNING
  enough. Every step begins with `hold_enrollment`, which reads the row as it is now (locking it on
  PostgreSQL) and renews the lease when half of it is gone; the step goes on, and commits, only if
  its holder still holds the claim: a holder whose lease ran out and was taken over stops before
  writing anything (one whose lease ran out unnoticed by anyone still holds it, and goes on). The last step releases the lease (`release_enrollment`). A crashed
  holder's lease runs out (or is taken at once when the holder is provably gone, see
  leadflow.core.holder_gone) and another process takes the enrolment, at the step it was at.
- A decay timer, a `route_sql` row and an SLA deadline are done inside one transaction, so the
  claim is part of that transaction: `take_timer` deletes the timer, `claim_route` marks the row
  (and the desk's `close_assignment` / `mark_reminded` are compare-and-set). A crash rolls the claim
  back with the work, and the next pass of any process takes it again. The lead's lock comes first
  in these transactions (like an event's), so they never wait on each other in a circle;
  `try_lock_lead` lets a timer be skipped, not waited for, while its lead is busy.
- A periodic run (the digest, the tuning proposal) is claimed by compare-and-set on its `schedule`
  row (`claim_run`), in the transaction that queues its work: one process per period wins, and a
  crash before the commit leaves the period unclaimed. A claimed row rather than leader election
  with an advisory lock: the lock only keeps two runs from overlapping (the second would still have
  to read when the first ran), a session lock needs a connection held open per process, and the
  row works the same on SQLite.

Leases are wall-clock seconds (`time.time()`), whatever clock schedules the work, so processes on
fast-forwarded clocks and real ones share them.
"""
from __future__ import annotations

from collections.abc import Sequence

from ._database import Database
from ._postgres import LOCKS

ROUTING = LOCKS + 2  # the advisory lock one routing decision at a time holds (LOCKS + 1: the leads)


class ClaimTables(Database):
    # -- nurture enrolments: leased --------------------------------------------------------------------
    def claim_enrollments(self, now: float, holder: str, wall: float, lease_until: float, limit: int,
                          gone: Sequence[str] = ()) -> list[dict]:
        """Lease up to `limit` enrolments due at `now` to `holder` until `lease_until`: those nobody
        holds, whose lease ended before `wall`, or whose holder is in `gone` (provably dead). Returns
        their rows in the order they fell due."""
        takeover = f" OR claimed_by IN ({','.join('?' for _ in gone)})" if gone else ""
        pick = ("SELECT id FROM nurture WHERE status = 'active' AND next_at <= ? AND (lease_until IS NULL OR"
                f" lease_until < ?{takeover}) ORDER BY next_at, id LIMIT ?")
        if self.dialect == "postgresql":
            pick += " FOR UPDATE SKIP LOCKED"
        rows = self._rows(f"UPDATE nurture SET claimed_by = ?, lease_until = ? WHERE id IN ({pick}) RETURNING *",
                          [holder, lease_until, now, wall, *gone, limit])
        return sorted(rows, key=lambda r: (r["next_at"], r["id"]))

    def enrollment_holders(self, now: float, wall: float) -> list[str]:
        """Who holds a live lease on an enrolment due at `now` (the claimer asks whether each still runs)."""
        return [r[0] for r in self._exec("SELECT DISTINCT claimed_by FROM nurture WHERE status = 'active' AND"
                                         " next_at <= ? AND lease_until >= ? AND claimed_by IS NOT NULL",
                                         (now, wall)).fetchall()]

    def hold_enrollment(self, enrollment_id: int, holder: str, wall: float, lease: float) -> dict | None:
        """The enrolment as it is now if `holder` still holds it, else None; call first in each step's
        transaction (on PostgreSQL the row stays locked until it commits, so nobody takes it over
        meanwhile). The lease is renewed to `wall + lease` once less than half of it is left."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        row = self._row(f"SELECT * FROM nurture WHERE id = ? AND claimed_by = ?{lock}", [enrollment_id, holder])
        if row is not None and (row["lease_until"] or 0.0) < wall + lease / 2:
            self._exec("UPDATE nurture SET lease_until = ? WHERE id = ?", (wall + lease, enrollment_id))
            row["lease_until"] = wall + lease
        return row

    def release_enrollment(self, enrollment_id: int, holder: str) -> bool:
        cur = self._exec("UPDATE nurture SET claimed_by = NULL, lease_until = NULL WHERE id = ? AND claimed_by = ?",
                         (enrollment_id, holder))
        return cur.rowcount == 1

    # -- one-transaction work ------------------------------------------------------------------------
    def try_lock_lead(self, lead: str) -> bool:
        """Take the lead's lock (the one `lock_leads` takes) only if nobody holds it now; True when this
        transaction holds it. SQLite's transactions run one at a time: always True there."""
        if self.dialect != "postgresql":
            return True
        key = lead.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")  # as lock_leads
        return bool(self._value("SELECT pg_try_advisory_xact_lock(?, hashtext(?))", (LOCKS + 1, key)))

    def take_timer(self, lead: str, kind: str, now: float) -> float | None:
        """Remove the lead's timer of this kind if it is due, returning when it was due; None when
        another process took it (or an event moved it later). Call in the transaction that applies
        the tick, holding the lead's lock: a rollback puts the timer back."""
        return self._value("DELETE FROM timers WHERE lead = ? AND kind = ? AND due_at <= ? RETURNING due_at",
                           (lead, kind, now))

    def claim_route(self, row_id: int) -> bool:
        """Take a pending `route_sql` row in the transaction that routes it (marked `done` before it
        commits); False when another process routed it first."""
        cur = self._exec("UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ? AND"
                         " status = 'pending'", (row_id,))
        return cur.rowcount == 1

    def lock_routing(self) -> None:
        """One routing decision at a time across every process (until this transaction ends): a rep's
        load and round-robin share are read and then added to, so two at once could both pick the rep
        with one seat left. Take it after the lead's lock."""
        if self.dialect == "postgresql":
            self._exec("SELECT pg_advisory_xact_lock(?, 0)", (ROUTING,)).fetchall()

    # -- periodic runs ---------------------------------------------------------------------------------
    def claim_run(self, name: str, now: float, every: float) -> bool:
        """Claim this period of a periodic job: True (and `now` recorded as its last run) when it never
        ran or last ran `every` seconds or more before `now`, for exactly one caller across every
        process; call in the transaction that queues the job's work."""
        if self._exec("INSERT OR IGNORE INTO schedule (name, last_at) VALUES (?, ?)", (name, now)).rowcount == 1:
            return True
        cur = self._exec("UPDATE schedule SET last_at = ? WHERE name = ? AND (last_at IS NULL OR last_at <= ?)",
                         (now, name, now - every))
        return cur.rowcount == 1
