"""The rule language's semantics where the engine once went wrong: `once_every` with out-of-order events,
patterns (RE2, linear time, a capped text, results cached per lead), and the reference oracle agreeing."""
from __future__ import annotations

import textwrap
from pathlib import Path

from leadflow.core import format_time, parse_time
from leadflow.rules import LeadState, load_rules
from leadflow.rules._compiler import compile_rules
from leadflow.runtime import Engine
from tests.reference import Reference, RefLead

T0 = parse_time("2026-10-01T00:00:00Z")


def compile_dir(tmp_path: Path, text: str):
    directory = tmp_path / "rules"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_rules(load_rules(str(directory)))


def run_both(compiled, events: list[dict]) -> tuple[LeadState, RefLead]:
    """Feed the same events to the engine and to the reference; both must agree after every event."""
    engine, state, ref, lead = Engine(), LeadState("L"), Reference(compiled.rules), RefLead("L")
    for event in events:
        at = parse_time(event["at"])
        engine.evaluate(compiled, state, event, at)
        expected = ref.apply(lead, event, at)
        assert (state.engagement, state.score) == (expected["engagement"], expected["score"]), event
    return state, lead


def ev(i: int, etype: str, offset: float, data: dict | None = None) -> dict:
    return {"id": f"e{i}", "lead": "L", "type": etype, "at": format_time(T0 + offset), "data": data or {}}


# ---- once_every between event times (the differential test's shrunk case) ----------------------

ONCE_EVERY = """\
    leadflow: 1
    events: { visit: a visit }
    scoring:
      engagement:
        - id: visits
          on: visit
          points: 7
          repeat: { once_every: 1h }
    """


def test_once_every_ignores_a_late_event_at_the_time_of_an_earlier_firing(tmp_path):
    # visit at 0 counts, visit at +2h counts; a visit that arrives late, dated 0 again, is within 1h of the
    # firing at 0 and must not count (the engine once compared it with the latest firing only: 21 points)
    compiled = compile_dir(tmp_path, ONCE_EVERY)
    state, lead = run_both(compiled, [ev(1, "visit", 0), ev(2, "visit", 7200), ev(3, "visit", 0)])
    assert state.engagement == lead.engagement == 14


def test_once_every_counts_a_late_event_between_two_firings_when_far_from_both(tmp_path):
    compiled = compile_dir(tmp_path, ONCE_EVERY)
    events = [ev(1, "visit", 0), ev(2, "visit", 4 * 3600), ev(3, "visit", 2 * 3600),  # 2h from both: counts
              ev(4, "visit", 3 * 3600 - 60), ev(5, "visit", 3600 + 60)]  # 59 min from a firing: neither counts
    state, lead = run_both(compiled, events)
    assert state.engagement == lead.engagement == 21


# ---- patterns: RE2, a capped text, results kept while the attributes do not change ----------------

PATTERNS = """\
    leadflow: 1
    events: { page_view: a page view }
    scoring:
      fit:
        - id: senior
          when: { title: { matches: "(?i)\\\\b(vp|chief)\\\\b" } }
          points: 20
        - id: wordy
          when: { notes: { matches: "^(\\\\w+\\\\s?)*$" } }
          points: 5
        - id: tail
          when: { notes: { matches: "needle" } }
          points: 1
      engagement:
        - id: pricing
          on: page_view
          where: { url: { matches: "^/pricing" } }
          points: 10
    stages:
      mql:
        when: { title: { contains: vp } }
    """


def test_a_catastrophic_pattern_runs_in_linear_time_through_the_cli(tmp_path):
    # `^(\w+\s?)*$` on 28 characters took Python's re 10.7 s; on 64 it would run for centuries. The CLI
    # ingests it at once (the subprocess timeout is the failure mode of a backtracking engine).
    import json

    from tests.leadflow_cli import Leadflow

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(PATTERNS), encoding="utf-8")
    events = tmp_path / "e.jsonl"
    hostile = "a" * 63 + "!"
    events.write_text(json.dumps(ev(1, "lead_updated", 0, {"notes": hostile, "title": "VP Sales"})) + "\n"
                      + json.dumps(ev(2, "lead_updated", 60, {"notes": "plain words here"})) + "\n")
    cli = Leadflow(tmp_path / "t.db", rules)
    cli("ingest", events, check=True, timeout=60)
    shown = json.loads(cli("leads", "show", "L", "--json", check=True, timeout=60).stdout)
    assert shown["fit"] == 25  # senior 20 + wordy 5 (the second update made the notes plain words)


def test_a_pattern_sees_the_first_4096_characters(tmp_path):
    from leadflow.rules._conditions import PATTERN_TEXT_LIMIT

    assert PATTERN_TEXT_LIMIT == 4096
    compiled = compile_dir(tmp_path, PATTERNS)
    engine, state = Engine(), LeadState("L")
    engine.evaluate(compiled, state, ev(1, "lead_updated", 0, {"notes": "x" * 4090 + "needle"}), T0)
    assert state.fit_rules.get("tail") == 1  # ends at character 4096: seen
    engine.evaluate(compiled, state, ev(2, "lead_updated", 1, {"notes": "x" * 4091 + "needle"}), T0 + 1)
    assert "tail" not in state.fit_rules  # ends at 4097: beyond what a pattern sees
    # event data is capped the same way
    engine.evaluate(compiled, state, ev(3, "page_view", 2, {"url": "/pricing" + "x" * 10_000}), T0 + 2)
    assert state.engagement == 10


def test_patterns_are_re2_and_ascii_classes(tmp_path):
    compiled = compile_dir(tmp_path, PATTERNS)
    engine, state = Engine(), LeadState("L")
    # \w is ASCII in RE2 (Python's re would take the accented letter as a word character)
    engine.evaluate(compiled, state, ev(1, "lead_updated", 0, {"notes": "café crème", "title": "Chief of Staff"}), T0)
    assert state.fit_rules == {"senior": 20}
    # a lone surrogate cannot reach RE2 as UTF-8; the test is false rather than an engine failure
    engine.evaluate(compiled, state, ev(2, "lead_updated", 1, {"notes": "a\ud800b needle"}), T0 + 1)
    assert state.fit_rules == {"senior": 20, "tail": 1}


def test_attribute_patterns_run_only_when_the_attributes_change(tmp_path):
    from leadflow.pipeline import Pipeline
    from leadflow.store import Store

    compiled = compile_dir(tmp_path, PATTERNS)
    shape = compiled.shape
    tests_on_attributes = sum(1 for ns, _, _ in shape.text_tests if ns == "a")
    assert tests_on_attributes == 4  # senior, wordy, tail, and the gate's `contains`
    pipeline = Pipeline(Store(str(tmp_path / "t.db")), compiled)  # the state goes through SQLite each time
    pipeline.apply(ev(1, "lead_updated", 0, {"title": "VP Sales", "notes": "hello"}))
    assert shape.pattern_runs == tests_on_attributes
    for i in range(2, 22):
        pipeline.apply(ev(i, "page_view", i, {"url": "/pricing"}))
    pipeline.apply(ev(22, "lead_updated", 30, {"title": "VP Sales"}))  # same value: nothing changed
    assert shape.pattern_runs == tests_on_attributes  # 21 more events, no pattern run again
    pipeline.apply(ev(23, "lead_updated", 40, {"title": "Intern"}))
    assert shape.pattern_runs == 2 * tests_on_attributes
    state = pipeline.store.load_state("L")
    assert state.stage == "mql" and state.fit_rules == {"wordy": 5}  # Intern: senior no longer holds
    assert pipeline.store.load_state("L").text_hits is not None


# ---- long `in` lists are tested in Python (the engine hung loading 512 alternatives) -----------------

def _membership_rules(values: list) -> str:
    return f"""\
    leadflow: 1
    scoring:
      fit:
        - {{ id: inside, when: {{ f: {{ in: {values!r} }} }}, points: 1 }}
        - {{ id: outside, when: {{ f: {{ not_in: {values!r} }} }}, points: 10 }}
        - {{ id: not_inside, when: {{ not: {{ f: {{ in: {values!r} }} }} }}, points: 100 }}
        - {{ id: not_outside, when: {{ not: {{ f: {{ not_in: {values!r} }} }} }}, points: 1000 }}
    """.replace("True", "true")


def test_a_long_in_list_loads_fast_and_means_what_a_short_one_means(tmp_path):
    import time

    probes = [300, 300.0, "300", True, "vp", 7, "x", [300], None]
    short = [300, "vp", True]
    long = short + list(range(1000, 3000))  # 2,003 values; 7 is in neither
    events = [ev(1 + i, "lead_updated", i, {"f": v}) for i, v in enumerate(probes)]
    events.append(ev(99, "lead_updated", 99, {"g": 1}))  # `f` still null: missing
    started = time.monotonic()
    long_compiled = compile_dir(tmp_path / "long", _membership_rules(long))
    long_state, _ = run_both(long_compiled, events[:1])
    assert time.monotonic() - started < 5  # the engine's form of 512 values never finished loading
    short_compiled = compile_dir(tmp_path / "short", _membership_rules(short))
    engine_short, engine_long = Engine(), Engine()
    state_short, state_long = LeadState("L"), LeadState("L")
    for event in events:
        at = parse_time(event["at"])
        engine_short.evaluate(short_compiled, state_short, event, at)
        engine_long.evaluate(long_compiled, state_long, event, at)
        assert state_long.fit_rules == state_short.fit_rules, event
    run_both(long_compiled, events)  # and both agree with the reference semantics


def test_many_short_in_lists_load_fast_and_keep_their_meaning(tmp_path):
    # 100 rules of 8 values each hung the engine's load too: past 256 values in all, lists run in Python
    rules = "".join(f"    - {{ id: r{i}, when: {{ f: {{ in: {list(range(i * 8, i * 8 + 8))} }} }}, points: 1 }}\n"
                    for i in range(100))
    compiled = compile_dir(tmp_path, "leadflow: 1\nscoring:\n  fit:\n" + rules.replace("    - ", "        - ", 0))
    run_both(compiled, [ev(1, "lead_updated", 0, {"f": 5}), ev(2, "lead_updated", 1, {"f": 799.0}),
                        ev(3, "lead_updated", 2, {"f": "799"})])
