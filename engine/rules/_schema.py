"""The rule-file format, declared once.

The checker walks rule files with these specs, `rules/schema.json` (for editors) and
`rules/REFERENCE.md` (for marketers) are generated from them, and tests keep both files current, so
the three can never disagree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._calibration import MAX_CALIBRATION_STEPS
from ._webhooks import KINDS as WEBHOOK_KINDS

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$"


@dataclass
class Scalar:
    kind: str  # string | integer | number | boolean | duration | id
    doc: str = ""
    enum: tuple = ()


@dataclass
class Field:
    spec: Any
    doc: str = ""
    required: bool = False


@dataclass
class Obj:
    fields: dict
    doc: str = ""


@dataclass
class ListOf:
    item: Any
    doc: str = ""


@dataclass
class MapOf:
    value: Any
    doc: str = ""


@dataclass
class OneOf:
    options: tuple
    doc: str = ""


@dataclass
class Cond:
    doc: str = "a condition (see Conditions)"


@dataclass
class Anything:
    doc: str = ""


def F(spec: Any, doc: str = "", required: bool = False) -> Field:
    return Field(spec, doc, required)


_REPEAT = OneOf((Scalar("string", enum=("once", "every_time")),
                 Obj({"once_every": F(Scalar("duration"), "at most once in this period", True)})),
                "how often the rule may count: once, every_time (default) or { once_every: DURATION }")

_COMMON = {"id": F(Scalar("id"), "unique name of the rule across the rule set", True),
           "description": F(Scalar("string"), "what the rule means, for people")}

FIT_RULE = Obj({**_COMMON,
                "when": F(Cond(), "condition on the lead's attributes", True),
                "points": F(Scalar("number"), "points while the condition holds (recomputed, never accumulated)", True)})
ENGAGEMENT_RULE = Obj({**_COMMON,
                       "on": F(Scalar("id"), "the event type that triggers the rule", True),
                       "where": F(Cond(), "condition on the event's data"),
                       "points": F(Scalar("number"), "points added each time the rule counts", True),
                       "repeat": F(_REPEAT),
                       "max_points": F(Scalar("number"), "the rule never contributes more than this in total")})
NEGATIVE_RULE = Obj({**_COMMON,
                     "when": F(Cond(), "condition on the lead's attributes (use when or on)"),
                     "on": F(Scalar("id"), "event type (use when or on)"),
                     "where": F(Cond(), "condition on the event's data (with on)"),
                     "points": F(Scalar("number"), "points below zero (use points or disqualify)"),
                     "disqualify": F(Scalar("id"), "reason: the lead goes to stage disqualified (use points or disqualify)"),
                     "repeat": F(_REPEAT),
                     "max_points": F(Scalar("number"), "cap on the total this rule takes away (as a positive number)")})

_CRITERION = Obj({"when": F(Cond(), "when the criterion holds", True), "description": F(Scalar("string"))})

SECTIONS: dict = {
    "leadflow": F(Scalar("integer", enum=(1,)), "format version; always 1", True),
    "events": F(MapOf(Scalar("string"), "event type -> what it means; names used in `event:` tests must be declared here or used by an `on:` rule")),
    "scoring": F(Obj({
        "fit": F(ListOf(FIT_RULE), "points from lead attributes"),
        "engagement": F(ListOf(ENGAGEMENT_RULE), "points from events; they accumulate"),
        "negative": F(ListOf(NEGATIVE_RULE), "negative points and disqualifiers"),
        "caps": F(Obj({"fit": F(Scalar("number")), "engagement": F(Scalar("number")),
                       "total": F(Scalar("number"))}), "each group's sum is clamped to its cap"),
        "decay": F(Obj({"half_life": F(Scalar("duration"), "event points halve after this long", True)}),
                   "event-based points lose value with age"),
    }, "lead scoring")),
    "bant": F(Obj({name: F(_CRITERION) for name in ("budget", "authority", "need", "timeline")},
                  "the four BANT criteria; each holds when its condition holds")),
    "stages": F(Obj({
        "mql": F(Obj({"when": F(Cond(), "gate from new to mql", True),
                      "demote_below": F(Scalar("number"), "an MQL whose score falls below this goes back to new"),
                      "description": F(Scalar("string"))})),
        "sql": F(Obj({"when": F(Cond(), "gate from mql to sql", True), "description": F(Scalar("string"))})),
    }, "stage gates")),
    "reps": F(ListOf(Obj({
        "id": F(Scalar("id"), "", True), "name": F(Scalar("string")),
        "slack": F(Scalar("string"), "Slack user id (U...)"), "email": F(Scalar("string")),
        "weight": F(Scalar("number"), "share of the pool's leads (default 1)"),
        "capacity": F(Scalar("integer"), "open SQLs at most"), "timezone": F(Scalar("string")),
        "hours": F(Scalar("string"), "working hours, e.g. 'mon-fri 09:00-18:00'"),
        "away": F(Scalar("boolean"), "true while the rep takes no leads"),
    })), "the sales reps"),
    "routing": F(ListOf(Obj({"when": F(Cond()), "pool": F(ListOf(Scalar("id")), "rep ids", True),
                             "description": F(Scalar("string"))})), "first matching entry wins"),
    "fallback": F(Obj({"channel": F(Scalar("string"), "", True)}), "where SQLs go when nobody is available"),
    "sla": F(Obj({"accept_within": F(Scalar("duration")), "remind_at": F(Scalar("string")),
                  "on_timeout": F(Scalar("string", enum=("reassign", "escalate", "nothing"))),
                  "escalate_after": F(Scalar("integer")), "escalate_to": F(Scalar("string"))})),
    "feedback": F(Obj({"reject_reasons": F(ListOf(Obj({"id": F(Scalar("id"), "", True),
                                                       "label": F(Scalar("string"), "", True),
                                                       "then": F(Anything())}))),
                       "weights": F(MapOf(Scalar("number")), "how much each label counts for rules tune (0-100): "
                                    "outcome (won/lost, default 1), accept and reject (default 0.5 each), or a "
                                    "reject reason's id (default: reject's)")})),
    "managers": F(ListOf(Scalar("string")), "Slack user ids of managers"),
    "tuning": F(Obj({"channel": F(Scalar("string"), "where rule tuning proposals are posted", True),
                     "every": F(Scalar("duration"), "how often to propose (default 7d)"),
                     "target_precision": F(Scalar("number"), "SQL precision to aim for"),
                     "capacity": F(Scalar("number"), "share of leads the MQL gate should admit (0-1)"),
                     "min_labels": F(Scalar("integer"), "labelled leads needed before proposing (default 50)")}),
                 "scheduled rule tuning proposals in Slack, applied with a button"),
    "digest": F(Obj({"channel": F(Scalar("string"), "where the weekly pipeline digest goes", True),
                     "every": F(Scalar("duration"), "how often (default 7d)")}), "a scheduled stats digest"),
    "webhooks": F(ListOf(Obj({
        "name": F(Scalar("id"), "the subscription's name (deliveries are keyed by it)", True),
        "url_env": F(Scalar("string"), "name of the environment variable holding the URL (never the URL)", True),
        "secret_env": F(Scalar("string"), "name of the environment variable holding the signing secret", True),
        "kinds": F(ListOf(Scalar("string", enum=WEBHOOK_KINDS)), "what to send", True),
        "description": F(Scalar("string"))})),
                  "signed webhooks that tell a CRM (or Zapier, n8n) what leadflow decided; see rules/WEBHOOKS.md"),
    "crm": F(Obj({"record_url": F(Scalar("string"), "the lead's record in the CRM: an http(s) URL with the lead's "
                                  "attributes in braces after the host ({lead} is the lead's id), e.g. "
                                  "https://app.hubspot.com/contacts/123/record/0-1/{lead}; values are "
                                  "URL-encoded, a lead without the attribute gets no link", True)}),
             "the \"Open in CRM\" button on Slack cards and the App Home"),
    "nurture": F(ListOf(Obj({"id": F(Scalar("id"), "", True), "description": F(Scalar("string")),
                             "enroll": F(Cond(), "when a lead joins the track", True),
                             "exit": F(Cond(), "the goal: when a lead leaves the track"),
                             "reenroll": F(Anything(), "never (default) or { once_every: DURATION }"),
                             "steps": F(ListOf(Anything()), "wait, send, if/then/else, set, notify", True)})),
                  "nurture tracks"),
}
TOP = Obj(SECTIONS, "a rule file")

# `calibration.yaml` is not a rule file: it holds no sections, only what `rules tune` measured.
CALIBRATION = Obj({
    "leadflow": F(Scalar("integer", enum=(1,)), "format version; optional here"),
    "calibration": F(Obj({
        "method": F(Scalar("string", enum=("isotonic", "platt")), "how the probabilities were fitted", True),
        "fitted_on": F(Scalar("integer"), "labelled leads the fit used"),
        "positives": F(Scalar("integer"), "of those, leads that bought"),
        "steps": F(ListOf(Obj({"score": F(Scalar("number"), "the lowest score of the step", True),
                               "probability": F(Scalar("number"), "how likely a lead scoring from here to the next "
                                                "step is to buy, 0 to 1", True)})),
                   f"1 to {MAX_CALIBRATION_STEPS} steps, scores ascending, probabilities never decreasing", True),
    }), "probability of buying by score", True),
}, "calibration.yaml")


# ---- JSON Schema ------------------------------------------------------------------------------

_CONDITION_SCHEMA = {
    "type": "object", "minProperties": 1,
    "properties": {
        "all": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
        "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
        "not": {"$ref": "#/$defs/condition"},
    },
    "additionalProperties": {"anyOf": [
        {"type": ["string", "number", "boolean"]},
        {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
            "matches": {"type": "string"}, "contains": {"type": "string"},
            "in": {"type": "array"}, "not_in": {"type": "array"},
            "between": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            "at_least": {"type": "number"}, "at_most": {"type": "number"},
            "exists": {"type": "boolean"}, "equals": {},
            "type": {"type": "string"}, "within": {"type": "string"},
            "budget": {"type": "boolean"}, "authority": {"type": "boolean"},
            "need": {"type": "boolean"}, "timeline": {"type": "boolean"}}},
    ]},
}


def to_json_schema(spec: Any = TOP) -> dict:
    if isinstance(spec, Field):
        out = to_json_schema(spec.spec)
        if spec.doc:
            out = {**out, "description": spec.doc}
        return out
    if isinstance(spec, Scalar):
        base = {"duration": {"type": "string", "pattern": DURATION_PATTERN},
                "id": {"type": "string", "pattern": ID_PATTERN}}.get(spec.kind, {"type": spec.kind})
        if spec.enum:
            base = {**base, "enum": list(spec.enum)}
        return base
    if isinstance(spec, Obj):
        out = {"type": "object", "additionalProperties": False,
               "properties": {k: to_json_schema(f) for k, f in spec.fields.items()}}
        required = [k for k, f in spec.fields.items() if f.required]
        if required:
            out["required"] = required
        return out
    if isinstance(spec, ListOf):
        return {"type": "array", "items": to_json_schema(spec.item)}
    if isinstance(spec, MapOf):
        return {"type": "object", "additionalProperties": to_json_schema(spec.value)}
    if isinstance(spec, OneOf):
        return {"oneOf": [to_json_schema(o) for o in spec.options]}
    if isinstance(spec, Cond):
        return {"$ref": "#/$defs/condition"}
    return {}


def json_schema_document() -> dict:
    schema = to_json_schema(TOP)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://leadflow.example/schema/rules-v1.json",
            "title": "leadflow rule file (format 1)", **schema,
            "$defs": {"condition": _CONDITION_SCHEMA}}


def render_json_schema() -> str:
    return json.dumps(json_schema_document(), indent=2, sort_keys=False) + "\n"


# ---- Markdown reference -----------------------------------------------------------------------

def _type_name(spec: Any) -> str:
    if isinstance(spec, Scalar):
        if spec.enum:
            return " \\| ".join(str(e) for e in spec.enum)  # escaped: a bare | would split the table's cell
        return {"id": "name", "duration": "duration (15m, 4h, 30d, 2w)"}.get(spec.kind, spec.kind)
    if isinstance(spec, Obj):
        return "mapping"
    if isinstance(spec, ListOf):
        return f"list of {_type_name(spec.item)}"
    if isinstance(spec, MapOf):
        return f"mapping of name to {_type_name(spec.value)}"
    if isinstance(spec, OneOf):
        return " or ".join(_type_name(o) for o in spec.options)
    if isinstance(spec, Cond):
        return "condition"
    return "any"


def _rows(spec: Any, prefix: str, out: list) -> None:
    if isinstance(spec, ListOf):
        _rows(spec.item, prefix + "[]", out)
        return
    if not isinstance(spec, Obj):
        return
    for key, fld in spec.fields.items():
        path = f"{prefix}.{key}" if prefix else key
        doc = fld.doc or getattr(fld.spec, "doc", "")
        out.append(f"| `{path}` | {_type_name(fld.spec)} | {'yes' if fld.required else ''} | {doc} |")
        _rows(fld.spec, path, out)


def render_reference() -> str:
    from leadflow.core import MAX_ALIAS_NODES, MAX_ALIASES, MAX_INTEGER, MAX_YAML_DEPTH

    from ._compiler import MAX_FIELDS, MAX_OPERATIONS, MAX_TESTS
    from ._conditions import MAX_PATTERN_LENGTH, MAX_PROGRAM_SIZE, OPERATORS, PATTERN_TEXT_LIMIT

    lines = ["# Rule file reference (format 1)", "",
             "Generated from `engine/rules/_schema.py` by `leadflow rules schema --reference`; do not edit by hand.",
             "", "| key | type | required | meaning |", "| --- | --- | --- | --- |"]
    _rows(TOP, "", lines)
    lines += ["", "## Conditions", "",
              "A condition is a mapping of field to test; all entries must hold. Combinators: `all: [...]`,",
              "`any: [...]`, `not: {...}`. A plain value means equality. A test on a missing field is false",
              "(except `exists: false`). Dotted paths (`company.size`) read nested attributes.", "",
              "Tests: " + ", ".join(f"`{op}`" for op in OPERATORS) + ".", "",
              "In stage gates, `score`, `fit`, `engagement`, `stage`, `bant` (`{ at_least: 3 }` or",
              "`{ budget: true }`) and `event` (`demo_requested` or `{ type, within, at_least }`) are also",
              "available; BANT criteria may use `event` too.", "",
              "`matches` is a regular-expression search with RE2 (the syntax of Python's `re` without",
              "backreferences, lookaround or atomic groups; `\\d`, `\\w` and `\\b` are ASCII), in time linear in",
              f"the text, on the first {PATTERN_TEXT_LIMIT:,} characters of a text value. `rules check` rejects a pattern",
              f"RE2 cannot run, longer than {MAX_PATTERN_LENGTH:,} characters or compiling to more than "
              f"{MAX_PROGRAM_SIZE:,} RE2 instructions",
              "(`UNSAFE_REGEX`), and `{,n}`, which Python reads as `{0,n}` and RE2 as text (`BAD_REGEX`).",
              "`contains` is a case-insensitive substring test.", "",
              "## Limits", "",
              f"- A condition compiles to at most {MAX_OPERATIONS} and/or operations (`CONDITION_TOO_COMPLEX`): the",
              "  engine's limit per rule. `in: [...]` counts as one. It holds at most",
              f"  {MAX_TESTS} field tests (each value of a short `in` list is one; the engine fails an event",
              "  that more than 64 tests match).",
              f"- The rules need at most {MAX_FIELDS} fields on each event (`TOO_MANY_FIELDS`): two per field",
              "  tested, one per `matches`, `contains` or `in`/`not_in` test of more than 8 values (these run",
              "  in Python), one per `event` test.",
              f"- A file may use at most {MAX_ALIASES} YAML aliases (`*name`), which together may add at most",
              f"  {MAX_ALIAS_NODES:,} nodes (`YAML_ALIAS_LIMIT`); an anchor cannot be used inside itself",
              f"  (`YAML_RECURSIVE_ALIAS`); mappings and lists nest at most {MAX_YAML_DEPTH} deep (`YAML_TOO_DEEP`);",
              "  explicit tags (`!!python/...`, `!!binary`) are not read (`YAML_TAG`); text cannot hold lone",
              "  surrogates (`BAD_TEXT`); numbers are finite, and integers at most",
              f"  {MAX_INTEGER:,} (2**53) either way (`NUMBER_TOO_LARGE`).", "",
              "## Warnings", "",
              "`rules check` prints warnings (`FILE:LINE:COL: warning: CODE: message`; `\"severity\": \"warning\"`",
              "with `--json`) for rules that load but probably do not do what was meant; they keep exit code 0",
              "and are judged once there are no errors.", "",
              "- `NO_FALLBACK`: an SQL could end up with neither a rep nor a channel (a `routing` section",
              "  without `fallback`, or SQL gates with neither).",
              "- `UNKNOWN_ON_EVENT`: an `on:` event type that is not declared under `events:` and that",
              "  leadflow does not produce, with the closest known type. A rule set without `events:` is",
              "  warned only about a type written once that looks like a misspelling of another.", "",
              "## calibration.yaml: how likely a lead is to buy", "",
              "A rule directory may hold `calibration.yaml` beside the rule files (`leadflow rules tune` writes it",
              "from cross-validated outcomes). It is not a rule file: it needs no `leadflow: 1` and holds only",
              "`calibration`. It counts in the rules version, is checked by `rules check` like the rule files, and",
              "gives `leads show`, `leads list` and the Slack card a \"likely to buy: 72%\" next to the score",
              "(`\"likely_to_buy\": 0.72` with `--json`; null without a calibration). Each step says: a lead",
              "scoring at least `score` buys with this `probability`; a score below the first step gets the",
              "first step's probability.", "",
              "```yaml", "calibration:", "  method: isotonic", "  fitted_on: 6424", "  positives: 2461", "  steps:",
              "    - {score: -20, probability: 0.03}", "    - {score: 10, probability: 0.21}",
              "    - {score: 35, probability: 0.72}", "```", "",
              "| key | type | required | meaning |", "| --- | --- | --- | --- |"]
    _rows(CALIBRATION, "", lines)
    lines += ["", "Problems: `NO_STEPS`, `TOO_MANY_STEPS`, `BAD_PROBABILITY` (outside 0 to 1),",
              "`SCORES_NOT_ASCENDING` (each score above the one before), `PROBABILITY_DECREASES`, and",
              "`BAD_VALUE` for a negative count or more `positives` than `fitted_on`.", ""]
    return "\n".join(lines)
