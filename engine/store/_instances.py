"""The `instances` table: every `serve` and `worker` process on this database, with the rules it runs.

Instances on several machines share nothing but the database, so that is where each one says it is
alive: a row per process, refreshed by its heartbeat (`beat_instance`), read by /healthz to show
which rule version each instance runs while a new one rolls out. A process that stops cleanly
removes its row; a killed one's row simply stops being refreshed: it drops out of `live_instances`
at once and is deleted later (`forget_instances`), so the table never grows with restarts.
"""
from __future__ import annotations

from typing import NamedTuple

from ._database import Database


class Instance(NamedTuple):
    """One process on the database, as it last reported itself (times are wall-clock seconds)."""
    id: str  # host:pid:random, unique per process start
    host: str
    pid: int
    role: str  # serve | worker
    rules_version: str | None
    started_at: float
    seen_at: float


class InstanceTables(Database):
    def beat_instance(self, instance: Instance) -> None:
        """Register this instance, or refresh its row: the rules it runs now and when it was seen."""
        self._exec("INSERT INTO instances (id, host, pid, role, rules_version, started_at, seen_at)"
                   " VALUES (?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET rules_version = excluded.rules_version,"
                   " seen_at = excluded.seen_at", tuple(instance))

    def live_instances(self, now: float, within: float) -> list[Instance]:
        """Instances seen in the last `within` seconds before `now`, oldest start first."""
        return [Instance(*row) for row in self._exec(
            "SELECT id, host, pid, role, rules_version, started_at, seen_at FROM instances WHERE seen_at >= ?"
            " ORDER BY started_at, id", (now - within,))]

    def forget_instance(self, instance_id: str) -> None:
        """Remove an instance's row (it stops cleanly)."""
        self._exec("DELETE FROM instances WHERE id = ?", (instance_id,))

    def forget_instances(self, seen_before: float) -> int:
        """Remove the rows of instances not seen since `seen_before` (killed ones); returns how many."""
        return self._exec("DELETE FROM instances WHERE seen_at < ?", (seen_before,)).rowcount
