"""What PostgreSQL cannot share with SQLite among the reads and writes of the metrics and timers.

(The metrics' JSON is read in Python on both backends, see _metrics.py; what is left here is SQL
that SQLite writes with its rowid.)
"""
from __future__ import annotations

from ._metrics import MetricsReads


class PostgresReads(MetricsReads):
    def set_timers_on_share(self, kind: str, due_at: float, every: int) -> int:
        if every < 1:
            raise ValueError(f"every must be 1 or more, not {every}")
        self.clear_timers()
        return self._exec("INSERT INTO timers (lead, kind, due_at) SELECT id, ?, ? FROM (SELECT id, row_number()"
                          " OVER (ORDER BY created_at, id) AS n FROM leads) AS s WHERE n % ? = 0",
                          (kind, due_at, every)).rowcount
