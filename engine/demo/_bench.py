"""`leadflow bench`: the full ingest path against plain durable_rules, on generated visit traffic.

The full path is what production does per event: parse the JSON line, validate it, load the lead's
state from SQLite, evaluate it in the engine (forward chaining through scoring, BANT and gates),
write the event, lead, decision, contributions and stage changes in one transaction. The baseline is
durable_rules' own `assert_fact` on the same compiled conditions with empty actions, so the ratio shows
what our work around the engine costs. The baseline is timed in slices of 1,000 facts every 2 s of the
run (their time is left out of the full path's), so both rates see the same machine (see
runtime/_baseline.py).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from typing import Callable

from leadflow.core import LeadflowError, Location, Problem, parse_time
from leadflow.pipeline import Pipeline
from leadflow.rules import Compiled, LeadState, load_compiled, merge_attributes
from leadflow.runtime import Baseline
from leadflow.store import Store, is_postgres_url

from ._backtest_bench import backtest_bench
from ._parallel import parallel_bench
from ._synthetic import bench_events

SLICE = 1000  # baseline facts per slice, about a tenth of a second
SLICE_EVERY = 2.0  # seconds of the full path between two slices


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_bench(rules_dir: str, n_leads: int, per_lead: int, seed: int = 1, db_path: str | None = None,
              progress: Callable[[str], None] | None = None, jobs: int | None = None, backtest: bool = False) -> dict:
    """The full path in this process (into `db_path`, or a temporary file); with `jobs`, also one
    process against `jobs` processes on scratch databases (see _parallel.py) in the same run; with
    `backtest`, also a backtest of the ingested log with `jobs` (or 1) processes (see _backtest_bench.py)."""
    compiled = load_compiled(rules_dir)
    tmp = None
    if db_path is None:
        tmp = tempfile.mkdtemp(prefix="leadflow-bench-")
        db_path = os.path.join(tmp, "bench.db")
    try:
        store = Store(db_path)
        if store.count("events"):  # its events would all be duplicates: a rate of nothing
            store.close()
            raise LeadflowError([Problem("BENCH_DB_NOT_EMPTY", f"the database holds {store.count('events')} events; the"
                                         " benchmark ingests into an empty one", Location(store.where),
                                         "leave out --db (a temporary file), or give a new file or an empty "
                                         "PostgreSQL database")])
        pipeline = Pipeline(store, compiled)
        total = n_leads * per_lead
        done = [0]
        last = [time.perf_counter()]
        baseline = Baseline(compiled, raw_facts(compiled, min(total, 20000), per_lead, seed))
        aside = [0.0, time.perf_counter() + SLICE_EVERY]  # seconds spent on baseline slices; when the next is due

        def tick(n: int) -> None:
            done[0] += n
            now = time.perf_counter()
            if now >= aside[1]:  # a slice of the baseline, timed on the machine the full path has right now
                baseline.run(SLICE)
                after = time.perf_counter()
                aside[0] += after - now
                aside[1] = after + SLICE_EVERY
            if progress and now - last[0] > 5:
                last[0] = now
                progress(f"{done[0]:,}/{total:,} events, peak RSS {peak_rss_mb()} MB")

        lines = ((i, json.dumps(e)) for i, e in enumerate(bench_events(n_leads, per_lead, seed), 1))
        start = time.perf_counter()
        counts = pipeline.apply_lines(lines, source="bench", progress=tick)
        elapsed = time.perf_counter() - start - aside[0]
        while baseline.asserted < 3 * min(total, 20000):  # a short run: topped up after it, slice by slice
            baseline.run(min(SLICE, 3 * min(total, 20000) - baseline.asserted))
        raw = baseline.rate
        rate = counts.applied / elapsed if elapsed else 0.0
        pipeline.store.close()
        result = {"events": counts.applied, "leads": n_leads, "rejected": counts.rejected,
                  "seconds": round(elapsed, 1), "events_per_s": round(rate), "raw_engine_events_per_s": round(raw),
                  "raw_engine_slices": spread(baseline.slices),
                  "ratio": round(rate / raw, 3) if raw else None, "peak_rss_mb": peak_rss_mb(),
                  "db_mb": round(os.path.getsize(db_path) / 1e6, 1) if os.path.isfile(db_path) else None,
                  "backend": "postgresql" if is_postgres_url(db_path) else "sqlite",
                  "rules_version": compiled.rules.version}
        if backtest:
            result["backtest"] = backtest_bench(rules_dir, db_path, jobs or 1, raw)
        if jobs:
            result["parallel"] = parallel_bench(rules_dir, db_path if is_postgres_url(db_path) else None, n_leads,
                                                per_lead, seed, jobs)
        return result
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def raw_facts(compiled: Compiled, n: int, per_lead: int, seed: int) -> list[dict]:
    """The input facts the full path asserts, for about `n` generated events, for the baseline.

    They have the run's own mix (`per_lead` events per lead): a lead's first event carries its
    attributes and costs the engine more, so at 2 events per lead the engine alone is about a fifth
    slower than at 10, and a baseline of another mix would misstate the ratio."""
    shape = compiled.shape
    states: dict = {}
    facts = []
    for i, event in enumerate(bench_events(max(1, n // per_lead), per_lead, seed + 1)):
        state = states.setdefault(event["lead"], LeadState(event["lead"]))
        if event["type"] == "lead_updated":
            state.attrs = merge_attributes(state.attrs, event["data"])
        fact = {"sid": "0", "id": f"raw{i}", "k": "i", "t": event["type"], "u": 1 if event["type"] == "lead_updated" else 0}
        fact.update(shape.attribute_fields(state.attrs))
        fact.update(shape.data_fields_of(event["data"]))
        fact.update(shape.event_fields(state.counts, state.times, parse_time(event["at"])))
        facts.append(fact)
    return facts


def spread(rates: list[float]) -> dict:
    """How many baseline slices there were and how much their rates moved (10th and 90th percentiles)."""
    if len(rates) < 2:
        return {"count": len(rates)}
    deciles = statistics.quantiles(rates, n=10)
    return {"count": len(rates), "p10": round(deciles[0]), "p90": round(deciles[-1])}


def run_scheduler_bench(rules_dir: str, db_path: str, share: float = 0.01, max_steps: int = 20000) -> dict:
    """The scheduler's cost on an existing (benchmark) database, which it changes:
    a decay tick where `share` of the leads can change, then nurture steps per second."""
    from leadflow.nurture import Scheduler

    compiled = load_compiled(rules_dir)
    pipeline = Pipeline(Store(db_path), compiled)
    store, scheduler = pipeline.store, Scheduler(pipeline.store, compiled.rules, pipeline.apply_internal)
    leads = store.count("leads")
    latest = store.latest_event_at()
    step = max(1, round(1 / share))
    with store.transaction():  # exactly `share` of the leads get a timer due now; the rest have none
        due = store.set_timers_on_share("decay", latest, step)
    start = time.perf_counter()
    ticks = 0
    while store.due_timers(latest, 1):
        ticks += scheduler.run_due(latest)["ticks"]
    tick_seconds = time.perf_counter() - start
    with store.transaction():
        store.clear_timers()  # nurture steps only from here
    steps, start = 0, time.perf_counter()
    horizon = latest
    while steps < max_steps:
        nxt = store.next_due(assignments=False)
        if nxt is None:
            break
        horizon = max(horizon, nxt)
        done = scheduler.run_due(horizon)["steps"]
        if not done:
            horizon += 86400
        steps += done
    step_seconds = time.perf_counter() - start
    return {"leads": leads, "timers_due": due, "ticks": ticks, "tick_seconds": round(tick_seconds, 2),
            "ticks_per_s": round(ticks / tick_seconds) if tick_seconds else None, "nurture_steps": steps,
            "steps_per_s": round(steps / step_seconds) if step_seconds else None, "peak_rss_mb": peak_rss_mb()}
