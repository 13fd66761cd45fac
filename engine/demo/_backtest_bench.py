"""`leadflow bench --backtest`: how fast `rules backtest` replays the log the benchmark just ingested.

The candidate is the benchmark's own rules with the first score threshold raised by 10 (with the
bundled rules, the MQL gate's 50 becomes 60), written to a temporary copy, so the replay compares two
rule sets that really differ and some leads end in another stage. The rate is events replayed per
second, each event through both rule sets; `ratio` divides it by the raw engine rate the same run
measured (durable_rules alone, one rule set, one process), so the figure travels between machines.
"""
from __future__ import annotations

import os
import re
import tempfile

from leadflow.core import LeadflowError, Location, Problem
from leadflow.learning import backtest
from leadflow.rules import copy_rule_dir, rule_files
from leadflow.store import Store

_SCORE_THRESHOLD = re.compile(r"(\{\s*score:\s*\{\s*at_least:\s*)(\d+(?:\.\d+)?)")
RAISE_BY = 10


def candidate_rules(rules_dir: str, out_dir: str) -> str:
    """Copy the rule set into `out_dir` with its first score threshold raised by RAISE_BY; what changed."""
    copy_rule_dir(rules_dir, out_dir)
    for path in rule_files(out_dir):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        found = _SCORE_THRESHOLD.search(text)
        if found:
            old = found.group(2)
            new = f"{float(old) + RAISE_BY:g}"
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text[:found.start(2)] + new + text[found.end(2):])
            line = text.count("\n", 0, found.start(2)) + 1
            return f"{os.path.basename(path)}:{line}: score at_least {old} -> {new}"
    raise LeadflowError([Problem("BENCH_NO_CANDIDATE", "the rules have no `score: { at_least: N }` threshold to "
                                 "change, so the backtest would compare the rules with themselves",
                                 Location(rules_dir), "run the backtest benchmark with the bundled rules "
                                 "(leave out --rules)")])


def backtest_bench(rules_dir: str, db_url: str, jobs: int, raw_rate: float) -> dict:
    """Backtest the database at `db_url` (only read) against the changed copy of `rules_dir`."""
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-candidate-") as tmp:
        candidate = os.path.join(tmp, "rules")
        change = candidate_rules(rules_dir, candidate)
        store = Store(db_url)
        try:
            result = backtest(store, rules_dir, candidate, jobs)
        finally:
            store.close()
    rate = result["events_per_s"] or 0
    return {"events": result["events"], "seconds": result["seconds"], "events_per_s": rate,
            "ratio": round(rate / raw_rate, 3) if raw_rate else None, "jobs": jobs,
            "changed": result["changed"], "candidate": change}
