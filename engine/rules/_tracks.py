"""Nurture tracks (the `nurture:` section of the rules): parsing a track's steps into a small program,
and rendering its message templates.

A track's steps become a flat list of instructions with jumps (`if` jumps to its `else` block, the
end of a `then` block jumps past the `else`), so an enrolment is just a program counter and a due
time in SQLite: the scheduler can stop anywhere and resume at the same instruction.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from leadflow.core import Problem, did_you_mean, parse_duration

from ._conditions import ConditionParser, EventCount, walk

STEP_KINDS = ("wait", "send", "if", "set", "notify")
CHANNELS = ("email", "webhook", "slack_owner")
_BUSINESS = re.compile(r"^\s*(\d+)\s+business\s+days?\s*$")


@dataclass
class Instr:
    op: str  # wait | wait_until | send | set | notify | if | jump | end
    arg: Any = None
    target: int | None = None  # for if (else start) and jump
    at_most: float | None = None  # for wait_until
    business: bool = False  # for wait: count business days


@dataclass
class Track:
    id: str
    enroll: Any
    exit: Any
    reenroll: float | None  # seconds between enrolments; None = never again
    program: list = field(default_factory=list)
    event_types: set = field(default_factory=set)  # event types its conditions count


def parse_tracks(items: Any, where: Callable, problems: list, template_dir: str) -> list[Track]:
    tracks = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        path = ("nurture", i)
        parser = ConditionParser("stage", problems, where)
        enroll = parser.parse(item.get("enroll"), path + ("enroll",)) if "enroll" in item else None
        exit_ = parser.parse(item["exit"], path + ("exit",)) if "exit" in item else None
        reenroll = None
        policy = item.get("reenroll", "never")
        if isinstance(policy, dict) and "once_every" in policy:
            try:
                reenroll = parse_duration(policy["once_every"])
            except ValueError as exc:
                problems.append(Problem("BAD_DURATION", str(exc), where(path + ("reenroll", "once_every"), False)))
        elif policy != "never":
            problems.append(Problem("BAD_VALUE", "reenroll is 'never' or { once_every: DURATION }",
                                    where(path + ("reenroll",), False)))
        track = Track(item["id"], enroll, exit_, reenroll)
        _compile(item.get("steps") or [], path + ("steps",), track, parser, where, problems, template_dir)
        track.program.append(Instr("end"))
        track.event_types = {n.type for c in (enroll, exit_) for n in walk(c) if isinstance(n, EventCount)}
        track.event_types |= {n.type for ins in track.program if ins.op == "if"
                              for n in walk(ins.arg) if isinstance(n, EventCount)}
        tracks.append(track)
    return tracks


def _compile(steps: Any, path: tuple, track: Track, parser: ConditionParser, where: Callable, problems: list,
             template_dir: str) -> None:
    if not isinstance(steps, list):
        problems.append(Problem("WRONG_TYPE", "steps must be a list", where(path, False)))
        return
    for j, step in enumerate(steps):
        p = path + (j,)
        kinds = [k for k in step if k in STEP_KINDS] if isinstance(step, dict) else []
        extra = [k for k in step if k not in STEP_KINDS + ("then", "else")] if isinstance(step, dict) else []
        if len(kinds) != 1 or extra:
            bad = extra[0] if extra else None
            problems.append(Problem("BAD_STEP", f"unknown step key '{bad}'" if bad else
                                    "a step is one of: wait, send, if (with then/else), set, notify",
                                    where(p + ((bad,) if bad else ()), bool(bad)),
                                    did_you_mean(bad, STEP_KINDS) if bad else ""))
            continue
        kind = kinds[0]
        value = step[kind]
        if kind == "wait":
            track.program.append(_wait(value, p + ("wait",), where, problems))
        elif kind in ("send", "notify"):
            _send(kind, value, p + (kind,), track, where, problems, template_dir)
        elif kind == "set":
            if not isinstance(value, dict) or not value:
                problems.append(Problem("WRONG_TYPE", "set takes a mapping of attributes to values", where(p, False)))
            track.program.append(Instr("set", value))
        else:
            cond = parser.parse(value, p + ("if",))
            branch = Instr("if", cond)
            track.program.append(branch)
            _compile(step.get("then") or [], p + ("then",), track, parser, where, problems, template_dir)
            jump = Instr("jump")
            track.program.append(jump)
            branch.target = len(track.program)
            _compile(step.get("else") or [], p + ("else",), track, parser, where, problems, template_dir)
            jump.target = len(track.program)


def _wait(value: Any, path: tuple, where: Callable, problems: list) -> Instr:
    if isinstance(value, dict):
        until, most = value.get("until"), value.get("at_most")
        try:
            seconds = parse_duration(most)
        except ValueError as exc:
            problems.append(Problem("BAD_DURATION", f"at_most: {exc}", where(path + ("at_most",), False)))
            seconds = 0.0
        if not isinstance(until, str):
            problems.append(Problem("WRONG_TYPE", "wait until takes an event type", where(path + ("until",), False)))
        return Instr("wait_until", until, at_most=seconds)
    m = _BUSINESS.match(value) if isinstance(value, str) else None
    if m:
        return Instr("wait", int(m.group(1)) * 86400.0, business=True)
    try:
        return Instr("wait", parse_duration(value))
    except ValueError as exc:
        problems.append(Problem("BAD_DURATION", f"{exc}, or 'N business days'", where(path, False)))
        return Instr("wait", 0.0)


def _send(kind: str, value: Any, path: tuple, track: Track, where: Callable, problems: list,
          template_dir: str) -> None:
    if not isinstance(value, dict):
        problems.append(Problem("WRONG_TYPE", f"{kind} takes a mapping", where(path, False)))
        return
    channel = value.get("channel", "slack_owner" if kind == "notify" else None)
    if channel not in CHANNELS:
        problems.append(Problem("UNKNOWN_CHANNEL", f"unknown channel '{channel}'", where(path + ("channel",), False),
                                did_you_mean(str(channel), CHANNELS) or f"channels: {', '.join(CHANNELS)}"))
        return
    template = value.get("template")
    if template is not None and not template_name_ok(template):
        problems.append(Problem("BAD_TEMPLATE_NAME", f"'{template}' is not a template name",
                                where(path + ("template",), False),
                                "name a file in the rule directory's templates/ folder, without '/', '\\' or '..'"))
    elif template is not None and find_template(template_dir, template) is None:
        problems.append(Problem("UNKNOWN_TEMPLATE", f"no template '{template}' in {template_dir}",
                                where(path + ("template",), False), "add templates/NAME.md (first line 'Subject: ...')"))
    if template is None and not value.get("text"):
        problems.append(Problem("MISSING_KEY", f"{kind} needs a template or a text", where(path, False)))
    track.program.append(Instr("send", {"channel": channel, **{k: v for k, v in value.items() if k != "channel"}}))


def template_name_ok(name: Any) -> bool:
    """A bare file name: a rule file may only send the rule directory's own templates."""
    return (isinstance(name, str) and bool(name.strip()) and "/" not in name and "\\" not in name
            and ".." not in name and "\0" not in name and not os.path.isabs(name))


def find_template(template_dir: str, name: str) -> str | None:
    """The template file `name`.md or `name`.txt, only inside `template_dir` (a link pointing out of
    it, or a name with a path in it, is not found)."""
    if not template_name_ok(name):
        return None
    root = os.path.realpath(template_dir)
    for ext in (".md", ".txt"):
        path = os.path.join(template_dir, name + ext)
        real = os.path.realpath(path)
        if os.path.isfile(real) and os.path.dirname(real) == root:
            return path
    return None


class MissingFields(ValueError):
    """Placeholders with no value and no default: the message would go out with blanks."""

    def __init__(self, names: list[str]):
        self.names = names
        first = names[0]
        super().__init__("no value for " + ", ".join("{" + n + "}" for n in names) +
                         f" (set the attribute, or declare a default: {{{first}|...}})")


def render(message: dict, template_dir: str, fields: dict) -> tuple[str, str]:
    """(subject, text) of a send step, with {field} placeholders filled from the lead.

    `{field}`, `{field:format}` (Python's format spec; a value it does not fit is written plainly),
    `{field|default}` and `{field:format|default}`; `{{` and `}}` are literal braces. A field that is
    missing, empty or not a plain value takes its default; without one, MissingFields is raised and
    nothing is sent, because a sentence with a hole in it is worse than no message.
    """
    subject, text = message.get("subject", ""), message.get("text", "")
    if message.get("template"):
        path = find_template(template_dir, message["template"])
        with open(path, encoding="utf-8") as fh:
            body = fh.read()
        first, _, rest = body.partition("\n")
        if first.lower().startswith("subject:"):
            subject, text = first[8:].strip(), rest.lstrip("\n")
        else:
            text = body
    missing: list[str] = []
    subject, text = fill(str(subject or ""), fields, missing), fill(str(text or ""), fields, missing)
    if missing:
        raise MissingFields(list(dict.fromkeys(missing)))
    return subject, text


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}:!|]+)(?:!([rsa]))?(?::([^{}|]*))?(?:\|([^{}]*))?\}")


def fill(text: str, fields: dict, missing: list) -> str:
    """Fill the placeholders of `text`; names with no value and no default are appended to `missing`."""

    def one(m: re.Match) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name, conversion, spec, default = m.group(1).strip(), m.group(2), m.group(3), m.group(4)
        value = fields.get(name)
        if value is None or isinstance(value, (dict, list)) or (isinstance(value, str) and not value.strip()):
            if default is None:
                missing.append(name)
            return default or ""
        if conversion == "r":
            value = repr(value)
        if spec:
            try:
                return format(value, spec)
            except (ValueError, TypeError):
                return str(value)
        return str(value)

    return _PLACEHOLDER.sub(one, text)
