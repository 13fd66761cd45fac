"""The engine wrapper: rule versions, errors inside actions, and what stays resident."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from leadflow.core import EngineError, parse_time
from leadflow.pipeline import Pipeline
from leadflow.rules import LeadState, Role, load_rules
from leadflow.rules._compiler import compile_rules
from leadflow.runtime import Engine
from leadflow.store import Store
from tests.leadflow_cli import Leadflow
from tests.runtime.resident import resident_facts


def write(dir_: Path, text: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "rules.yaml").write_text(textwrap.dedent(text))
    return dir_


RULES = """\
    leadflow: 1
    scoring:
      fit:
        - id: senior
          when: { title: { matches: "(?i)vp" } }
          points: {points}
      engagement:
        - id: pricing
          on: page_view
          where:
            any:
              - { url: { contains: "/pricing" } }
              - { url: { contains: "pricing" } }
          points: 10
    stages:
      mql:
        when: { score: { at_least: 25 } }
    """


def event(i: int, etype: str, data: dict, at: str = "2026-11-02T09:00:00Z") -> dict:
    return {"id": f"e{i}", "lead": "L", "type": etype, "at": at, "data": data}


def test_rule_counts_once_when_several_any_branches_match(tmp_path):
    # durable_rules fires a rule once per matching `$or` branch; the runtime must count it once.
    compiled = compile_rules(load_rules(str(write(tmp_path / "r", RULES.replace("{points}", "20")))))
    engine, state = Engine(), LeadState("L")
    engine.evaluate(compiled, state, event(1, "page_view", {"url": "/pricing"}), parse_time("2026-11-02T09:00:00Z"))
    assert state.engagement == 10
    assert state.tallies["pricing"].count == 1


def test_a_new_rule_version_loads_beside_the_old_and_recomputes_fit(tmp_path):
    old = compile_rules(load_rules(str(write(tmp_path / "a", RULES.replace("{points}", "20")))))
    new = compile_rules(load_rules(str(write(tmp_path / "b", RULES.replace("{points}", "30")))))
    assert old.rules.version != new.rules.version and old.name != new.name
    engine, state = Engine(), LeadState("L")
    at = parse_time("2026-11-02T09:00:00Z")
    engine.evaluate(old, state, event(1, "lead_updated", {"title": "VP"}), at)
    assert state.fit == 20 and state.stage == "new"
    engine.evaluate(new, state, event(2, "page_view", {"url": "/"}), at)
    assert state.fit == 30 and state.stage == "mql" and state.rules_version == new.rules.version
    engine.evaluate(old, state, event(3, "page_view", {"url": "/"}), at)  # the old version is still loaded
    assert state.fit == 20
    assert resident_facts(engine, old) == 0 and resident_facts(engine, new) == 0


def test_an_exception_inside_an_action_is_raised_not_swallowed(tmp_path):
    compiled = compile_rules(load_rules(str(write(tmp_path / "r", RULES.replace("{points}", "20")))))
    compiled.roles["collect"] = Role("score", "broken", rule=None)  # an action that cannot work
    engine = Engine()
    with pytest.raises(EngineError) as info:
        engine.evaluate(compiled, LeadState("L"), event(1, "lead_updated", {"title": "VP"}),
                        parse_time("2026-11-02T09:00:00Z"))
    assert info.value.code == "ENGINE_ACTION"
    assert resident_facts(engine, compiled) == 0  # the failed call's fact was cleared


def test_an_engine_failure_becomes_a_dead_letter_and_the_rest_goes_on(tmp_path):
    compiled = compile_rules(load_rules(str(write(tmp_path / "r", RULES.replace("{points}", "20")))))
    compiled.roles["s:pricing"] = Role("score", "broken", rule=None)
    pipeline = Pipeline(Store(str(tmp_path / "t.db")), compiled)
    lines = [(1, json.dumps(event(1, "lead_updated", {"title": "VP"}))),
             (2, json.dumps(event(2, "page_view", {"url": "/pricing"}))),
             (3, json.dumps(event(3, "lead_updated", {"title": "CEO"})))]
    counts = pipeline.apply_lines(lines, source="t")
    assert (counts.applied, counts.rejected) == (2, 1)
    dead = pipeline.store.dead_letters()
    assert len(dead) == 1 and "ENGINE_ACTION" in dead[0]["reason"] and '"e2"' in dead[0]["raw"]
    assert not pipeline.store.has_event("e2")  # the failed event left nothing behind
    assert pipeline.store.load_state("L").fit == 0  # the CEO update applied after it


def test_state_survives_a_new_process(tmp_path):
    rules = write(tmp_path / "r", RULES.replace("{points}", "20"))
    db = tmp_path / "t.db"
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(event(1, "lead_updated", {"title": "VP"})) + "\n")
    more = tmp_path / "f.jsonl"
    more.write_text(json.dumps(event(2, "page_view", {"url": "/pricing"})) + "\n")
    cli = Leadflow(db, rules)
    cli("ingest", events, check=True)
    cli("ingest", more, check=True)
    shown = json.loads(cli("leads", "show", "L", "--json", check=True).stdout)
    assert (shown["stage"], shown["score"], shown["fit"], shown["engagement"]) == ("mql", 30, 20, 10)
    assert [h["stage"] for h in shown["history"]] == ["new", "mql"]


EXPONENT_RULES = """\
    leadflow: 1
    scoring:
      fit:
        - id: tiny_budget
          when: { budget: { at_least: 0.00001 } }
          points: 5
        - id: huge_ratio
          when: { ratio: { at_least: 1e16 } }
          points: 7
      engagement:
        - id: visit
          on: page_view
          points: 1
    stages:
      mql:
        when: { score: { at_least: 1000 } }
    """


@pytest.mark.parametrize("budget, ratio, fit", [(0.00001, 1e16, 12), (0.000009, 9.999999999999998e15, 0),
                                                (1e-300, 1.7976931348623157e308, 7), (5e-324, -1e16, 0)])
def test_numbers_python_writes_with_an_exponent_reach_the_engine(tmp_path, budget, ratio, fit):
    # Python writes 0.00001 as 1e-05 and 1e16 as 1e+16; durable_rules rejected both (error 204),
    # in a rule threshold, in an event, and in a stored attribute that a later rule reads.
    compiled = compile_rules(load_rules(str(write(tmp_path / "r", EXPONENT_RULES))))
    engine, state = Engine(), LeadState("L")
    engine.evaluate(compiled, state, event(1, "lead_updated", {"budget": budget, "ratio": ratio}),
                    parse_time("2026-11-02T09:00:00Z"))
    engine.evaluate(compiled, state, event(2, "page_view", {"ratio": ratio}), parse_time("2026-11-02T09:01:00Z"))
    assert (state.fit, state.engagement) == (fit, 1)
    assert resident_facts(engine, compiled) == 0


def test_a_stored_exponent_number_does_not_block_a_lead_when_a_rule_starts_reading_it(tmp_path):
    from leadflow.pipeline._files import intake_for

    rules = write(tmp_path / "r", RULES.replace("{points}", "20"))
    pipe = Pipeline.open(str(tmp_path / "lf.db"), str(rules))
    line = '{"id":"a1","lead":"A","type":"lead_updated","at":"2026-11-02T09:00:00Z","data":{"ratio":0.000015}}'
    assert pipe.apply_text(line, "t", intake=intake_for()).status == "applied"
    write(tmp_path / "r", RULES.replace("{points}", "20").replace(
        "  fit:\n", "  fit:\n        - id: ratio\n          when: { ratio: { at_least: 0.00001 } }\n          points: 3\n", 1))
    pipe = Pipeline.open(str(tmp_path / "lf.db"), str(rules))
    for i in range(2, 5):
        line = '{"id":"a%d","lead":"A","type":"page_view","at":"2026-11-02T09:0%d:00Z","data":{"url":"/x"}}' % (i, i)
        outcome = pipe.apply_text(line, "t", intake=intake_for())
        assert (outcome.status, outcome.reason) == ("applied", "")
    assert pipe.store.conn.execute("select score from leads").fetchone()[0] == 3
    assert pipe.store.count("dead_letters") == 0


def test_a_once_every_rule_remembers_a_bounded_number_of_firings(tmp_path):
    # 20,000 page views 7 h apart against once_every 1h made a 260 KB state, rewritten on every event.
    text = RULES.replace("{points}", "20").replace("          points: 10\n",
                                                   "          points: 1\n          repeat: { once_every: 1h }\n")
    compiled = compile_rules(load_rules(str(write(tmp_path / "r", text))))
    engine, state, t0 = Engine(), LeadState("L"), parse_time("2026-01-01T00:00:00Z")
    for i in range(300):
        engine.evaluate(compiled, state, event(i, "page_view", {"url": "/pricing"}), t0 + i * 7 * 3600)
    assert state.tallies["pricing"].count == 300  # every one counted
    assert len(state.tallies["pricing"].fired_at) == 64  # the latest 64 firings
    late = t0 + 299 * 7 * 3600 - 3600 * 7 * 10 + 1800  # within 1 h of a remembered firing: does not count
    engine.evaluate(compiled, state, event(300, "page_view", {"url": "/pricing"}), late)
    assert state.tallies["pricing"].count == 300
