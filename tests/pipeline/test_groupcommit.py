"""The webhook's group commit on SQLite: a group of event requests is applied the fast way (leads
locked and read at once, no savepoint per request); anything that raises rolls the whole group back
and runs it again the careful way, so the bad request fails alone and the others are answered as if
it had never been there. What is stored is the same as applying the events one by one."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from leadflow.intake import Intake
from leadflow.pipeline import GroupCommit, Pipeline
from leadflow.rules import load_compiled
from leadflow.store import Store
from tests.concurrency import held
from tests.leadflow_cli import SMALL_RULES, ev

INTAKE = Intake(clock=lambda: 1.9e9)  # the events are from 2026: none is "in the future"
TRUSTED = Intake(clock=lambda: 1.9e9, trusted_types=True)  # may send stage_imported (an operator's import)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(textwrap.dedent(SMALL_RULES))
    return directory


def requests() -> list[tuple[list[str], Intake]]:
    """Requests of one to three events over three leads, with a duplicate and a changed id among them."""
    update = "lead_updated"
    lines = [ev("a1", "L1", update, title="VP Sales"), ev("a2", "L2"), ev("a3", "L1", "demo_requested"),
             ev("a1", "L1", update, title="VP Sales"), ev("a1", "L1", update, title="CTO"),
             ev("a4", "L3", "demo_requested"), ev("a5", "L2", update, title="vp"), ev("a6", "L3"),
             ev("a7", "L2", "demo_requested")]
    texts = [json.dumps(line) for line in lines]
    return [(texts[a:b], INTAKE) for a, b in ((0, 1), (1, 3), (3, 4), (4, 6), (6, 9))]


def grouped(pipeline: Pipeline, batches: list[tuple[list[str], Intake]]) -> tuple[GroupCommit, list]:
    writer = GroupCommit(pipeline.store, pipeline=lambda: pipeline)
    try:
        release = held(writer)
        futures = [writer.submit_events(items, "webhook", intake) for items, intake in batches]
        release.set()
        answers = [[(o.status, o.reason.split(":")[0]) for o in f.result(30)] for f in futures]
    finally:
        writer.close()
    return writer, answers


def stored(store: Store) -> tuple:
    leads = store.sql("SELECT id, stage, score, state FROM leads ORDER BY id")
    return (leads, store.sql("SELECT id, lead, type FROM events ORDER BY id"),
            store.sql("SELECT lead, rule, points FROM contributions ORDER BY lead, rule, points"),
            store.sql("SELECT reason FROM dead_letters ORDER BY id"))


def one_by_one(path: Path, rules: Path, batches: list[tuple[list[str], Intake]]) -> tuple[list, tuple]:
    pipeline = Pipeline(Store(str(path)), load_compiled(str(rules)))
    try:
        answers = []
        for items, intake in batches:
            with pipeline.store.transaction(durable=True):
                outcomes = [pipeline.apply_text(raw, "webhook", intake=intake) for raw in items]
            answers.append([(o.status, o.reason.split(":")[0]) for o in outcomes])
        return answers, stored(pipeline.store)
    finally:
        pipeline.store.close()


def test_a_group_applied_the_fast_way_stores_what_one_by_one_stores(tmp_path, rules):
    batches = requests()
    pipeline = Pipeline(Store(str(tmp_path / "group.db")), load_compiled(str(rules)))
    try:
        writer, answers = grouped(pipeline, batches)
        assert (writer.groups, writer.careful) == (2, 0)  # the held one, then all five requests in one go
        assert [[s for s, _ in a] for a in answers] == [
            ["applied"], ["applied", "applied"], ["duplicate"], ["conflict", "applied"],
            ["applied", "applied", "applied"]]
        assert (answers, stored(pipeline.store)) == one_by_one(tmp_path / "single.db", rules, batches)
        assert pipeline.store.load_state("L1").score == 60 and pipeline.store.load_state("L2").score == 60
    finally:
        pipeline.store.close()


def test_a_request_that_raises_is_refused_alone_and_the_group_runs_again_the_careful_way(tmp_path, rules):
    bad = json.dumps(ev("b1", "L2", "stage_imported", stage="nowhere"))  # raises after the engine decided
    batches = requests()
    batches.insert(2, ([bad], TRUSTED))
    pipeline = Pipeline(Store(str(tmp_path / "group.db")), load_compiled(str(rules)))
    try:
        writer, answers = grouped(pipeline, batches)
        assert writer.careful == 1 and writer.groups == 2
        assert answers[2] == [("rejected", "BAD_STAGE")]
        assert (answers, stored(pipeline.store)) == one_by_one(tmp_path / "single.db", rules, batches)
        assert pipeline.store.sql("SELECT count(*) FROM events WHERE id = 'b1'") == [(0,)]
    finally:
        pipeline.store.close()
