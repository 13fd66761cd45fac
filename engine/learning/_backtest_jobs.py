"""A backtest in several processes: each replays its share of the leads and sends back its tally.

Each process is started with `spawn` (nothing of the parent is inherited: no threads, no connections),
opens its own store on the same database (and only reads it), compiles both rule sets itself and checks
they are the versions the parent compiled, then says it is ready. Only when all are ready does the
replay start and the clock run, so the time is the replay's. While replaying, a process reports its
count of events every TICK_EVERY events; the parent drives the progress bar with the sum and adds up
the tallies at the end.

Nothing waits forever: a process that fails sends its problems and the command fails with them; one
that dies without a word (killed, out of memory) is noticed within a second; one that says nothing for
SILENCE_TIMEOUT seconds is taken as stuck. Either way the other processes are stopped.
"""
from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

from leadflow.core import EngineError, LeadflowError, Location, Problem
from leadflow.rules import load_compiled
from leadflow.runtime import Engine
from leadflow.store import Store, masked

from ._replay import Tally, replay

START_TIMEOUT = 600.0  # seconds a process may take to get ready, and to wait for the others
SILENCE_TIMEOUT = 600.0  # seconds without a word from any process before the backtest gives up
POLL = 0.5  # seconds between checks that every process is still alive


def _replay_part(url: str, dirs: tuple[str, str], versions: tuple[str, str], leads: list[str], part: int,
                 go: Any, messages: Any) -> None:
    """One process: its own store and engine, its leads replayed, its tally sent back (or its problems)."""
    try:
        store = Store(url, upgrade=False)  # the parent opened (and upgraded) it: here it is only read
        compiled = [load_compiled(d) for d in dirs]
        for rules, version, d in zip(compiled, versions, dirs):
            if rules.rules.version != version:
                raise LeadflowError([Problem("RULES_CHANGED", f"the rules changed while the backtest started "
                                             f"(version {rules.rules.version}, not {version})", Location(d),
                                             "run the backtest again")])
        engine = Engine()
        for rules in compiled:
            engine.load(rules)
        messages.put(("ready", part, None))
        if not go.wait(START_TIMEOUT):
            return  # the parent gave up on another process; it reports why
        tally = replay(store.event_log(leads), compiled[0], compiled[1], engine,
                       tick=lambda done: messages.put(("progress", part, done)))
        store.close()
        messages.put(("done", part, tally))
    except BaseException as exc:  # noqa: BLE001 - whatever stops a process is the command's error
        messages.put(("error", part, _problems(exc, url)))


def _problems(exc: BaseException, url: str) -> list[Problem]:
    """An exception as problems that survive pickling (a LeadflowError itself does not)."""
    if isinstance(exc, LeadflowError):
        return exc.problems
    if isinstance(exc, EngineError):
        return [Problem(exc.code, str(exc), Location(masked(url)), exc.hint)]
    return [Problem("BACKTEST_FAILED", f"{type(exc).__name__}: {exc}", Location(masked(url)))]


def replay_in_processes(url: str, dirs: tuple[str, str], versions: tuple[str, str],
                        parts: Sequence[list[str]], progress: Callable[[int], None] | None = None
                        ) -> tuple[Tally, float]:
    """One process per part (its leads, in `event_log` order); the merged tally and the replay's seconds."""
    ctx = multiprocessing.get_context("spawn")
    messages, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_replay_part, args=(url, dirs, versions, leads, k, go, messages), daemon=True,
                         name=f"leadflow-backtest-{k}") for k, leads in enumerate(parts)]
    for proc in procs:
        proc.start()
    try:
        _collect(messages, procs, "ready", START_TIMEOUT)
        go.set()
        began = time.perf_counter()
        tallies = _collect(messages, procs, "done", SILENCE_TIMEOUT, progress)
        seconds = time.perf_counter() - began
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(5)
    merged = Tally()
    for k in sorted(tallies):
        merged.merge(tallies[k])
    return merged, seconds


def _collect(messages: Any, procs: list, kind: str, timeout: float,
             progress: Callable[[int], None] | None = None) -> dict[int, Any]:
    """One `kind` message from every process, passing progress on; raises with a process's problems, or
    when a process is gone without its message, or when none has spoken for `timeout` seconds."""
    got: dict[int, Any] = {}
    done = [0] * len(procs)
    heard = time.monotonic()
    gone: set[int] = set()  # seen dead once: its last words may still be in the pipe, so one more poll
    while len(got) < len(procs):
        try:
            what, part, value = messages.get(timeout=POLL)
        except queue.Empty:
            dead = {k for k, proc in enumerate(procs) if k not in got and not proc.is_alive()}
            if dead & gone:
                k = min(dead & gone)
                raise LeadflowError([Problem("BACKTEST_PROCESS_DIED", f"backtest process {k + 1} of {len(procs)} "
                                             f"ended (exit code {procs[k].exitcode}) before it reported",
                                             Location(procs[k].name), "see its output above; run again, or with "
                                             "fewer --jobs if the machine ran out of memory")]) from None
            gone |= dead
            if time.monotonic() - heard > timeout:
                raise LeadflowError([Problem("BACKTEST_STALLED", f"no backtest process reported for {timeout:.0f} s",
                                             Location(procs[0].name), "run again")]) from None
            continue
        heard = time.monotonic()
        if what == "error":
            raise LeadflowError([Problem(p.code, f"backtest process {part + 1} of {len(procs)}: {p.message}",
                                         p.location, p.hint, p.severity) for p in value])
        if what == "progress":
            done[part] = value
        elif what == kind:
            got[part] = value
            if kind == "done":
                done[part] = value.events
        if progress and what in ("progress", "done"):
            progress(sum(done))
    return got
