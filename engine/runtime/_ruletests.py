"""Rule tests kept beside the rules and run by `leadflow rules test`, like OPA's: given attributes and timed events,
expect a stage, scores, BANT and which rules fired.

A test file is `rules/tests/*.yaml` or `rules/*_test.yaml`:

    leadflow: 1
    tests:
      - name: a VP who asks for a demo becomes SQL
        start: 2026-11-02T09:00:00Z          # optional; event times may be relative to it: +1h, +2d
        attributes: { title: VP Sales, employees: 300 }
        events:
          - { type: demo_requested, at: +1h }
          - { type: page_view, at: +1d, data: { url: /pricing } }
        expect:
          stage: sql
          score: { at_least: 50 }           # a number, or at_least / at_most / between
          bant: { budget: true }
          fired: [senior_title, demo_request]
          not_fired: [student]
          disqualified: null                # or a reason
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

from leadflow.core import Document, Location, Problem, did_you_mean, load_file, parse_duration, parse_time
from leadflow.rules import Compiled, LeadState

from ._durable import Engine

TEST_KEYS = ("name", "start", "attributes", "events", "expect")
EXPECT_KEYS = ("stage", "score", "fit", "engagement", "bant", "fired", "not_fired", "disqualified")
DEFAULT_START = "2026-01-05T09:00:00Z"


@dataclass
class Failure:
    location: Location
    name: str
    message: str


@dataclass
class Report:
    tests: int = 0
    passed: int = 0
    failures: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # malformed test files
    fired: set = field(default_factory=set)
    untested: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems


def test_files(directory: str) -> list[str]:
    found = glob.glob(os.path.join(directory, "tests", "*.yaml")) + glob.glob(os.path.join(directory, "*_test.yaml"))
    return sorted(found)


def run_tests(compiled: Compiled, directory: str, engine: Engine | None = None) -> Report:
    engine = engine or Engine()
    report = Report()
    for path in test_files(directory):
        doc, problems = load_file(path)
        report.problems += problems
        if doc is None:
            continue
        tests = doc.data.get("tests") if isinstance(doc.data, dict) else None
        if not isinstance(tests, list):
            report.problems.append(Problem("TEST_FORMAT", "a rule test file needs 'tests:', a list of tests",
                                           doc.at(()), "see rules/tests/ for examples"))
            continue
        for i, test in enumerate(tests):
            _run_one(compiled, engine, doc, test, ("tests", i), report)
    report.untested = [r for r in compiled.rules.rule_ids if r not in report.fired]
    report.untested += [f"bant.{b}" for b in compiled.rules.bant if f"bant.{b}" not in report.fired]
    return report


def _run_one(compiled: Compiled, engine: Engine, doc: Document, test: Any, path: tuple, report: Report) -> None:
    if not isinstance(test, dict):
        report.problems.append(Problem("TEST_FORMAT", "a test must be a mapping", doc.at(path)))
        return
    for key in test:
        if key not in TEST_KEYS:
            report.problems.append(Problem("UNKNOWN_KEY", f"unknown key '{key}' in a test", doc.at(path + (key,), True),
                                           did_you_mean(key, TEST_KEYS)))
            return
    for key in test.get("expect") or {}:
        if key not in EXPECT_KEYS:
            report.problems.append(Problem("UNKNOWN_KEY", f"unknown expectation '{key}'",
                                           doc.at(path + ("expect", key), True), did_you_mean(key, EXPECT_KEYS)))
            return
    name = str(test.get("name") or f"test {path[-1] + 1}")
    report.tests += 1
    try:
        start = parse_time(str(test.get("start") or DEFAULT_START))
        events = [{"id": "t0", "lead": "test", "type": "lead_updated", "at": start, "data": test.get("attributes") or {}}]
        for j, ev in enumerate(test.get("events") or []):
            at = ev.get("at", "+0m")
            t = start + parse_duration(at[1:]) if isinstance(at, str) and at.startswith("+") and at != "+0m" else (
                start if at == "+0m" else parse_time(str(at)))
            events.append({"id": f"t{j + 1}", "lead": "test", "type": ev["type"], "at": t, "data": ev.get("data") or {}})
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        report.problems.append(Problem("TEST_FORMAT", f"bad test input: {exc}", doc.at(path)))
        return
    state, fired = LeadState("test"), []
    for ev in events:
        decision = engine.evaluate(compiled, state, {**ev, "at": str(ev["at"])}, ev["at"])
        fired += decision.fired
    report.fired.update(fired)
    problems = _compare(test.get("expect") or {}, state, set(fired))
    if problems:
        for key, message in problems:
            report.failures.append(Failure(doc.at(path + ("expect", key)), name, message))
    else:
        report.passed += 1


def _compare(expect: dict, state: LeadState, fired: set) -> list[tuple[str, str]]:
    out = []
    if "stage" in expect and expect["stage"] != state.stage:
        out.append(("stage", f"expected stage {expect['stage']}, got {state.stage}"))
    for key in ("score", "fit", "engagement"):
        if key in expect and not _number_ok(expect[key], getattr(state, key)):
            out.append((key, f"expected {key} {_show(expect[key])}, got {getattr(state, key):g}"))
    for name, want in (expect.get("bant") or {}).items():
        if bool(state.bant.get(name)) != bool(want):
            out.append(("bant", f"expected BANT {name} {str(bool(want)).lower()}, got {str(bool(state.bant.get(name))).lower()}"))
    missing = [r for r in expect.get("fired") or [] if r not in fired]
    if missing:
        out.append(("fired", f"expected {', '.join(missing)} to fire, they did not (fired: {', '.join(sorted(fired)) or 'none'})"))
    extra = [r for r in expect.get("not_fired") or [] if r in fired]
    if extra:
        out.append(("not_fired", f"expected {', '.join(extra)} not to fire, but they did"))
    if "disqualified" in expect and expect["disqualified"] != state.disqualified:
        out.append(("disqualified", f"expected disqualified {expect['disqualified']}, got {state.disqualified}"))
    return out


def _number_ok(want: Any, got: float) -> bool:
    if isinstance(want, dict):
        if "at_least" in want and got < want["at_least"]:
            return False
        if "at_most" in want and got > want["at_most"]:
            return False
        if "between" in want and not (want["between"][0] <= got <= want["between"][1]):
            return False
        return True
    return abs(float(want) - got) <= 0.005


def _show(want: Any) -> str:
    if isinstance(want, dict):
        return " and ".join(f"{k.replace('_', ' ')} {v}" for k, v in want.items())
    return f"{want}"
