"""A batch reads its leads and events once (pipeline/_cache.py): it must decide exactly as the
statement-per-event path does, duplicates and conflicts inside the batch and undone events included."""
from __future__ import annotations

import json
from pathlib import Path

from leadflow.pipeline import Pipeline
from leadflow.rules import Role, load_rules
from leadflow.rules._compiler import compile_rules
from leadflow.store import Store
from tests.runtime.test_engine import RULES, event, write


def _compiled(tmp_path, broken: bool = False):
    compiled = compile_rules(load_rules(str(write(tmp_path / "r", RULES.replace("{points}", "20")))))
    if broken:  # the pricing rule's action cannot work: its event is undone after the engine changed the state
        compiled.roles["s:pricing"] = Role("score", "broken", rule=None)
    return compiled


def _states(store: Store) -> dict:
    return {row["id"]: store.load_state(row["id"]).to_json() for row in store.list_leads()}


def test_an_undone_event_leaves_no_trace_in_the_next_events_of_its_lead(tmp_path):
    lines = [(1, json.dumps(event(1, "lead_updated", {"title": "VP"}))),
             (2, json.dumps(event(2, "page_view", {"url": "/pricing"}))),  # fails inside the engine
             (3, json.dumps(event(3, "page_view", {"url": "/docs"}))),
             (4, json.dumps(event(4, "lead_updated", {"title": "CEO"})))]
    batched = Pipeline(Store(str(tmp_path / "batch.db")), _compiled(tmp_path, broken=True))
    counts = batched.apply_lines(lines, source="t")
    assert (counts.applied, counts.rejected) == (3, 1)
    alone = Pipeline(Store(str(tmp_path / "alone.db")), _compiled(tmp_path))
    for number in (1, 3, 4):  # what the batch must equal: the three good events, one transaction each
        alone.apply_text(lines[number - 1][1], "t", number)
    assert _states(batched.store) == _states(alone.store)
    assert batched.store.load_state("L").events == 3


def test_a_repeated_id_inside_one_batch_is_a_duplicate_or_a_conflict(tmp_path):
    first = event(1, "page_view", {"url": "/docs"})
    changed = {**first, "data": {"url": "/other"}}
    lines = [(1, json.dumps(first)), (2, json.dumps(first)), (3, json.dumps(changed)),
             (4, json.dumps(event(2, "page_view", {"url": "/pricing"})))]
    pipeline = Pipeline(Store(str(tmp_path / "t.db")), _compiled(tmp_path))
    counts = pipeline.apply_lines(lines, source="t")
    assert (counts.applied, counts.duplicates, counts.conflicts) == (2, 1, 1)
    again = pipeline.apply_lines(lines, source="t")  # a second batch finds them in the log, not in memory
    assert (again.applied, again.duplicates, again.conflicts) == (0, 3, 1)
    assert pipeline.store.load_state("L").events == 2


def test_a_fast_batch_writes_what_one_transaction_per_event_writes(tmp_path):
    """Lead rows written once per batch (after the lead's last event) hold what per-event rows would:
    the same state, stage, scores, created_at (the first event) and updated_at (the last)."""
    from leadflow.demo._synthetic import bench_events
    from leadflow.rules import load_compiled

    rules = str(Path(__file__).parents[2] / "rules")
    lines = [(i, json.dumps(e)) for i, e in enumerate(bench_events(120, 6, 3), 1)]
    lines.insert(40, lines[10])  # a resent event inside the batch
    batched = Pipeline(Store(str(tmp_path / "batch.db")), load_compiled(rules))
    batched.apply_lines(lines, source="t")
    alone = Pipeline(Store(str(tmp_path / "alone.db")), load_compiled(rules))
    for number, raw in lines:
        alone.apply_text(raw, "t", number)
    for query in ("SELECT * FROM leads ORDER BY id", "SELECT event_id, lead, at, trace FROM decisions ORDER BY event_id",
                  "SELECT lead, from_stage, to_stage, at, reason FROM stage_history ORDER BY lead, id",
                  "SELECT lead, track, pc, status, next_at FROM nurture ORDER BY lead, id",
                  "SELECT lead, kind, due_at FROM timers ORDER BY lead, kind"):
        assert batched.store.sql(query) == alone.store.sql(query), query
    assert len(batched.store.sql("SELECT * FROM leads")) == 120
