"""What runs later: nurture enrollments and their log, per-lead timers, periodic runs, rule proposals.

The scheduler keeps nothing in memory between runs: what is due is always read from these tables
(`due_enrollments`, `due_timers`, `next_due`), so a restarted worker picks up where the last one
stopped, and two runs never need to agree on anything but the database.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from ._database import Database


class Timer(NamedTuple):
    """A lead's timer of one kind (e.g. `decay`: re-check the score once it may have faded)."""
    lead: str
    kind: str
    due_at: float


class ScheduleTables(Database):
    # -- nurture enrollments -------------------------------------------------------------------------
    def enroll(self, lead: str, track: str, at: float) -> int:
        return self._insert_id("INSERT INTO nurture (lead, track, pc, status, next_at, enrolled_at, updated_at)"
                               " VALUES (?,?,0,'active',?,?,?)", (lead, track, at, at, at))

    def active_enrollment(self, lead: str, track: str) -> dict | None:
        return self._row("SELECT * FROM nurture WHERE lead = ? AND track = ? AND status = 'active'", [lead, track])

    def due_enrollments(self, now: float, limit: int = 500) -> list[dict]:
        return self._rows("SELECT * FROM nurture WHERE status = 'active' AND next_at <= ?"
                          " ORDER BY next_at, id LIMIT ?", [now, limit])

    def update_enrollment(self, enrollment_id: int, pc: int, status: str, next_at: float | None,
                          waiting_for: str | None, at: float) -> None:
        self._exec("UPDATE nurture SET pc = ?, status = ?, next_at = ?, waiting_for = ?, updated_at = ?"
                          " WHERE id = ?", (pc, status, next_at, waiting_for, at, enrollment_id))

    def log_step(self, enrollment: dict, pc: int, op: str, at: float, detail: str) -> None:
        """One step an enrollment took (`enrollment` is its row, as read from `due_enrollments`)."""
        self._exec("INSERT INTO nurture_log (enrollment, lead, track, pc, op, at, detail) VALUES (?,?,?,?,?,?,?)",
                          (enrollment["id"], enrollment["lead"], enrollment["track"], pc, op, at, detail))

    def nurture_steps(self, lead: str) -> list[dict]:
        """This lead's nurture steps, in the order they were taken."""
        return self._rows("SELECT * FROM nurture_log WHERE lead = ? ORDER BY id", [lead])

    def nurture_log(self) -> list[dict]:
        """Every lead's nurture steps, by the time each step was due (ties in the order taken)."""
        return self._rows("SELECT * FROM nurture_log ORDER BY at, id")

    # -- timers --------------------------------------------------------------------------------------
    def set_timer(self, lead: str, kind: str, due_at: float | None) -> None:
        """Set (or with None, clear) the lead's one timer of this kind."""
        if due_at is None:
            self._exec("DELETE FROM timers WHERE lead = ? AND kind = ?", (lead, kind))
        else:
            self._exec("INSERT INTO timers (lead, kind, due_at) VALUES (?,?,?) ON CONFLICT(lead, kind)"
                              " DO UPDATE SET due_at = excluded.due_at", (lead, kind, due_at))

    def due_timers(self, now: float, limit: int = 1000) -> list[Timer]:
        """Timers due by `now`, earliest first (ties by lead and kind: the same order on both databases)."""
        return [Timer(*row) for row in self._exec("SELECT lead, kind, due_at FROM timers WHERE due_at <= ?"
                                                  " ORDER BY due_at, lead, kind LIMIT ?", (now, limit))]

    def clear_timers(self) -> None:
        """Drop every lead's timers (the benchmark measures one kind of scheduled work at a time)."""
        self._exec("DELETE FROM timers")

    def set_timers_on_share(self, kind: str, due_at: float, every: int) -> int:
        """Replace all timers by one of `kind` due at `due_at` on every `every`-th lead (in the order
        leads were created): a known share of the leads becomes due, for the benchmark. Returns how many.
        One statement for both backends (a window function, not SQLite's rowid)."""
        if every < 1:
            raise ValueError(f"every must be 1 or more, not {every}")
        self.clear_timers()
        return self._exec("INSERT INTO timers (lead, kind, due_at) SELECT id, ?, ? FROM (SELECT id, row_number()"
                          " OVER (ORDER BY created_at, id) AS n FROM leads) AS s WHERE n % ? = 0",
                          (kind, due_at, every)).rowcount

    def next_due(self, assignments: bool = True) -> float | None:
        """The earliest time something scheduled is due: nurture steps, timers and (optionally) SLAs."""
        sql = "SELECT min(t) FROM (SELECT min(next_at) AS t FROM nurture WHERE status = 'active'" \
              " UNION ALL SELECT min(due_at) FROM timers"
        if assignments:
            sql += " UNION ALL SELECT min(coalesce(remind_at, due_at)) FROM assignments WHERE status = 'pending'" \
                   " AND rep IS NOT NULL"
        return self._value(sql + ") AS due")  # PostgreSQL before 16 wants every subquery named

    # -- periodic runs -------------------------------------------------------------------------------
    def last_run(self, name: str) -> float | None:
        return self._value("SELECT last_at FROM schedule WHERE name = ?", (name,))

    def mark_run(self, name: str, at: float) -> None:
        self._exec("INSERT INTO schedule (name, last_at) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET"
                          " last_at = excluded.last_at", (name, at))

    # -- rule proposals ------------------------------------------------------------------------------
    def add_proposal(self, directory: str, at: float, report: dict) -> int:
        return self._insert_id("INSERT INTO proposals (dir, created_at, status, report) VALUES (?,?,?,?)",
                               (directory, at, "open", json.dumps(report)))

    def proposal(self, proposal_id: int) -> dict | None:
        return self._row("SELECT * FROM proposals WHERE id = ?", [proposal_id])

    def decide_proposal(self, proposal_id: int, status: str, by: str, at: float) -> bool:
        """Accept or reject an open proposal; False when it was already decided."""
        cur = self._exec("UPDATE proposals SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND"
                                " status = 'open'", (status, by, at, proposal_id))
        return cur.rowcount == 1
