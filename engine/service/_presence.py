"""This process in the database's list of instances, so that every instance can show them all.

Several `serve` and `worker` processes, on one machine or many, may share one database, and while
a rule change rolls out they briefly run different rule versions. Each one therefore registers
itself when it starts, beats from its background loop with the version it runs now, and removes
itself when it stops cleanly; /healthz lists the instances seen recently and says when their
versions differ. The beat comes from the work loop, not from a timer of its own, so an instance
whose loop hangs drops out of the list like one that died. Times here are wall-clock (instances on
other machines compare them), whatever clock the service schedules with.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from typing import Callable

from leadflow.store import Instance, Store

log = logging.getLogger("leadflow.service")
LIVE = 30.0  # seconds: an instance not seen for this long is not listed as live
BEAT = 5.0  # seconds between heartbeats; the loop passes every second, so a few missed passes are tolerated
FORGET = 86400.0  # seconds after which a killed instance's row is deleted (by the next instance to start)


class Presence:
    """One process's row in `instances`: `register` on start, `beat` from the work loop, `stop`."""

    def __init__(self, store: Store, role: str, wall: Callable[[], float] = time.time):
        self.store, self.role, self.wall = store, role, wall
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"  # a restarted process may reuse the pid
        self.started_at = 0.0
        self.rules_version: str | None = None
        self._beat_at = 0.0

    def register(self, rules_version: str) -> None:
        """Say this instance runs, with these rules (and clear out instances killed long ago)."""
        now = self.started_at = self.wall()
        self.store.forget_instances(now - FORGET)
        self._write(rules_version, now)

    def beat(self, rules_version: str) -> None:
        """Still here: written every BEAT seconds, and at once when the rule version changed."""
        now = self.wall()
        if rules_version != self.rules_version or now - self._beat_at >= BEAT:
            self._write(rules_version, now)

    def live(self, within: float = LIVE) -> list[Instance]:
        """Every instance on the database seen in the last `within` seconds, this one included."""
        return self.store.live_instances(self.wall(), within)

    def stop(self) -> bool:
        """A clean stop: this instance is no longer listed. False when the database refused (the row
        then drops out of the live list by itself): stopping must finish whatever the database says."""
        try:
            self.store.forget_instance(self.id)
        except Exception:  # noqa: BLE001 - logged; the process stops either way
            log.exception("instance %s could not be removed from the instances table", self.id)
            return False
        return True

    def _write(self, rules_version: str, now: float) -> None:
        self.store.beat_instance(Instance(self.id, self.host, self.pid, self.role, rules_version,
                                          self.started_at or now, now))
        self.rules_version, self._beat_at = rules_version, now
