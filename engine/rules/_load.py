"""Loading and checking a rule directory: every problem, with file:line:column, before anything runs.

`load_rules` never stops at the first mistake: it walks every file against the schema, then checks
what the schema cannot (unique ids, names that must exist elsewhere, mutually exclusive keys), and
raises one `LeadflowError` holding all problems sorted by location.
"""
from __future__ import annotations

import math
import os
from typing import Any

from leadflow.core import (
    Document,
    LeadflowError,
    Location,
    Problem,
    did_you_mean,
    load_bytes,
    parse_duration,
    rep_hours_problems,
)

from ._calibration import Calibration, is_calibration, parse_calibration
from ._compiler import MAX_OPERATIONS, MAX_TESTS, Compiled, compile_rules, engine_tests, field_budget, operations
from ._conditions import BANT_NAMES, ConditionParser, EventCount
from ._crm import parse_crm
from ._feedback import parse_label_weights
from ._files import read_rule_files, rule_files, version_of
from ._lint import rule_warnings
from ._model import RuleSet, ScoringRule
from ._schema import CALIBRATION, ID_PATTERN, TOP, Anything, Cond, Field, ListOf, MapOf, Obj, OneOf, Scalar
from ._webhooks import parse_webhooks

BUILTIN_EVENTS = ("sql_accepted", "sql_rejected", "sql_reassigned", "deal_won", "deal_lost", "lead_disqualified",
                  "lead_recycled", "lead_reopened")
RESERVED_EVENTS = ("lead_updated", "decay_tick")


def load_compiled(directory: str) -> Compiled:
    """Load, check and compile a rule directory (raises LeadflowError with every problem)."""
    return compile_rules(load_rules(directory))


def load_rules(directory: str) -> RuleSet:
    """The checked rule set of a directory; raises LeadflowError with every problem found."""
    paths = rule_files(directory)
    if all(is_calibration(p) for p in paths):
        raise LeadflowError([Problem("NO_RULE_FILES", f"no rule files (*.yaml) in '{directory}'",
                                     Location(directory), "create one starting with 'leadflow: 1'")])
    builder, contents = _parse(paths)
    problems = builder.problems
    ruleset = builder.finish(version_of(contents), sorted(paths, key=is_calibration))  # rule files first
    if problems:
        raise LeadflowError(problems)
    ruleset.warnings = sorted(rule_warnings(ruleset, builder.sections, builder.on_uses, builder.counted,
                                            BUILTIN_EVENTS + RESERVED_EVENTS), key=Problem.sort_key)
    return ruleset


def load_calibration(directory: str) -> Calibration | None:
    """Only the checked calibration of a rule directory (None without one; LeadflowError when it is bad),
    for a listing of stored scores that needs nothing else of the rules."""
    builder, _ = _parse([p for p in rule_files(directory) if is_calibration(p)])
    if builder.problems:
        raise LeadflowError(builder.problems)
    return builder.calibration


def _parse(paths: list[str]) -> tuple[_Builder, list[tuple[str, bytes]]]:
    contents, problems = read_rule_files(paths)  # each file read once: the version is of exactly what was checked
    builder = _Builder(problems)
    for path, data in contents:
        doc, found = load_bytes(data, path)
        problems += found
        if doc is not None:
            builder.add(doc)
    return builder, contents


class _Builder:
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        self.sections: dict[str, tuple[Any, Document]] = {}
        self.on_uses: list[tuple[str, Location]] = []  # every `on:` event type and where it is written
        self.counted: set = set()  # event types that `event:` tests count
        self.calibration: Calibration | None = None
        self.calibration_file = ""

    def problem(self, doc: Document, code: str, message: str, path: tuple, hint: str = "",
                key: bool = False) -> None:
        self.problems.append(Problem(code, message, doc.at(path, key), hint))

    # -- structure --------------------------------------------------------------------------------
    def add(self, doc: Document) -> None:
        if is_calibration(doc.file):
            if self.calibration_file:
                self.problem(doc, "SECTION_TWICE", f"the calibration is already in {self.calibration_file}", (),
                             "keep one calibration file")
            self.calibration_file = doc.file
            self.calibration = parse_calibration(doc, lambda d: self.check(CALIBRATION, d.data, (), d), self.problems)
            return
        if doc.data is None:
            self.problem(doc, "MISSING_VERSION", "the file is empty", (), "start it with 'leadflow: 1'")
            return
        if not isinstance(doc.data, dict):
            self.problem(doc, "WRONG_TYPE", "a rule file must be a mapping of sections", ())
            return
        if "leadflow" not in doc.data:
            self.problem(doc, "MISSING_VERSION", "the file does not say its format version", (),
                         "add 'leadflow: 1' as the first line")
        self.check(TOP, doc.data, (), doc)
        for name, value in doc.data.items():
            if name == "leadflow" or name not in TOP.fields:
                continue
            if name in self.sections:
                first = self.sections[name][1]
                self.problem(doc, "SECTION_TWICE", f"section '{name}' is already defined in {first.at((name,), True)}",
                             (name,), "a section may appear in one file only; merge the two", key=True)
                continue
            self.sections[name] = (value, doc)

    def check(self, spec: Any, value: Any, path: tuple, doc: Document) -> bool:
        if isinstance(spec, Field):
            spec = spec.spec
        if isinstance(spec, (Anything, Cond)):
            return True  # conditions are checked by ConditionParser when the model is built
        if isinstance(spec, Obj):
            if not isinstance(value, dict):
                self.problem(doc, "WRONG_TYPE", f"expected a mapping, got {_kind(value)}", path)
                return False
            ok = True
            for key, item in value.items():
                if key not in spec.fields:
                    hint = did_you_mean(key, spec.fields) or f"allowed keys: {', '.join(spec.fields)}"
                    self.problem(doc, "UNKNOWN_KEY", f"unknown key '{key}'", path + (key,), hint, key=True)
                    ok = False
                else:
                    ok = self.check(spec.fields[key], item, path + (key,), doc) and ok
            for key, fld in spec.fields.items():
                if fld.required and key not in value and key != "leadflow":
                    self.problem(doc, "MISSING_KEY", f"missing required key '{key}'", path)
                    ok = False
            return ok
        if isinstance(spec, ListOf):
            if not isinstance(value, list):
                self.problem(doc, "WRONG_TYPE", f"expected a list, got {_kind(value)}", path,
                             "start each item with '- '")
                return False
            return all([self.check(spec.item, v, path + (i,), doc) for i, v in enumerate(value)])
        if isinstance(spec, MapOf):
            if not isinstance(value, dict):
                self.problem(doc, "WRONG_TYPE", f"expected a mapping, got {_kind(value)}", path)
                return False
            return all([self.check(spec.value, v, path + (k,), doc) for k, v in value.items()])
        if isinstance(spec, OneOf):
            if any(_fits(o, value) for o in spec.options):
                return all(self.check(o, value, path, doc) for o in spec.options if _fits(o, value))
            self.problem(doc, "WRONG_TYPE", f"expected {spec.doc or 'another form'}, got {_kind(value)}", path)
            return False
        return self._scalar(spec, value, path, doc)

    def _scalar(self, spec: Scalar, value: Any, path: tuple, doc: Document) -> bool:
        import re

        kind = spec.kind
        ok = {"string": isinstance(value, str), "id": isinstance(value, str), "duration": isinstance(value, str),
              "boolean": isinstance(value, bool),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool)}.get(kind, True)
        if not ok:
            self.problem(doc, "WRONG_TYPE", f"expected {'a ' + kind if kind != 'id' else 'a name'}, got {_kind(value)}",
                         path, "quote text that looks like a number or boolean" if kind == "string" else "")
            return False
        if kind == "number" and not math.isfinite(value):  # .inf/.nan would poison every score they touch
            self.problem(doc, "BAD_VALUE", f"expected a finite number, got {value}", path)
            return False
        if kind == "id" and not re.match(ID_PATTERN, value):
            self.problem(doc, "BAD_NAME", f"'{value}' is not a valid name", path,
                         "use letters, digits, _ . - and start with a letter")
            return False
        if kind == "duration":
            try:
                parse_duration(value)
            except ValueError as exc:
                self.problem(doc, "BAD_DURATION", str(exc), path)
                return False
        if spec.enum and value not in spec.enum:
            code = "BAD_VERSION" if path == ("leadflow",) else "BAD_VALUE"
            close = did_you_mean(str(value), [str(e) for e in spec.enum])
            self.problem(doc, code, f"{value!r} is not allowed here",
                         path, f"{close + ' ' if close else ''}allowed: {', '.join(str(e) for e in spec.enum)}")
            return False
        return True

    # -- model and cross-file checks ------------------------------------------------------------------
    def finish(self, version: str, paths: list[str]) -> RuleSet:
        rs = RuleSet(version=version, files=paths, calibration=self.calibration)
        rs.sections = {k: v for k, (v, _) in self.sections.items()}
        events_doc = self.sections.get("events")
        rs.events = dict(events_doc[0]) if events_doc and isinstance(events_doc[0], dict) else {}
        event_tests: list[tuple[EventCount, Document]] = []
        if "scoring" in self.sections:
            self._scoring(rs, *self.sections["scoring"], event_tests)
        if "bant" in self.sections:
            value, doc = self.sections["bant"]
            for name in BANT_NAMES:
                if isinstance(value, dict) and isinstance(value.get(name), dict) and "when" in value[name]:
                    rs.bant[name] = self._cond(doc, "bant", value[name]["when"], ("bant", name, "when"), event_tests)
        if "stages" in self.sections:
            value, doc = self.sections["stages"]
            if isinstance(value, dict):
                mql, sql = value.get("mql"), value.get("sql")
                if isinstance(mql, dict) and "when" in mql:
                    rs.mql = self._cond(doc, "stage", mql["when"], ("stages", "mql", "when"), event_tests)
                    rs.demote_below = mql.get("demote_below")
                if isinstance(sql, dict) and "when" in sql:
                    rs.sql = self._cond(doc, "stage", sql["when"], ("stages", "sql", "when"), event_tests)
        self._routing(rs)
        if "crm" in self.sections:
            rs.crm = parse_crm(self.sections["crm"][0], self.sections["crm"][1].at, self.problems)
        if "feedback" in self.sections:
            value, doc = self.sections["feedback"]
            rs.label_weights = parse_label_weights(value, lambda code, msg, path, hint: self.problem(doc, code, msg, path, hint))
        if "webhooks" in self.sections:
            value, doc = self.sections["webhooks"]
            rs.webhooks = parse_webhooks(value, lambda code, msg, path, hint: self.problem(doc, code, msg, path, hint))
        rs.template_dir = os.path.join(os.path.dirname(paths[0]), "templates") if paths else "templates"
        if "nurture" in self.sections:
            from ._tracks import parse_tracks

            value, doc = self.sections["nurture"]
            rs.nurture = parse_tracks(value, doc.at, self.problems, rs.template_dir)
            seen: set = set()
            for i, track in enumerate(rs.nurture):
                if track.id in seen:
                    self.problem(doc, "DUPLICATE_ID", f"track id '{track.id}' appears twice", ("nurture", i, "id"))
                seen.add(track.id)
        known = set(rs.events) | {r.on for r in rs.rules if r.on} | set(BUILTIN_EVENTS)
        self.counted = {test.type for test, _ in event_tests}
        unparsed = any(p.code in ("YAML_SYNTAX", "FILE_ENCODING", "FILE_UNREADABLE") for p in self.problems)
        if unparsed and events_doc is None:
            event_tests = []  # the file that did not parse may be the one declaring them; do not guess
        for test, doc in event_tests:
            if test.type not in known:
                self.problem(doc, "UNKNOWN_EVENT", f"unknown event type '{test.type}'", test.path,
                             did_you_mean(test.type, known) or "declare it under 'events:' or fix the spelling")
        self.problems += field_budget(rs)
        return rs

    def _cond(self, doc: Document, scope: str, data: Any, path: tuple, event_tests: list,
              engine: bool = True) -> Any:
        parser = ConditionParser(scope, self.problems, doc.at)
        cond = parser.parse(data, path)
        event_tests += [(e, doc) for e in parser.events]
        if engine and cond is not None and operations(cond) > MAX_OPERATIONS:
            self.problem(doc, "CONDITION_TOO_COMPLEX", f"the condition needs {operations(cond)} and/or operations; "
                         f"the engine runs at most {MAX_OPERATIONS} per rule", path,
                         "split it over several rules or criteria, or use `in: [...]` for alternatives of one field")
            return None
        if engine and cond is not None and engine_tests(cond) > MAX_TESTS:
            self.problem(doc, "CONDITION_TOO_COMPLEX", f"the condition needs {engine_tests(cond)} field tests; "
                         f"the engine fails an event that more than 64 tests match, so a rule holds at most "
                         f"{MAX_TESTS}", path, "split it over several rules, or use `in: [...]` for "
                         "alternatives of one field")
            return None
        return cond

    def _scoring(self, rs: RuleSet, value: Any, doc: Document, event_tests: list) -> None:
        if not isinstance(value, dict):
            return
        seen: dict[str, Location] = {}
        for group in ("fit", "engagement", "negative"):
            items = value.get(group) or []
            if not isinstance(items, list):
                continue
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                path = ("scoring", group, i)
                rule = self._rule(rs, group, item, path, doc, event_tests)
                where = doc.at(path + ("id",))
                if rule.id in seen:
                    self.problem(doc, "DUPLICATE_ID", f"rule id '{rule.id}' is already used at {seen[rule.id]}",
                                 path + ("id",), "rule ids are unique across the rule set")
                    continue
                seen[rule.id] = where
                rs.rules.append(rule)
        caps = value.get("caps")
        rs.caps = {k: v for k, v in caps.items() if k in ("fit", "engagement", "total")} if isinstance(caps, dict) else {}
        decay = value.get("decay")
        if isinstance(decay, dict) and isinstance(decay.get("half_life"), str):
            try:
                rs.half_life = parse_duration(decay["half_life"])
            except ValueError:
                pass  # reported by the schema walk

    def _rule(self, rs: RuleSet, group: str, item: dict, path: tuple, doc: Document, event_tests: list) -> ScoringRule:
        rule = ScoringRule(id=item["id"], group=group, description=item.get("description", ""),
                           location=str(doc.at(path + ("id",))))
        has_when, has_on = "when" in item, "on" in item
        if group == "negative" and has_when == has_on:
            self.problem(doc, "WHEN_OR_ON", f"rule '{rule.id}' needs exactly one of 'when' (attributes) or 'on' (an event)",
                         path + ("id",), "use 'when' for who the lead is, 'on' for what the lead did")
        if has_when:
            rule.when = self._cond(doc, "attributes", item["when"], path + ("when",), event_tests)
            for key in ("repeat", "max_points", "where"):
                if key in item and group == "negative":  # fit rules: the schema walk reports the key
                    self.problem(doc, "EVENT_ONLY_KEY", f"'{key}' applies only to rules with 'on'", path + (key,),
                                 "attribute rules are recomputed, they never accumulate", key=True)
        if has_on:
            rule.on = item["on"]
            if isinstance(rule.on, str):
                self.on_uses.append((rule.on, doc.at(path + ("on",))))
            if rule.on in RESERVED_EVENTS:
                self.problem(doc, "RESERVED_EVENT", f"'{rule.on}' changes attributes; it is not an engagement event",
                             path + ("on",), "score attributes with a 'when' rule instead")
            if "where" in item:
                rule.where = self._cond(doc, "event", item["where"], path + ("where",), event_tests)
        elif "where" in item and not has_when:
            self.problem(doc, "WHERE_NEEDS_ON", "'where' tests an event's data and needs 'on'", path + ("where",), key=True)
        has_points, has_dq = "points" in item, "disqualify" in item
        if group == "negative" and has_points == has_dq:
            self.problem(doc, "POINTS_OR_DISQUALIFY",
                         f"rule '{rule.id}' needs exactly one of 'points' or 'disqualify'", path + ("id",),
                         "points lower the score; disqualify ends the lead with a reason")
        if has_points and isinstance(item["points"], (int, float)) and not isinstance(item["points"], bool):
            rule.points = float(item["points"])
            if group == "negative" and rule.points >= 0:
                self.problem(doc, "NEGATIVE_POINTS", f"negative rule '{rule.id}' has points {item['points']}",
                             path + ("points",), f"write points: -{abs(item['points'])}" if item["points"] else
                             "a rule worth 0 points does nothing; give it negative points or remove it")
        if has_dq:
            rule.disqualify = item["disqualify"]
        repeat = item.get("repeat")
        if isinstance(repeat, str):
            rule.repeat = repeat
        elif isinstance(repeat, dict) and isinstance(repeat.get("once_every"), str):
            try:
                rule.repeat, rule.repeat_every = "once_every", parse_duration(repeat["once_every"])
            except ValueError:
                pass
        if isinstance(item.get("max_points"), (int, float)) and not isinstance(item.get("max_points"), bool):
            rule.max_points = abs(float(item["max_points"]))
            if rule.max_points == 0:
                self.problem(doc, "BAD_VALUE", "max_points of 0 means the rule can never count", path + ("max_points",))
        return rule

    def _routing(self, rs: RuleSet) -> None:
        reps = self.sections.get("reps")
        ids: set = set()
        if reps and isinstance(reps[0], list):
            seen: set = set()
            for i, rep in enumerate(reps[0]):
                if isinstance(rep, dict) and isinstance(rep.get("id"), str):
                    if rep["id"] in seen:
                        self.problem(reps[1], "DUPLICATE_ID", f"rep id '{rep['id']}' appears twice", ("reps", i, "id"))
                    seen.add(rep["id"])
                for code, key, message in rep_hours_problems(rep) if isinstance(rep, dict) else ():
                    self.problem(reps[1], code, message, ("reps", i, key))
            ids = seen
        routing = self.sections.get("routing")
        if routing and isinstance(routing[0], list):
            value, doc = routing
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    continue
                if "when" in entry:
                    self._cond(doc, "attributes", entry["when"], ("routing", i, "when"), [], engine=False)
                pool = entry.get("pool")
                for j, rep in enumerate(pool if isinstance(pool, list) else []):
                    if isinstance(rep, str) and rep not in ids:
                        self.problem(doc, "UNKNOWN_REP", f"unknown rep '{rep}'", ("routing", i, "pool", j),
                                     did_you_mean(rep, ids) or "reps are declared under 'reps:'")


def _fits(spec: Any, value: Any) -> bool:
    if isinstance(spec, Obj):
        return isinstance(value, dict)
    if isinstance(spec, Scalar):
        return isinstance(value, str) if spec.kind in ("string", "id", "duration") else True
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text '{value}'"
    return "a list" if isinstance(value, list) else "a mapping"
