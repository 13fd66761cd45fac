"""The one module that imports durable_rules.

An `Engine` owns a durable_rules Host with its background threads switched off (we never use the
engine's timers, and `delete_state` crashes while they run) and one ruleset per rule version, named
after the version hash. Lead state lives in our store, not in the engine: each event is evaluated in a
single engine session whose facts are all retracted or consumed by the end of the call, so the engine
holds no per-lead memory, the 1024-session limit never applies, and a restart loses nothing.

Every action is wrapped: an exception inside an action is recorded and re-raised as `EngineError`
after the call, never left in the session state where durable_rules would hide it.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from json.decoder import scanstring as _scanstring
from typing import Any, Callable, NamedTuple

import durable_rules_engine as _native
from durable import engine as _dr

from leadflow.core import EngineError, compact_json, format_time
from leadflow.rules import (
    Compiled,
    LeadState,
    Role,
    add_tally,
    compute_scores,
    describe,
    may_count,
    merge_attributes,
    note_event,
)

SID = "0"
MAX_CHAIN = 8

# A JSON string, or a number written with an exponent but no fraction ("1e-05", "1e+16").
_EXPONENT_HINT = re.compile(r"\de[+-]\d")
_EXPONENT_NUMBER = re.compile(r'("(?:[^"\\]|\\.)*")|(?<![\w.])(-?\d+)(e[+-]?\d+)')


def engine_json(value: Any, **options: Any) -> str:
    """JSON text that durable_rules parses: every number with an exponent also has a fraction.

    Python writes 0.00001 as `1e-05` and 1e16 as `1e+16`; the engine's parser rejects a number with
    an exponent and no decimal point (error 204), which would fail every later event of a lead holding
    such a value. `1.0e-05` is the same double (the engine reads the digits exactly) and parses. Strings
    are matched whole first, so text that looks like a number inside a string is never touched.
    """
    fast = options.keys() <= {"ensure_ascii"}  # every call on the event path
    text = compact_json(value, options.get("ensure_ascii", True)) if fast else json.dumps(value, **options)
    if not _EXPONENT_HINT.search(text):  # the usual case, one fast scan (Python always signs exponents)
        return text
    return _EXPONENT_NUMBER.sub(lambda m: m.group(1) or f"{m.group(2)}.0{m.group(3)}", text)


class _EngineJson:
    """Stands in for the `json` module inside durable_rules, so facts, events, state and rule
    definitions all reach the engine through `engine_json` (the library calls `json.dumps` itself)."""

    loads = staticmethod(json.loads)
    dumps = staticmethod(engine_json)


_dr.json = _EngineJson  # type: ignore[attr-defined]  # idempotent; this module is durable_rules' only user


class _QuietHost(_dr.Host):
    """A Host without the dispatcher and timer threads."""

    def _run(self) -> None:  # noqa: D401 - overriding the thread starter on purpose
        return None


class Added(NamedTuple):
    """Points one event rule added; kept in the decision's trace as the JSON list [rule, points]."""

    rule: str
    points: float


@dataclass
class Decision:
    """What one event did to one lead: the trace `leads explain` and the store keep."""

    event_id: str
    lead: str
    at: float
    rules_version: str
    fired: list = field(default_factory=list)  # rule ids (scoring, BANT) that held, in firing order
    added: list = field(default_factory=list)  # Added(rule, points) by event rules, in order
    transitions: list = field(default_factory=list)  # {"from", "to", "at", "reason", "rule"}
    bant: dict = field(default_factory=dict)
    fit: float = 0.0
    engagement: float = 0.0
    score: float = 0.0

    def trace(self) -> dict:
        return {"fired": self.fired, "added": self.added, "transitions": self.transitions, "bant": self.bant,
                "fit": self.fit, "engagement": self.engagement, "score": self.score}


class _Evaluation:
    """Everything one engine call needs; the actions read and write it."""

    def __init__(self, state: LeadState, event: dict, at: float, changed: bool):
        self.state = state
        self.event = event
        self.at = at
        self.changed = changed
        self.matched_attr: list = []
        self.matched_event: list = []
        self.bant: dict = {}
        self.chain = 0
        self.shared = "{}"  # JSON of the fields the input fact and the gate facts share (attributes, counts)
        self.errors: list = []
        self.handle = 0  # the C engine's ruleset
        self.fact_text = ""  # the input fact as the engine got it, to retract it with the same text
        self.decision = Decision(event["id"], state.id, at, "")


class Engine:
    """Evaluates events against compiled rule versions; safe to call from one thread at a time."""

    def __init__(self) -> None:
        self._host = _QuietHost()
        self._loaded: dict[str, Compiled] = {}
        self._handles: dict[str, int] = {}  # ruleset name -> the C engine's handle
        self._actions: dict[str, dict[str, Callable[[_Evaluation], None]]] = {}  # ruleset -> rule -> action
        self._lock = threading.Lock()

    def load(self, compiled: Compiled) -> None:
        """Register a rule version (idempotent: a version is registered once, under its own name)."""
        if compiled.name in self._loaded:
            return
        definition = {name: {**rule, "run": _never} for name, rule in compiled.definition.items()}
        try:
            self._host.register_rulesets({compiled.name: definition})
        except Exception as exc:  # the C extension rejects what it cannot compile
            raise EngineError("ENGINE_LOAD", f"durable_rules rejected the compiled rules: {exc}") from exc
        self._handles[compiled.name] = self._host.get_ruleset(compiled.name)._handle
        self._actions[compiled.name] = {name: self._action(compiled, role) for name, role in compiled.roles.items()}
        self._loaded[compiled.name] = compiled

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, compiled: Compiled, state: LeadState, event: dict, at: float) -> Decision:
        """Apply one validated event to a lead state (mutated in place) and return the decision."""
        self.load(compiled)
        with self._lock:
            return self._evaluate(compiled, state, event, at)

    def _evaluate(self, compiled: Compiled, state: LeadState, event: dict, at: float) -> Decision:
        rules, shape = compiled.rules, compiled.shape
        now = at if state.clock is None else max(at, state.clock)
        first = state.events == 0
        etype = event["type"]
        changed = first or state.rules_version != rules.version
        if etype == "lead_updated":
            merged = merge_attributes(state.attrs, event.get("data") or {})
            changed = changed or _typed(merged) != _typed(state.attrs)  # 1 -> true is a change
            state.attrs = merged
        else:
            note_event(state, etype, at, compiled.tracked, shape.keep_times)
        state.clock = now
        state.events += 1
        state.rules_version = rules.version
        ev = _Evaluation(state, event, at, changed)
        ev.decision.rules_version = rules.version
        fact = {"sid": SID, "id": f"{event['id']}", "k": "i", "t": etype, "u": 1 if changed else 0}
        if changed or state.text_hits is None:  # patterns run again only when their input changed
            state.text_hits = shape.attribute_tests(state.attrs)
            state._attr_json = None
        if state._attr_json is None:  # attribute fields change only with the attributes or the rules
            state._attr_json = engine_json({**shape.attribute_values(state.attrs), **state.text_hits},
                                           ensure_ascii=False)
        if etype != "lead_updated":
            fact.update(shape.data_fields_of(event.get("data") or {}))
        # written once as JSON for the input fact and every gate fact of the chain (the field names of
        # attributes "a..", tests "p..", data "d.." and counts "e.." never meet the facts' own)
        ev.shared = _joined(state._attr_json, engine_json(shape.event_fields(state.counts, state.times, now),
                                                          ensure_ascii=False))
        ev.handle = self._handles[compiled.name]
        ev.fact_text = _joined(engine_json(fact, ensure_ascii=False), ev.shared)
        failure: EngineError | None = None
        try:
            self._run_actions(ev, self._actions[compiled.name], _native.assert_fact(ev.handle, ev.fact_text))
        except EngineError as exc:
            failure = exc
        except Exception as exc:
            failure = _engine_error(exc)
        failure = failure or (ev.errors[0] if ev.errors else None)
        if failure is not None:
            self._clear_session(compiled)
            raise failure
        return ev.decision

    @staticmethod
    def _run_actions(ev: _Evaluation, actions: dict, result: tuple) -> None:
        """Run the actions the engine schedules for one asserted fact, each as soon as it is due.

        This is durable_rules' own action loop (Ruleset.do_actions) without what we never use: the
        session state is never read or written by our actions, so it is neither parsed nor written back
        after each action (about half the engine's cost per event), and only the rule's name is read
        from each scheduled message, since every action works on the evaluation, not on the message.
        """
        code, state_handle = result
        if code == 1:  # no rule reads this fact: the compiled rules always have one, so this is ours
            raise EngineError("ENGINE_UNHANDLED", "the engine did not accept the event fact")
        if code == 2:
            raise EngineError("ENGINE_OBSERVED", "the engine had seen this event fact already")
        handle = ev.handle
        started = _native.start_action_for_state(handle, 0 if code == 3 else state_handle)
        message = started[1] if started else None
        try:
            while message:
                actions[_scanstring(message, 2)[0]](ev)  # '{"rule name":{...}}': the name alone
                message = _native.complete_and_start_action(handle, state_handle)
        except BaseException:
            _native.abandon_action(handle, state_handle)
            raise

    @staticmethod
    def _retract_input(ev: _Evaluation) -> None:
        _handled(_native.retract_fact(ev.handle, ev.fact_text))

    @staticmethod
    def _post(ev: _Evaluation, fact: str) -> None:
        _handled(_native.assert_event(ev.handle, fact))

    def _clear_session(self, compiled: Compiled) -> None:
        """After a failed call, retract whatever the chain left so the next event starts clean."""
        try:
            for fact in self._host.get_facts(compiled.name, SID):
                self._host.retract_fact(compiled.name, fact)
            state = self._host.get_state(compiled.name, SID)
            if state.pop("exception", None) is not None:
                self._host.update_state(compiled.name, {**state, "id": f"sid-{SID}"})
        except Exception:  # the session is best-effort here; the store is the truth
            pass

    def _action(self, compiled: Compiled, role: Role) -> Callable[[_Evaluation], None]:
        handlers = {"score": self._on_score, "bant": self._on_bant, "collect": self._on_collect,
                    "gate": self._on_gate, "gate_end": self._on_gate_end}
        handler = handlers[role.kind]

        def action(ev: _Evaluation) -> None:
            try:
                handler(ev, compiled, role)
            except Exception as exc:  # never let durable_rules swallow it
                ev.errors.append(exc if isinstance(exc, EngineError) else
                                 EngineError("ENGINE_ACTION", f"{role.kind} action '{role.name}' failed: {exc!r}"))

        return action

    @staticmethod
    def _on_score(ev: _Evaluation, compiled: Compiled, role: Role) -> None:
        # durable_rules fires a rule once per matching branch of an `$or`; a rule counts once.
        matched = ev.matched_attr if role.rule.when is not None else ev.matched_event
        if role.rule not in matched:
            matched.append(role.rule)

    @staticmethod
    def _on_bant(ev: _Evaluation, compiled: Compiled, role: Role) -> None:
        ev.bant[role.name] = True

    def _on_collect(self, ev: _Evaluation, compiled: Compiled, role: Role) -> None:
        self._retract_input(ev)
        state, rules, decision = ev.state, compiled.rules, ev.decision
        dq_reason = None
        if ev.changed:
            state.fit_rules = {}
            for rule in ev.matched_attr:
                decision.fired.append(rule.id)
                if rule.disqualify:
                    dq_reason = dq_reason or (rule.disqualify, rule.id)
                else:
                    state.fit_rules[rule.id] = rule.points
        for rule in ev.matched_event:
            if rule.disqualify:
                decision.fired.append(rule.id)
                dq_reason = dq_reason or (rule.disqualify, rule.id)
                continue
            points = may_count(rule, state.tallies.get(rule.id), ev.at)
            if points:
                add_tally(state, rule, points, ev.at, rules.half_life)
                decision.fired.append(rule.id)
                decision.added.append(Added(rule.id, points))
        state.bant = {name: bool(ev.bant.get(name)) for name in state.bant}
        decision.fired += [f"bant.{n}" for n in rules.bant if ev.bant.get(n)]
        compute_scores(state, rules, state.clock)
        decision.bant = dict(state.bant)
        decision.fit, decision.engagement, decision.score = state.fit, state.engagement, state.score
        if dq_reason and state.stage not in ("disqualified", "won", "lost"):
            state.disqualified = dq_reason[0]
            _transition(ev, "disqualified", f"disqualified by rule '{dq_reason[1]}': {dq_reason[0]}", dq_reason[1])
        self._post(ev, self._gate_event(compiled, ev))

    def _gate_event(self, compiled: Compiled, ev: _Evaluation) -> str:
        state = ev.state
        ev.chain += 1
        fact = {"sid": SID, "id": f"{ev.event['id']}#g{ev.chain}", "k": "g", "t": ev.event["type"],
                "stage": state.stage, "score": state.score, "fit": state.fit, "engagement": state.engagement,
                "bantc": sum(1 for v in state.bant.values() if v)}
        for name, value in state.bant.items():
            fact[f"bb_{name}"] = 1 if value else 0
        return _joined(engine_json(fact, ensure_ascii=False), ev.shared)

    def _on_gate(self, ev: _Evaluation, compiled: Compiled, role: Role) -> None:
        state = ev.state
        reason = _reason(role, state, ev)
        if role.to == "disqualified":
            data = ev.event.get("data") or {}
            state.disqualified = str(data.get("reason") or "disqualified")
        _transition(ev, role.to, reason, f"stages.{role.name}" if role.cond is not None else role.name)
        if role.chain and ev.chain < MAX_CHAIN:
            self._post(ev, self._gate_event(compiled, ev))

    @staticmethod
    def _on_gate_end(ev: _Evaluation, compiled: Compiled, role: Role) -> None:
        return None


def _joined(head: str, shared: str) -> str:
    """Two JSON objects as one: `{"a":1}` and `{"b":2}` give `{"a":1,"b":2}` (their keys never overlap)."""
    if shared == "{}":
        return head
    return shared if head == "{}" else f"{head[:-1]},{shared[1:]}"


def _never(c: Any) -> None:
    """What durable_rules is told each rule runs: our own loop (Engine._run_actions) runs the actions."""


def _handled(result: tuple) -> None:
    """durable_rules' result codes for a retract or an assert made inside an action."""
    if result[0] == 1:
        raise EngineError("ENGINE_UNHANDLED", "the engine did not accept a fact of the rule chain")
    if result[0] == 2:
        raise EngineError("ENGINE_OBSERVED", "the engine had seen a fact of the rule chain already")


def _typed(attrs: dict) -> str:
    return json.dumps(attrs, sort_keys=True, default=str)


def _transition(ev: _Evaluation, to: str, reason: str, rule: str) -> None:
    state = ev.state
    if state.stage == to:
        return
    ev.decision.transitions.append({"from": state.stage, "to": to, "at": format_time(state.clock),
                                    "reason": reason, "rule": rule})
    state.stage = to
    state.stage_at = state.clock


def _reason(role: Role, state: LeadState, ev: _Evaluation) -> str:
    facts = f"score {state.score:g}, fit {state.fit:g}, engagement {state.engagement:g}, " \
            f"BANT {sum(state.bant.values())}/4"
    if role.name == "demote":
        return f"score {state.score:g} fell below the demotion threshold"
    if role.cond is not None:
        return f"stages.{role.name}: {describe(role.cond)} ({facts})"
    return f"{ev.event['type']} received" + (f" ({ev.event['data'].get('reason')})"
                                             if isinstance(ev.event.get("data"), dict) and ev.event["data"].get("reason") else "")


def _engine_error(exc: Exception) -> EngineError:
    text = str(exc)
    if "303" in text:
        return EngineError("ENGINE_TOO_MANY_MATCHES", "more than 64 conditions matched one event (a durable_rules "
                           "limit)", "split broad rules or combine thresholds into fewer rules")
    if "302" in text:
        return EngineError("ENGINE_TOO_MANY_FIELDS", "the event has too many fields for the engine (about 250)",
                           "send fewer attributes, or nest them less")
    return EngineError("ENGINE_FAILED", f"durable_rules failed: {text}")
