"""Who holds a claim on background work, and whether that holder still runs.

Outbox rows being sent (engine/delivery) and nurture enrolments being run (engine/nurture) are
leased: the claim records who holds it beside the lease's end. A holder is written as its machine
(host name, boot id and PID namespace, so a container sharing the database is another machine), the
process id and the process's start time (so a reused pid is told from the claimer), and a random
token per claim. Another process may take a claim over before its lease ends only when the holder
is provably gone: the same machine, and no process with that pid and start time runs (a zombie
counts as gone). On any other machine, or without /proc, or on Windows (where probing a pid is not
harmless), nobody can tell, so the claim waits for its lease to end. A wrong answer can therefore
only make work wait, never run it twice while its holder still works on it.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass
from functools import lru_cache


@lru_cache(maxsize=1)
def _machine() -> str:
    """This machine and PID namespace, as far as the platform tells (pids compare only within it)."""
    parts = [socket.gethostname()]
    for path, read in (("/proc/sys/kernel/random/boot_id", _read), ("/proc/self/ns/pid", os.readlink)):
        try:
            parts.append(read(path).strip())
        except OSError:
            parts.append("")
    return "|".join(parts)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in ticks since boot) of a process from /proc, or None when unreadable."""
    try:
        text = _read(f"/proc/{pid}/stat")
    except (OSError, UnicodeDecodeError):
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ": field 3 (state) onwards
    return (fields[0], fields[19]) if len(fields) > 19 else None


@dataclass(frozen=True)
class Claimer:
    machine: str
    pid: int
    started: str  # the process's start time on this machine ("" when the platform does not tell)
    token: str

    @classmethod
    def here(cls) -> Claimer:
        """A new identity for one claimer (a dispatcher, a scheduler run) in this process."""
        stat = _stat(os.getpid())
        return cls(_machine(), os.getpid(), stat[1] if stat else "", secrets.token_hex(8))

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str | None) -> Claimer | None:
        try:
            data = json.loads(text) if text else None
            return cls(str(data["machine"]), int(data["pid"]), str(data["started"]), str(data["token"]))
        except (ValueError, TypeError, KeyError):
            return None


def holder_gone(text: str | None) -> bool:
    """True only when the process that made a claim (`claimed_by`) provably no longer runs."""
    holder = Claimer.from_text(text)
    if holder is None or os.name == "nt" or holder.machine != _machine() or holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)  # signal 0: only asks whether the pid exists
    except ProcessLookupError:
        return True
    except OSError:
        pass  # it exists but belongs to someone else (PermissionError)
    stat = _stat(holder.pid)
    if stat is None:
        return False
    state, started = stat
    return state in ("Z", "X") or (bool(holder.started) and started != holder.started)
