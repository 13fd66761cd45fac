"""The outbox table's SQL (part of the store: `Store` inherits it; kept apart to keep modules small).

A row is a notification to deliver: `pending` -> `sending` (committed before the notifier is
called) -> `done`, or back to `pending` with a later `next_at` after a transient failure, or
`failed` with its reason. A `sending` row carries a lease: who claimed it (`claimed_by`) and until
when (`lease_until`, wall-clock seconds), so another dispatcher leaves it alone meanwhile (see
engine/delivery). Payloads and results are written as strict JSON: a value JSON cannot hold
(infinity, NaN, an object) is written as text, so SQLite's JSON functions never refuse a row and
one odd value cannot jam the queue.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any

from leadflow.core import read_json

from ._database import Database


def json_text(value: Any) -> str:
    """Strict JSON for the outbox: non-finite numbers and unknown objects become text."""
    try:
        return json.dumps(value, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def plain_text(text: str, limit: int = 500) -> str:
    """Text both databases store alike: lone surrogates (from hostile input in an error message) escaped
    (SQLite text must be valid UTF-8), NUL as \\x00 (PostgreSQL text cannot hold it), clipped."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:limit]


def _loads(text: str | None) -> Any:
    """Python reads what SQLite's JSON functions may refuse (Infinity, NaN); None when unreadable."""
    try:
        return read_json(text) if text else None
    except ValueError:
        return None


class OutboxTable(Database):
    def add_outbox(self, key: str, kind: str, lead: str, payload: dict) -> None:
        self._exec("INSERT OR IGNORE INTO outbox (key, kind, lead, payload, created_at, status, attempts,"
                          " next_at) VALUES (?,?,?,?,?,?,?,?)",  # next_at 0: due at once, whatever the clock
                          (key, kind, lead, json_text(payload), time.time(), "pending", 0, 0.0))

    def due_outbox(self, now: float, kinds: tuple[str, ...], limit: int = 50) -> list[dict]:
        """Pending rows due at `now`, and every `sending` row (the caller decides, by its lease and its
        holder, whether one may be taken over)."""
        marks = ",".join("?" for _ in kinds)
        return (self._rows(f"SELECT * FROM outbox WHERE kind IN ({marks}) AND (status = 'sending' OR"
                                  " (status = 'pending' AND next_at <= ?)) ORDER BY id LIMIT ?", [*kinds, now, limit]))

    def outbox_sending(self, row_id: int) -> None:
        self._exec("UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ?", (row_id,))

    def outbox_claim(self, row_id: int, status: str, attempts: int, claimed_by: str | None = None,
                     lease_until: float | None = None) -> bool:
        """Mark a row `sending`, held by `claimed_by` until `lease_until`, if nobody changed it since it
        was read: `attempts` only grows, so a second dispatcher that read the same row skips it."""
        cur = self._exec("UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_by = ?,"
                                " lease_until = ? WHERE id = ? AND status = ? AND attempts = ?",
                                (claimed_by, lease_until, row_id, status, attempts))
        return cur.rowcount == 1

    def outbox_renew(self, row_ids: list[int], claimed_by: str, lease_until: float) -> set[int]:
        """Extend the lease on those of these rows that `claimed_by` still holds; returns their ids (a
        row another dispatcher took over meanwhile is not this holder's any more)."""
        if not row_ids:
            return set()
        marks = ",".join("?" for _ in row_ids)
        held = f"status = 'sending' AND claimed_by = ? AND id IN ({marks})"
        self._exec(f"UPDATE outbox SET lease_until = ? WHERE {held}", (lease_until, claimed_by, *row_ids))
        return {row[0] for row in self._exec(f"SELECT id FROM outbox WHERE {held}", (claimed_by, *row_ids))}

    def outbox_done(self, row_id: int, result: dict | None = None) -> None:
        """Done, with the notifier's result kept in the payload (`$.result`) for later updates."""
        row = self._exec("SELECT payload FROM outbox WHERE id = ?", (row_id,)).fetchone()
        payload = _loads(row[0]) if row else None
        if isinstance(payload, dict):
            text = json_text({**payload, "result": result or {}})
        else:  # an unreadable payload stays as it was; the row is still done
            text = row[0] if row else None
        self._exec("UPDATE outbox SET status = 'done', last_error = NULL, payload = ? WHERE id = ?",
                          (text, row_id))

    def outbox_retry(self, row_id: int, error: str, next_at: float, give_up: bool = False) -> None:
        self._exec("UPDATE outbox SET status = ?, last_error = ?, next_at = ? WHERE id = ?",
                          ("failed" if give_up else "pending", plain_text(error), next_at, row_id))

    def outbox_fail(self, row_id: int, error: str) -> None:
        self.outbox_mark(row_id, "failed", error)

    def outbox_mark(self, row_id: int, status: str, note: str, next_at: float | None = None) -> None:
        """Set status, note (and when to try again) and nothing else (the fallback when a richer update
        was refused)."""
        self._exec("UPDATE outbox SET status = ?, last_error = ?, next_at = coalesce(?, next_at) WHERE id = ?",
                          (status, plain_text(note), next_at, row_id))

    def outbox_status(self, key: str) -> str | None:
        row = self._exec("SELECT status FROM outbox WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def outbox_result(self, key: str) -> dict | None:
        row = self._exec("SELECT payload FROM outbox WHERE key = ? AND status = 'done'", (key,)).fetchone()
        payload = _loads(row[0]) if row else None
        result = payload.get("result") if isinstance(payload, dict) else None
        return result if isinstance(result, dict) else None

    def outbox(self, kind: str | None = None) -> list[dict]:
        if kind:
            return (self._rows("SELECT * FROM outbox WHERE kind = ? ORDER BY id", [kind]))
        return (self._rows("SELECT * FROM outbox ORDER BY id"))

    def outbox_rows(self, statuses: tuple[str, ...] | None = None, limit: int = 100) -> list[dict]:
        """Rows in these statuses (all when None), newest first."""
        if statuses:
            marks = ",".join("?" for _ in statuses)
            return (self._rows(f"SELECT * FROM outbox WHERE status IN ({marks}) ORDER BY id DESC LIMIT ?",
                                      [*statuses, limit]))
        return (self._rows("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", [limit]))

    def outbox_counts(self) -> dict[str, int]:
        """Rows per status, e.g. {"done": 120, "pending": 2, "failed": 1} (for /healthz)."""
        return dict(self._exec("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
