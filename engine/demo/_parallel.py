"""`leadflow bench --jobs N`: `ingest --jobs N` against `ingest`, on the same events, in one run.

Both runs go through the code `leadflow ingest --jobs` runs (pipeline.apply_in_jobs): with one job the
plain pipeline in this process; with N, N processes, each lead's events in one of them, in order (on
SQLite each process writes a scratch file, merged into the database in one transaction; on
PostgreSQL they write to it directly). Each run gets a fresh scratch database (on PostgreSQL a schema
of the database given, dropped after; on SQLite a temporary file) and is timed from the lines in hand
to the last commit, so the N-job figure pays for what one job does not need: starting the
processes, splitting the lines and the merge.
"""
from __future__ import annotations

import json
import time

from leadflow.pipeline import Pipeline, apply_in_jobs
from leadflow.rules import load_compiled
from leadflow.store import Store, scratch_database

from ._synthetic import bench_events


def ingest_with_jobs(rules_dir: str, url: str, lines: list[tuple[int, str]], jobs: int) -> dict:
    """Ingest `lines` into the database at `url` as `leadflow ingest --jobs JOBS` does; events/s."""
    pipeline = Pipeline(Store(url), load_compiled(rules_dir))
    try:
        began = time.perf_counter()
        counts = apply_in_jobs(pipeline, rules_dir, lines, "bench", jobs)
        elapsed = time.perf_counter() - began
    finally:
        pipeline.store.close()
    return {"jobs": jobs, "events": counts.applied, "rejected": counts.rejected, "seconds": round(elapsed, 2),
            "events_per_s": round(counts.applied / elapsed) if elapsed > 0 else None}


def parallel_bench(rules_dir: str, db_url: str | None, n_leads: int, per_lead: int, seed: int, jobs: int) -> dict:
    """`ingest` (one job), then `ingest --jobs JOBS`, each on a fresh scratch database; the speedup of the second."""
    lines = [(i, json.dumps(e)) for i, e in enumerate(bench_events(n_leads, per_lead, seed), 1)]
    tag = f"leadflow_bench_{int(time.time())}"
    with scratch_database(db_url, f"{tag}_1") as url:
        one = ingest_with_jobs(rules_dir, url, lines, 1)
    with scratch_database(db_url, f"{tag}_{jobs}") as url:
        many = ingest_with_jobs(rules_dir, url, lines, jobs)
    speedup = round(many["events_per_s"] / one["events_per_s"], 2) if one["events_per_s"] else None
    return {"jobs": jobs, "events_per_s": many["events_per_s"], "speedup": speedup,
            "one_process_events_per_s": one["events_per_s"], "seconds": many["seconds"],
            "events": many["events"], "backend": "postgresql" if url.startswith("postgres") else "sqlite"}
