"""The sales desk's tables: assignments of leads to reps, the reps' feedback, and a lead's owner.

An assignment is decided once: `close_assignment` only changes a row still `pending`, so a double
click, a retried request or two reps racing leave exactly one decision and tell the others so.
"""
from __future__ import annotations

import json

from leadflow.core import read_json

from ._database import Database


def _insert(table: str, row: dict[str, object]) -> tuple[str, list[object]]:
    """An INSERT of this row's columns; the names are ours (the desk's own dicts), the values bound."""
    if not all(column.isidentifier() for column in row):
        raise ValueError(f"not a column name in {sorted(row)!r}")
    return (f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()))


class DeskTables(Database):
    def add_assignment(self, row: dict[str, object]) -> int:
        return self._insert_id(*_insert("assignments", row))

    def assignment(self, assignment_id: int) -> dict | None:
        return self._row("SELECT * FROM assignments WHERE id = ?", [assignment_id])

    def assignments(self, lead: str | None = None, status: str | None = None, rep: str | None = None) -> list[dict]:
        where, params = [], []
        for column, value in (("lead", lead), ("status", status), ("rep", rep)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self._rows("SELECT * FROM assignments" + (" WHERE " + " AND ".join(where) if where else "")
                          + " ORDER BY id", params)

    def close_assignment(self, assignment_id: int, status: str, at: float, by: str | None, reason: str | None,
                         comment: str | None) -> bool:
        """Decide a pending assignment; False when someone else already did (double click, retry, race)."""
        cur = self._exec("UPDATE assignments SET status = ?, decided_at = ?, decided_by = ?, reason = ?,"
                                " comment = ? WHERE id = ? AND status = 'pending'",
                                (status, at, by, reason, comment, assignment_id))
        return cur.rowcount == 1

    def mark_reminded(self, assignment_id: int) -> bool:
        """Clear the reminder; False when it was already sent (so it is sent once)."""
        cur = self._exec("UPDATE assignments SET remind_at = NULL WHERE id = ? AND remind_at IS NOT NULL",
                                (assignment_id,))
        return cur.rowcount == 1

    def open_counts(self) -> dict[str, int]:
        """Rep -> leads they hold now (pending or accepted, lead still sales-qualified): their load."""
        return {r["rep"]: r["n"] for r in self._rows("SELECT rep, count(*) AS n FROM assignments a JOIN leads l ON"
                                                         " l.id = a.lead WHERE a.status IN ('pending', 'accepted') AND"
                                                         " l.stage IN ('sql', 'accepted') AND rep IS NOT NULL GROUP BY rep")}

    def assignment_totals(self) -> dict[str, int]:
        """Rep -> every assignment they ever had."""
        return {r["rep"]: r["n"] for r in self._rows("SELECT rep, count(*) AS n FROM assignments WHERE rep IS NOT NULL"
                                                         " GROUP BY rep")}

    def due_assignments(self, now: float) -> list[dict]:
        """Pending assignments whose SLA or reminder time has come."""
        return self._rows("SELECT * FROM assignments WHERE status = 'pending' AND rep IS NOT NULL AND"
                          " (due_at <= ? OR remind_at <= ?) ORDER BY id", [now, now])

    def set_owner(self, lead: str, owner: str | None) -> None:
        """The owner is kept in the lead row and in its state, which the rules read.

        The state is read, changed and written back under the lead's lock, the one an event of this lead
        is applied under: on PostgreSQL another instance may be applying one right now, and without the
        lock its write (of the state it read before ours) would silently drop the owner."""
        with self.transaction():
            self.lock_leads((lead,))
            row = self._exec("SELECT state FROM leads WHERE id = ?", (lead,)).fetchone()
            if row is None:
                return
            state = read_json(row[0])
            state["owner"] = owner
            self._exec("UPDATE leads SET owner = ?, state = ? WHERE id = ?", (owner, json.dumps(state), lead))

    def add_feedback(self, row: dict[str, object]) -> None:
        self._exec(*_insert("feedback", row))
