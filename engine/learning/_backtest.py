"""`leadflow rules backtest`: what a candidate rule set would have done with the stored event log.

The log is streamed lead by lead (events in arrival order) and replayed in memory through the
current and the candidate rules side by side; the database is only read. For leads with rep
feedback it counts the accepted SQLs the candidate would never have made SQL (lost) and the
rejected ones it would have kept out (filtered).

Leads do not depend on each other, so the work splits by lead: with `jobs` > 1 each process replays
the leads `lead_share` gives it (see _backtest_jobs.py) and the parent adds up what they found. A
`sample` replays only the leads `in_sample` picks, the same ones every time, for a quick preview.
Every figure is a sum, and the listed changed leads are the first by lead id, so the result does not
depend on how many processes made it.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from leadflow.core import in_sample, lead_share
from leadflow.rules import Compiled, load_compiled
from leadflow.runtime import Engine
from leadflow.store import Store

from ._backtest_jobs import replay_in_processes
from ._replay import MAX_LISTED, Tally, replay


def plan(store: Store, jobs: int, sample: float) -> tuple[list[list[str] | None], int]:
    """The leads each of `jobs` processes replays (None: the whole log, in one statement) and the number
    of events they hold together, known before the replay starts (the progress bar's total)."""
    if jobs == 1 and sample >= 1:
        return [None], store.count("events")
    parts: list[list[str] | None] = [[] for _ in range(jobs)]
    total = 0
    for lead, events in store.event_leads():
        if in_sample(lead, sample):
            parts[lead_share(lead, jobs)].append(lead)
            total += events
    return parts, total


def backtest(store: Store, current_dir: str, candidate_dir: str, jobs: int = 1, sample: float = 1.0,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Replay the stored log through the rules in `current_dir` and `candidate_dir` with `jobs` processes
    (each opening its own store on `store.url`), over the `sample` share of leads (1: all of them).
    `progress(done, total)` counts events. `seconds` times the replay only: not starting the processes,
    compiling the rules or listing the leads."""
    if jobs < 1 or not 0 < sample <= 1:
        raise ValueError(f"jobs must be at least 1 and sample in (0, 1]; got {jobs} and {sample}")
    current, candidate = load_compiled(current_dir), load_compiled(candidate_dir)
    parts, total = plan(store, jobs, sample)
    if progress:
        progress(0, total)
    if jobs == 1:
        engine = Engine()
        engine.load(current)
        engine.load(candidate)
        started = time.perf_counter()
        tally = replay(store.event_log(parts[0]), current, candidate, engine,
                       tick=progress and (lambda done: progress(done, total)))
        seconds = time.perf_counter() - started
    else:
        tally, seconds = replay_in_processes(store.url, (current_dir, candidate_dir),
                                             (current.rules.version, candidate.rules.version), parts,
                                             progress and (lambda done: progress(done, total)))
    return report(tally, seconds, jobs, sample, current, candidate)


def report(tally: Tally, seconds: float, jobs: int, sample: float, current: Compiled, candidate: Compiled) -> dict:
    """The backtest's JSON. Stages in name order and changed leads in id order, so that only `jobs`,
    `seconds` and `events_per_s` tell a run in several processes from a run in one."""
    return {"events": tally.events, "leads": tally.leads, "seconds": round(seconds, 2),
            "events_per_s": round(tally.events / seconds) if seconds > 0 else None, "jobs": jobs, "sample": sample,
            "current_version": current.rules.version, "candidate_version": candidate.rules.version,
            "stages": {name: dict(sorted(counts.items())) for name, counts in tally.stages.items()},
            "changed": tally.changed,
            "changed_leads": [c._asdict() for c in sorted(tally.changed_leads)[:MAX_LISTED]],
            "feedback": {key: tally.feedback[key] for key in ("accepted", "accepted_lost", "rejected",
                                                               "rejected_filtered")}}
