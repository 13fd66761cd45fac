"""`leadflow bench --jobs N`: N ingest processes on one database, against one process, in one run.

Each process takes the leads of its share (by a hash of the lead id, so one lead's events stay in one
process, in order), opens its own store, compiles the rules and makes its events before a common
start; only the ingest is timed, from the start until the last process finishes. The one-process
figure is measured the same way in the same run, on a fresh database, so the speedup compares like
with like. On PostgreSQL each run gets a scratch schema of the database given (dropped after); on
SQLite a temporary file, where the processes queue on the one writer.
"""
from __future__ import annotations

import json
import multiprocessing
import time
import zlib

from leadflow.pipeline import Pipeline
from leadflow.rules import load_compiled
from leadflow.store import Store, scratch_database

from ._synthetic import bench_events

START_TIMEOUT = 600.0  # seconds the processes may take to get ready (compile rules, connect, make events)


def _share(lead: str, jobs: int) -> int:
    return zlib.crc32(lead.encode()) % jobs


def _ingest_part(rules_dir: str, url: str, n_leads: int, per_lead: int, seed: int, jobs: int, part: int,
                 start, results) -> None:
    try:
        pipeline = Pipeline(Store(url), load_compiled(rules_dir))
        lines = [(i, json.dumps(e)) for i, e in enumerate(bench_events(n_leads, per_lead, seed), 1)
                 if _share(e["lead"], jobs) == part]
        start.wait(START_TIMEOUT)
        counts = pipeline.apply_lines(lines, source="bench")
        results.put((part, counts.applied, counts.rejected, time.perf_counter(), None))
        pipeline.store.close()
    except BaseException as exc:
        start.abort()
        results.put((part, 0, 0, time.perf_counter(), f"{type(exc).__name__}: {exc}"))


def ingest_in_processes(rules_dir: str, url: str, n_leads: int, per_lead: int, seed: int, jobs: int) -> dict:
    """Ingest the benchmark stream into the database at `url` with `jobs` processes; events/s."""
    Store(url).close()  # the schema is made once, before the processes start
    ctx = multiprocessing.get_context("spawn")  # nothing of this process (threads, connections) is inherited
    start, results = ctx.Barrier(jobs + 1), ctx.Queue()
    procs = [ctx.Process(target=_ingest_part, args=(rules_dir, url, n_leads, per_lead, seed, jobs, k, start,
                                                    results), daemon=True) for k in range(jobs)]
    for proc in procs:
        proc.start()
    try:
        start.wait(START_TIMEOUT)
        began = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every process on the machine
    except Exception:
        began = time.perf_counter()
    reports = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    problems = [r[4] for r in reports if r[4]]
    if problems:
        raise RuntimeError(f"an ingest process failed: {problems[0]}")
    elapsed = max(r[3] for r in reports) - began
    applied = sum(r[1] for r in reports)
    return {"jobs": jobs, "events": applied, "rejected": sum(r[2] for r in reports), "seconds": round(elapsed, 2),
            "events_per_s": round(applied / elapsed) if elapsed > 0 else None}


def parallel_bench(rules_dir: str, db_url: str | None, n_leads: int, per_lead: int, seed: int, jobs: int) -> dict:
    """One process, then `jobs` processes, each on a fresh scratch database; the speedup of the second."""
    tag = f"leadflow_bench_{int(time.time())}"
    with scratch_database(db_url, f"{tag}_1") as url:
        one = ingest_in_processes(rules_dir, url, n_leads, per_lead, seed, 1)
    with scratch_database(db_url, f"{tag}_{jobs}") as url:
        many = ingest_in_processes(rules_dir, url, n_leads, per_lead, seed, jobs)
    speedup = round(many["events_per_s"] / one["events_per_s"], 2) if one["events_per_s"] else None
    return {"jobs": jobs, "events_per_s": many["events_per_s"], "speedup": speedup,
            "one_process_events_per_s": one["events_per_s"], "seconds": many["seconds"],
            "events": many["events"], "backend": "postgresql" if url.startswith("postgres") else "sqlite"}
