"""`leadflow rules check`: every problem code, pointed at the right line and column.

Each case writes a small rule directory containing one mistake, runs the real CLI in a subprocess and
checks the `FILE:LINE:COL: CODE:` header, the quoted source line, the caret under the offending key or
value and the hint. Expected positions are written out by hand on purpose: the checker must point at
the right place, not merely at some place. As a guard against typos in the hand-computed positions,
every case also names the token that must start at that column.

Cases named BUG-* are regressions: each once pointed at the wrong place or reported noise.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import jsonschema
import pytest

from leadflow.core import load_file
from leadflow.core._yamlfile import load_text
from leadflow.rules import render_json_schema, render_reference
from tests.leadflow_cli import leadflow
from tests.rule_samples import BILLION_LAUGHS

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "rules"
HEADER = re.compile(r"^(?P<file>\S.*?):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z_]+): ")


def y(text: str) -> str:
    """A YAML snippet written indented in this file, as it sits in the rule file."""
    return textwrap.dedent(text).lstrip("\n")


def check(*args: str) -> subprocess.CompletedProcess:
    return leadflow("rules", "check", *args, timeout=60)


def write_rules(directory: Path, files: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (directory / name).write_bytes(content)
        else:
            (directory / name).write_text(content, encoding="utf-8")
    return directory


def headers(stderr: str) -> list[tuple]:
    """(file, line, column, code) of every problem header printed, in order."""
    found = []
    for text in stderr.splitlines():
        m = HEADER.match(text)
        if m:
            found.append((m["file"], int(m["line"]), int(m["col"]), m["code"]))
    return found


def assert_reported(stderr: str, path: str, line: int, col: int, code: str, source: str, hint: str | None,
                    severity: str = "") -> None:
    """The header, then the source line, the caret under column `col`, and the hint (or none)."""
    lines = stderr.splitlines()
    prefix = f"{path}:{line}:{col}: {severity + ': ' if severity else ''}{code}: "
    at = [i for i, text in enumerate(lines) if text.startswith(prefix)]
    assert at, f"expected a line starting with {prefix!r} in:\n{stderr}"
    i = at[0]
    from leadflow.core import excerpt  # a long line shows a window around the column, escaped

    shown, caret = excerpt(source, col)
    assert lines[i + 1] == "    " + shown, stderr
    assert lines[i + 2] == "    " + " " * caret + "^", stderr
    following = lines[i + 3] if i + 3 < len(lines) else ""
    if hint is None:
        assert not following.startswith("  hint:"), stderr
    else:
        assert following == f"  hint: {hint}", stderr


def problem_count_line(n: int) -> str:
    return f"{n} problem{'s' if n != 1 else ''} found"


# ---- one mistake per case -------------------------------------------------------------------------

RULES = "rules.yaml"
TEMPLATE_HINT = "name a file in the rule directory's templates/ folder, without '/', '\\' or '..'"
ALIAS_HINT = "write the values out, or reuse fewer and smaller anchors"
UNSAFE_HINT = "RE2 does not support `{}`; rewrite the pattern without it or split the test into several conditions"

def case(case_id: str, files, line: int, col: int, code: str, token: str, hint: str | None = None,
         count: int = 1, file: str = RULES, message: str = "", marks=()):
    if isinstance(files, (str, bytes)):
        files = {RULES: files}
    return pytest.param(files, file, line, col, code, token, hint, count, message, id=case_id, marks=marks)


CASES = [
    case("YAML_SYNTAX", y("""
        leadflow: 1
        events:
          page_view: a page
         bad: x
        """), 4, 2, "YAML_SYNTAX", "bad", message="expected <block end>"),
    case("YAML_SYNTAX-flow", y("""
        leadflow: 1
        events:
          page_view: [unclosed
          other: x
        """), 4, 8, "YAML_SYNTAX", ": x", message="expected ',' or ']'"),
    case("DUPLICATE_KEY", y("""
        leadflow: 1
        events:
          page_view: a page view
          demo: a demo
          page_view: again
        """), 5, 3, "DUPLICATE_KEY", "page_view: again",
         "remove one of them; YAML would silently keep only the last", message="key 'page_view' appears twice"),
    case("MISSING_VERSION", y("""
        # scoring rules
        events:
          page_view: a page view
        """), 2, 1, "MISSING_VERSION", "events", "add 'leadflow: 1' as the first line"),
    case("MISSING_VERSION-empty", "# nothing here yet\n", 1, 1, "MISSING_VERSION", "#",
         "start it with 'leadflow: 1'", message="the file is empty"),
    case("BAD_VERSION", "leadflow: 2\n", 1, 11, "BAD_VERSION", "2", "allowed: 1"),
    case("UNKNOWN_KEY-did-you-mean", y("""
        leadflow: 1
        scoring:
          fit:
            - id: big
              when: { employees: { at_least: 100 } }
              pionts: 10
        """), 6, 7, "UNKNOWN_KEY", "pionts", "did you mean 'points'?", count=2,  # + MISSING_KEY points
         message="unknown key 'pionts'"),
    case("UNKNOWN_KEY-section", y("""
        leadflow: 1
        # routing
        fallback: { channel: "#sales" }
        routng: []
        """), 4, 1, "UNKNOWN_KEY", "routng", "did you mean 'routing'?"),
    case("UNKNOWN_KEY-allowed-keys", y("""
        leadflow: 1
        scoring:
          decay: { half_life: 30d, zzz: 1 }
        """), 3, 28, "UNKNOWN_KEY", "zzz", "allowed keys: half_life"),
    case("MISSING_KEY", y("""
        leadflow: 1
        scoring:
          decay: {}
        """), 3, 10, "MISSING_KEY", "{}", message="missing required key 'half_life'"),
    case("MISSING_KEY-list-item", y("""
        leadflow: 1
        reps:
          - id: alice
          - name: Bob
            slack: U0BOB0001
        """), 4, 5, "MISSING_KEY", "name: Bob", message="missing required key 'id'"),
    case("WRONG_TYPE-number", y("""
        leadflow: 1
        scoring:
          fit:
            - id: big
              when: { employees: { at_least: 100 } }
              points: "10"
        """), 6, 15, "WRONG_TYPE", '"10"', message="expected a number, got the text '10'"),
    case("WRONG_TYPE-string", y("""
        leadflow: 1
        reps:
          - id: alice
            name: 42
        """), 4, 11, "WRONG_TYPE", "42", "quote text that looks like a number or boolean"),
    case("WRONG_TYPE-list", y("""
        leadflow: 1
        managers: U0MGR0001
        """), 2, 11, "WRONG_TYPE", "U0MGR0001", "start each item with '- '"),
    case("WRONG_TYPE-condition-list", y("""
        leadflow: 1
        scoring:
          fit:
            - id: north_america
              when: { country: [US, CA] }
              points: 10
        """), 5, 24, "WRONG_TYPE", "[US, CA]", "to test membership write { in: [...] }"),
    case("BAD_NAME", y("""
        leadflow: 1
        reps:
          - id: 1st-rep
        """), 3, 9, "BAD_NAME", "1st-rep", "use letters, digits, _ . - and start with a letter"),
    case("BAD_DURATION", y("""
        leadflow: 1
        scoring:
          decay:
            half_life: 30 days
        """), 4, 16, "BAD_DURATION", "30 days", message="'30 days' is not a duration"),
    case("BAD_DURATION-event-within", y("""
        leadflow: 1
        events:
          pricing_inquiry: asked about pricing
        stages:
          sql:
            when: { event: { type: pricing_inquiry, within: two weeks } }
        """), 6, 53, "BAD_DURATION", "two weeks"),
    case("BAD_VALUE", y("""
        leadflow: 1
        sla:
          accept_within: 4h
          on_timeout: reasign
        """), 4, 15, "BAD_VALUE", "reasign",
         "did you mean 'reassign'? allowed: reassign, escalate, nothing"),
    case("BAD_VALUE-max_points-0", y("""
        leadflow: 1
        scoring:
          engagement:
            - id: docs
              on: page_view
              points: 3
              max_points: 0
        """), 7, 19, "BAD_VALUE", "0", message="max_points of 0"),
    case("SECTION_TWICE", {
        "a.yaml": y("""
            leadflow: 1
            events:
              page_view: a page view
            """),
        "b.yaml": y("""
            leadflow: 1
            # more events
            events:
              demo: a demo
            """)},
         3, 1, "SECTION_TWICE", "events", "a section may appear in one file only; merge the two", file="b.yaml",
         message="section 'events' is already defined in {dir}/a.yaml:2:1"),
    case("DUPLICATE_ID-rule", y("""
        leadflow: 1
        scoring:
          fit:
            - id: big
              when: { employees: { at_least: 100 } }
              points: 10
          engagement:
            - id: big
              on: page_view
              points: 1
        """), 8, 11, "DUPLICATE_ID", "big", "rule ids are unique across the rule set",
         message="rule id 'big' is already used at {dir}/rules.yaml:4:11"),
    case("DUPLICATE_ID-rep", y("""
        leadflow: 1
        reps:
          - id: alice
          - { id: alice, name: Alice Two }
        """), 4, 11, "DUPLICATE_ID", "alice, name", message="rep id 'alice' appears twice"),
    case("WHEN_OR_ON", y("""
        leadflow: 1
        scoring:
          negative:
            - id: spam
              points: -5
        """), 4, 11, "WHEN_OR_ON", "spam", "use 'when' for who the lead is, 'on' for what the lead did"),
    case("POINTS_OR_DISQUALIFY", y("""
        leadflow: 1
        scoring:
          negative:
            - id: spam
              when: { spam: true }
        """), 4, 11, "POINTS_OR_DISQUALIFY", "spam",
         "points lower the score; disqualify ends the lead with a reason"),
    case("NEGATIVE_POINTS", y("""
        leadflow: 1
        scoring:
          negative:
            - id: spam
              when: { spam: true }
              points: 10
        """), 6, 15, "NEGATIVE_POINTS", "10", "write points: -10"),
    case("EVENT_ONLY_KEY", y("""
        leadflow: 1
        scoring:
          negative:
            - id: spam
              when: { spam: true }
              points: -10
              repeat: once
        """), 7, 7, "EVENT_ONLY_KEY", "repeat", "attribute rules are recomputed, they never accumulate"),
    case("RESERVED_EVENT", y("""
        leadflow: 1
        scoring:
          engagement:
            - id: touched
              on: lead_updated
              points: 1
        """), 5, 11, "RESERVED_EVENT", "lead_updated", "score attributes with a 'when' rule instead"),
    case("WHERE_NEEDS_ON", y("""
        leadflow: 1
        scoring:
          negative:
            - id: careers
              where: { url: { contains: /careers } }
              points: -10
        """), 5, 7, "WHERE_NEEDS_ON", "where", count=2),  # + WHEN_OR_ON
    case("UNKNOWN_EVENT", y("""
        leadflow: 1
        events:
          demo_requested: the lead asked for a demo
        stages:
          mql:
            when: { score: { at_least: 50 } }
          sql:
            when: { event: demo_requsted }
        """), 8, 20, "UNKNOWN_EVENT", "demo_requsted", "did you mean 'demo_requested'?"),
    case("UNKNOWN_STAGE", y("""
        leadflow: 1
        stages:
          sql:
            when: { stage: mgl }
        """), 4, 20, "UNKNOWN_STAGE", "mgl", "did you mean 'mql'?"),
    case("UNKNOWN_BANT", y("""
        leadflow: 1
        stages:
          sql:
            when: { bant: { budgett: true } }
        """), 4, 21, "UNKNOWN_BANT", "budgett", "did you mean 'budget'?"),
    case("UNKNOWN_OPERATOR", y("""
        leadflow: 1
        scoring:
          fit:
            - id: big
              when: { employees: { at_leest: 100 } }
              points: 10
        """), 5, 28, "UNKNOWN_OPERATOR", "at_leest", "did you mean 'at_least'?"),
    case("BAD_REGEX", y("""
        leadflow: 1
        scoring:
          fit:
            - id: senior
              when: { title: { matches: "(vp|director" } }
              points: 10
        """), 5, 33, "BAD_REGEX", '"(vp|director"',
         "patterns use RE2 syntax (Python's re without backreferences or lookaround); "
         "escape special characters with \\\\",
         message="invalid regular expression: missing ), unterminated subpattern at position 0"),
    case("UNSAFE_REGEX-backreference", y("""
        leadflow: 1
        scoring:
          fit:
            - id: doubled
              when: { name: { matches: '(\\w+) \\1' } }
              points: 10
        """), 5, 32, "UNSAFE_REGEX", "'(\\w+) \\1'", UNSAFE_HINT.format("\\1"),
         message="RE2, the linear-time pattern engine, refuses this pattern: invalid escape sequence: \\1"),
    case("UNSAFE_REGEX-lookahead", y("""
        leadflow: 1
        events: { page_view: a page view }
        scoring:
          engagement:
            - id: not_careers
              on: page_view
              where: { url: { matches: "^/(?!careers)" } }
              points: 1
        """), 7, 32, "UNSAFE_REGEX", '"^/(?!careers)"', UNSAFE_HINT.format("(?!"),
         message="refuses this pattern: invalid perl operator: (?!"),
    case("UNSAFE_REGEX-end-of-text", y("""
        leadflow: 1
        scoring:
          fit:
            - id: ends
              when: { name: { matches: 'x\\Z' } }
              points: 1
        """), 5, 32, "UNSAFE_REGEX", "'x\\Z'", "RE2 does not support `\\Z`; write `\\z` for the end of the text"),
    # Python's re reads `a{,3}` as a{0,3}, RE2 as the text "a{,3}"
    case("BAD_REGEX-open-minimum", y("""
        leadflow: 1
        scoring:
          fit:
            - id: few
              when: { name: { matches: 'a{,3}b' } }
              points: 1
        """), 5, 32, "BAD_REGEX", "'a{,3}b'", "write `{0,3}` for the repetition, or `\\{,3}` for the text",
         message='`{{,3}}` is a repetition in Python\'s re but the literal text "{{,3}}" in RE2'),
    # RE2 is linear in the text times its program: this one took 21 ms per 4 KB match, 100 of it 11 s
    case("UNSAFE_REGEX-program-size", y("""
        leadflow: 1
        scoring:
          fit:
            - id: slow
              when: { notes: { matches: "a{0,1000}c" } }
              points: 1
        """), 5, 33, "UNSAFE_REGEX", '"a{0,1000}c"',
         "bound repetitions tightly (`{0,20}`, not `{0,1000}`) and nest them less, or split the test into "
         "several conditions", message="the pattern compiles to 2,005 RE2 instructions; at most 1,000"),
    case("UNSAFE_REGEX-length", "leadflow: 1\nscoring:\n  fit:\n    - id: long\n      when: { notes: { matches: \""
         + "\\\n        ".join(["ab" * 20] * 25) + "ab\" } }\n      points: 1\n", 5, 33, "UNSAFE_REGEX",
         '"' + "ab" * 20 + "\\",
         "split the test into several conditions", message="the pattern is 1,002 characters long; at most 1,000"),
    case("CONDITION_TYPE", y("""
        leadflow: 1
        scoring:
          fit:
            - id: anyone
              when: {}
              points: 1
        """), 5, 13, "CONDITION_TYPE", "{}", "for example: { country: { in: [US, CA] } }"),
    case("CONDITION_TYPE-empty-all", y("""
        leadflow: 1
        bant:
          need:
            when:
              all: []
        """), 5, 12, "CONDITION_TYPE", "[]", message="'all' takes a non-empty list of conditions"),
    case("FIELD_NOT_ALLOWED", y("""
        leadflow: 1
        scoring:
          fit:
            - id: hot
              when: { score: { at_least: 50 } }
              points: 5
        """), 5, 15, "FIELD_NOT_ALLOWED", "score",
         "score, fit, engagement, bant and stage are only available in stage gates (stages:)"),
    case("UNKNOWN_REP", y("""
        leadflow: 1
        reps:
          - id: alice
          - id: bob
        routing:
          - pool: [alice, bbo]
        """), 6, 19, "UNKNOWN_REP", "bbo", "did you mean 'bob'?"),
    case("BAD_TEMPLATE_NAME", y("""
        leadflow: 1
        nurture:
          - id: leak
            enroll: { stage: mql }
            steps:
              - send: { channel: email, template: /tmp/x/secret }
        """), 6, 43, "BAD_TEMPLATE_NAME", "/tmp/x/secret", TEMPLATE_HINT),
    case("BAD_TEMPLATE_NAME-dotdot", y("""
        leadflow: 1
        nurture:
          - id: leak
            enroll: { stage: mql }
            steps:
              - send: { channel: email, template: "../../etc/motd" }
        """), 6, 43, "BAD_TEMPLATE_NAME", '"../', TEMPLATE_HINT),
    case("BAD_TIMEZONE", y("""
        leadflow: 1
        reps:
          - { id: alice, timezone: Mars/Olympus, hours: "mon-fri 09:00-18:00" }
        """), 3, 28, "BAD_TIMEZONE", "Mars/Olympus"),
    case("BAD_HOURS", y("""
        leadflow: 1
        reps:
          - id: alice
            timezone: Europe/London
            hours: "mon-fry 09:00-18:00"
        """), 5, 12, "BAD_HOURS", '"mon-fry'),
    # Codes outside the brief's list that the checker can emit as well.
    case("FILE_ENCODING", b"leadflow: 1\nevents:\n  caf\xe9: latin-1, not UTF-8\n", 1, 1, "FILE_ENCODING",
         "leadflow"),
    case("TOO_MANY_FIELDS", "leadflow: 1\nscoring:\n  fit:\n" + "".join(
         f"    - id: wide{j}\n      when: {{" + ", ".join(f"f{i}: 1" for i in range(j * 34, min(101, j * 34 + 34)))
         + "}\n      points: 1\n" for j in range(3)),
         1, 1, "TOO_MANY_FIELDS", "leadflow", "test fewer distinct fields, or merge patterns on one field into one",
         message="the rules need 202 fields on each event"),
    # every substring test is a field of its own on the event (300 of them once passed, then every event failed)
    case("TOO_MANY_FIELDS-substring-tests", "leadflow: 1\nscoring:\n  fit:\n" + "".join(
         f"    - {{ id: k{i}, when: {{ title: {{ contains: kw{i} }} }}, points: 1 }}\n" for i in range(201)),
         1, 1, "TOO_MANY_FIELDS", "leadflow", "test fewer distinct fields, or merge patterns on one field into one",
         message="the rules need 201 fields on each event"),

    # ---- engine bugs: correct expectations, failing today ----------------------------------------
    case("BUG-UNKNOWN_EVENT-mapping-form", y("""
        leadflow: 1
        events:
          demo_requested: the lead asked for a demo
        stages:
          sql:
            when:
              event:
                within: 14d
                type: demo_requsted
        """), 9, 15, "UNKNOWN_EVENT", "demo_requsted", "did you mean 'demo_requested'?"),
    case("BUG-UNKNOWN_STAGE-in-list", y("""
        leadflow: 1
        stages:
          sql:
            when: { stage: { in: [new, mgl] } }
        """), 4, 32, "UNKNOWN_STAGE", "mgl", "did you mean 'mql'?"),
    case("BUG-pool-not-a-list", y("""
        leadflow: 1
        reps:
          - id: bob
        routing:
          - pool: alice
        """), 5, 11, "WRONG_TYPE", "alice", "start each item with '- '"),

    # ---- hostile rule files: refused before anything is expanded or recursed ----------------------
    case("YAML_ALIAS_LIMIT-uses", "leadflow: 1\nmanagers: &m [U0MGR0001]\nrouting: [" + "*m, " * 100 + "*m]\n",
         3, 411, "YAML_ALIAS_LIMIT", "*m]", ALIAS_HINT, message="more than 100 aliases in one file"),
    case("YAML_ALIAS_LIMIT-billion-laughs", BILLION_LAUGHS, 6, 8, "YAML_ALIAS_LIMIT", "*d, *d", ALIAS_HINT,
         message="aliases expand this file by more than 10,000 nodes"),
    case("YAML_RECURSIVE_ALIAS", y("""
        leadflow: 1
        scoring: &s
          fit: [*s]
        """), 3, 9, "YAML_RECURSIVE_ALIAS", "*s", "an anchor cannot be used inside itself"),
    # huge integers once crashed the check: Python's 4,300-digit limit, float overflow, message formatting
    case("NUMBER_TOO_LARGE-decimal", "leadflow: 1\nscoring:\n  fit:\n    - id: big\n      when: { a: 1 }\n"
         "      points: 1" + "0" * 5000 + "\n", 6, 15, "NUMBER_TOO_LARGE", "1000",
         "write a number between -9,007,199,254,740,992 and 9,007,199,254,740,992",
         message="the integer 10000000000000000000... is beyond"),
    # (and the range, read with the largest integer in its place, is also reported as low > high)
    case("NUMBER_TOO_LARGE-hex-in-between", "leadflow: 1\nscoring:\n  fit:\n    - id: big\n"
         "      when: { a: { between: [0x" + "f" * 4000 + ", 1] } }\n      points: 1\n", 5, 30, "NUMBER_TOO_LARGE",
         "0xfff", "write a number between -9,007,199,254,740,992 and 9,007,199,254,740,992", count=2, message="the integer 0xffffffffffffffffff... is beyond"),
    case("NUMBER_TOO_LARGE-just-past-2**53", "leadflow: 1\nscoring:\n  fit:\n    - id: big\n"
         "      when: { a: { at_least: -9007199254740993 } }\n      points: 1\n", 5, 30, "NUMBER_TOO_LARGE",
         "-9007", "write a number between -9,007,199,254,740,992 and 9,007,199,254,740,992", message="the integer -9007199254740993 is beyond"),
    case("YAML_TOO_DEEP", "leadflow: 1\nmanagers: " + "[" * 64 + "]" * 64 + "\n", 2, 74, "YAML_TOO_DEEP", "[]",
         "rule files need a few levels; flatten the structure", message="nested more than 64 levels deep"),
    case("YAML_TAG", y("""
        leadflow: 1
        managers: [U0MGR0001, !!python/object:os.system rm]
        """), 2, 23, "YAML_TAG", "!!python", "remove the tag; quote a value to make it text",
         message="tags such as !!python/object:os.system are not read"),
    case("YAML_SYNTAX-control-character", "leadflow: 1\nmanagers: [U0MGR\x070001]\n", 2, 17, "YAML_SYNTAX",
         "\x07", "remove the control character", message="unacceptable character #x0007"),
    case("BAD_TEXT", y("""
        leadflow: 1
        scoring:
          fit:
            - id: odd
              when: { title: "VP\\ud800" }
              points: 5
        """), 5, 22, "BAD_TEXT", '"VP', "write the character itself, or remove it",
         message="lone surrogate (\\ud800)"),
    case("BAD_VALUE-not-finite", y("""
        leadflow: 1
        scoring:
          fit:
            - id: big
              when: { employees: { at_least: 100 } }
              points: .inf
        """), 6, 15, "BAD_VALUE", ".inf", message="expected a finite number, got inf"),
    case("CONDITION_TOO_COMPLEX", "leadflow: 1\nscoring:\n  fit:\n    - id: nested\n      when: "
         + "{ all: [ { e: 1 }, " * 15 + "{ a: 1 }" + " ] }" * 15 + "\n      points: 1\n",
         5, 13, "CONDITION_TOO_COMPLEX", "{ all",
         "split it over several rules or criteria, or use `in: [...]` for alternatives of one field",
         message="the condition needs 15 and/or operations; the engine runs at most 14 per rule"),
    # an `any:` of 65 tests that all match one event failed it in the engine (more than 64 alpha nodes)
    case("CONDITION_TOO_COMPLEX-any-tests", "leadflow: 1\nscoring:\n  fit:\n    - id: wide\n      when: { any: [ "
         + ", ".join(f"{{ f{i}: {{ exists: true }} }}" for i in range(49)) + " ] }\n      points: 1\n",
         5, 13, "CONDITION_TOO_COMPLEX", "{ any",
         "split it over several rules, or use `in: [...]` for alternatives of one field",
         message="the condition needs 49 field tests"),
]


@pytest.mark.parametrize("files, file, line, col, code, token, hint, count, message", CASES)
def test_problem_is_reported_at_its_position(tmp_path, files, file, line, col, code, token, hint, count, message):
    directory = write_rules(tmp_path / "rules", files)
    result = check(str(directory))

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    content = files[file]
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    source = text.splitlines()[line - 1]
    # guard against a mistake in the hand-computed position itself
    assert source[col - 1:].startswith(token), f"test case error: {token!r} is not at column {col} of {source!r}"
    path = os.path.join(str(directory), file)
    assert_reported(result.stderr, path, line, col, code, source, hint)
    if message:
        header = next(t for t in result.stderr.splitlines() if t.startswith(f"{path}:{line}:{col}: {code}: "))
        assert message.format(dir=str(directory)) in header
    assert len(headers(result.stderr)) == count, result.stderr
    assert result.stderr.splitlines()[-1] == problem_count_line(count)


def test_negative_points_zero_hint(tmp_path):
    directory = write_rules(tmp_path / "rules", {RULES: y("""
        leadflow: 1
        scoring:
          negative:
            - id: spam
              when: { spam: true }
              points: 0
        """)})
    result = check(str(directory))
    assert result.returncode == 1
    path = os.path.join(str(directory), RULES)
    assert headers(result.stderr) == [(path, 6, 15, "NEGATIVE_POINTS")]
    assert_reported(result.stderr, path, 6, 15, "NEGATIVE_POINTS", "      points: 0",
                    "a rule worth 0 points does nothing; give it negative points or remove it")
    # the message and hint, not the whole stderr: that holds the temporary path (".../pytest-0/...")
    problem = json.loads(check(str(directory), "--json").stdout)["problems"][0]
    assert "-0" not in problem["message"] and "-0" not in problem["hint"]


@pytest.mark.parametrize("layout", ["no-yaml-files", "only-rule-tests"])  # a missing one: tests/cli/test_conventions.py
def test_no_rule_files(tmp_path, layout):
    directory = tmp_path / "rules"
    if layout == "no-yaml-files":
        write_rules(directory, {"notes.txt": "leadflow: 1\n"})
    elif layout == "only-rule-tests":
        write_rules(directory, {"scoring_test.yaml": "leadflow: 1\n"})
    result = check(str(directory))

    assert result.returncode == 1
    assert result.stdout == ""
    # a directory-level problem: no line or column, no source line, no caret
    assert result.stderr.splitlines() == [
        f"{directory}: NO_RULE_FILES: no rule files (*.yaml) in '{directory}'",
        "  hint: create one starting with 'leadflow: 1'",
        "1 problem found",
    ]


# ---- several problems -----------------------------------------------------------------------------

MULTI = {
    # problems are found in this order: c.yaml's syntax error (while loading), the schema walk of a.yaml
    # (9:13, 11:34) and b.yaml, then cross-file checks (11:14 unknown rep, 6:20 unknown event)
    "a.yaml": y("""
        leadflow: 1
        events:
          demo_requested: the lead asked for a demo
        stages:
          sql:
            when: { event: demo_requsted }
        reps:
          - id: alice
            weight: heavy
        routing:
          - { pool: [alce], description: 5 }
        """),
    "b.yaml": y("""
        leadflow: 1
        sla:
          on_timeout: later
        feedbak: {}
        """),
    "c.yaml": "leadflow: 1\nmanagers: [U0MGR0001\n",
    "c_test.yaml": "this: [is not read\n",  # rule tests are not rule files
}
MULTI_EXPECTED = [
    ("a.yaml", 6, 20, "UNKNOWN_EVENT"),
    ("a.yaml", 9, 13, "WRONG_TYPE"),
    ("a.yaml", 11, 14, "UNKNOWN_REP"),
    ("a.yaml", 11, 34, "WRONG_TYPE"),
    ("b.yaml", 3, 15, "BAD_VALUE"),
    ("b.yaml", 4, 1, "UNKNOWN_KEY"),
    ("c.yaml", 3, 1, "YAML_SYNTAX"),  # end of stream, past the last line: no source line to show
]


def test_every_problem_is_reported_sorted_by_file_line_column(tmp_path):
    directory = write_rules(tmp_path / "rules", MULTI)
    result = check(str(directory))

    assert result.returncode == 1
    assert result.stdout == ""
    found = headers(result.stderr)
    expected = [(os.path.join(str(directory), f), line, col, code) for f, line, col, code in MULTI_EXPECTED]
    assert found == expected, result.stderr
    assert found == sorted(found)
    assert result.stderr.splitlines()[-1] == "7 problems found"
    a = MULTI["a.yaml"].splitlines()
    assert_reported(result.stderr, expected[2][0], 11, 14, "UNKNOWN_REP", a[10], "did you mean 'alice'?")
    assert_reported(result.stderr, expected[3][0], 11, 34, "WRONG_TYPE", a[10],
                    "quote text that looks like a number or boolean")
    assert_reported(result.stderr, expected[1][0], 9, 13, "WRONG_TYPE", a[8], None)
    assert_reported(result.stderr, expected[5][0], 4, 1, "UNKNOWN_KEY", "feedbak: {}", "did you mean 'feedback'?")


def test_json_output_shape(tmp_path):
    directory = write_rules(tmp_path / "rules", MULTI)
    result = check("--json", str(directory))

    assert result.returncode == 1
    assert result.stderr == ""  # --json: the problems are data, on stdout
    data = json.loads(result.stdout)
    assert set(data) == {"valid", "problems"}
    assert data["valid"] is False
    assert len(data["problems"]) == len(MULTI_EXPECTED)
    for problem in data["problems"]:
        assert set(problem) == {"code", "message", "location", "hint", "severity"}
        assert problem["severity"] == "error"
        assert set(problem["location"]) == {"file", "line", "column"}
        assert isinstance(problem["code"], str) and isinstance(problem["message"], str) and problem["message"]
        assert isinstance(problem["hint"], str)
        assert isinstance(problem["location"]["line"], int) and isinstance(problem["location"]["column"], int)
    got = [(p["location"]["file"], p["location"]["line"], p["location"]["column"], p["code"])
           for p in data["problems"]]
    assert got == [(os.path.join(str(directory), f), line, col, code) for f, line, col, code in MULTI_EXPECTED]
    first = data["problems"][0]
    assert first["message"] == "unknown event type 'demo_requsted'"
    assert first["hint"] == "did you mean 'demo_requested'?"
    assert data["problems"][1]["hint"] == ""  # no hint is an empty string, not a missing key


def test_json_output_when_valid():
    result = check("--json", str(BUNDLED))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout) == {"valid": True, "problems": []}


def test_json_output_no_rule_files(tmp_path):
    result = check("--json", str(tmp_path))
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"valid": False, "problems": [{
        "code": "NO_RULE_FILES", "message": f"no rule files (*.yaml) in '{tmp_path}'",
        "location": {"file": str(tmp_path), "line": 0, "column": 0},
        "hint": "create one starting with 'leadflow: 1'", "severity": "error"}]}


# ---- warnings: the rules load and run, but probably not as meant -----------------------------------

GATES = """\
    stages:
      mql:
        when: { score: { at_least: 10 } }
      sql:
        when: { score: { at_least: 50 } }
    """
ROUTED = """\
    reps:
      - id: alice
    routing:
      - pool: [alice]
    fallback: { channel: "#sales-queue" }
    """
WARNINGS = [
    pytest.param({RULES: y("""
        leadflow: 1
        reps:
          - id: alice
        routing:
          - pool: [alice]
        """) + y(GATES)}, 4, 1, "NO_FALLBACK", "routing", "add `fallback: { channel: \"#sales-queue\" }`",
        "goes to nobody: there is no fallback", id="NO_FALLBACK-routing"),
    pytest.param({RULES: "leadflow: 1\n" + y(GATES)}, 5, 3, "NO_FALLBACK", "sql",
                 "add `fallback: { channel: \"#sales-queue\" }`, and `reps:` with `routing:` to assign reps",
                 "no rep and no channel: there is no routing and no fallback", id="NO_FALLBACK-no-routing"),
    pytest.param({RULES: y("""
        leadflow: 1
        events:
          demo_requested: the lead asked for a demo
        scoring:
          engagement:
            - id: demo
              on: demo_requsted
              points: 40
        """) + y(GATES) + y(ROUTED)}, 7, 11, "UNKNOWN_ON_EVENT", "demo_requsted", "did you mean 'demo_requested'?",
        "event type 'demo_requsted' is not declared under 'events:' and leadflow does not produce it",
        id="UNKNOWN_ON_EVENT-declared"),
    pytest.param({RULES: y("""
        leadflow: 1
        events:
          demo_requested: the lead asked for a demo
        scoring:
          engagement:
            - id: webinar
              on: webinar_attended
              points: 10
        """) + y(GATES) + y(ROUTED)}, 7, 11, "UNKNOWN_ON_EVENT", "webinar_attended",
        "declare it under 'events:' or fix the spelling", "'webinar_attended' is not declared",
        id="UNKNOWN_ON_EVENT-undeclared"),
    pytest.param({RULES: y("""
        leadflow: 1
        scoring:
          engagement:
            - id: views
              on: page_view
              points: 1
            - id: pricing
              on: page_veiw
              points: 10
        stages:
          sql:
            when: { event: { type: page_view, at_least: 3 } }
        """) + y(ROUTED)}, 8, 11, "UNKNOWN_ON_EVENT", "page_veiw", "did you mean 'page_view'?",
        "'page_veiw' is not declared", id="UNKNOWN_ON_EVENT-no-declarations-but-a-typo"),
    pytest.param({RULES: y("""
        leadflow: 1
        scoring:
          engagement:
            - id: reopened
              on: lead_reopend
              points: 5
        """)}, 5, 11, "UNKNOWN_ON_EVENT", "lead_reopend", "did you mean 'lead_reopened'?",
        "'lead_reopend' is not declared", id="UNKNOWN_ON_EVENT-builtin-typo"),
]


@pytest.mark.parametrize("files, line, col, code, token, hint, message", WARNINGS)
def test_warning_is_reported_at_its_position_and_exits_0(tmp_path, files, line, col, code, token, hint, message):
    directory = write_rules(tmp_path / "rules", files)
    result = check(str(directory))

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    source = files[RULES].splitlines()[line - 1]
    assert source[col - 1:].startswith(token), f"test case error: {token!r} is not at column {col} of {source!r}"
    path = os.path.join(str(directory), RULES)
    assert_reported(result.stderr, path, line, col, code, source, hint, severity="warning")
    header = next(t for t in result.stderr.splitlines() if t.startswith(f"{path}:{line}:{col}: warning: {code}: "))
    assert message in header
    assert headers(result.stderr) == []  # no error headers
    assert result.stderr.splitlines()[-1] == "1 warning"

    as_json = check("--json", str(directory))
    assert as_json.returncode == 0 and as_json.stderr == ""
    data = json.loads(as_json.stdout)
    assert data["valid"] is True
    assert [(p["severity"], p["code"], p["location"]["line"], p["location"]["column"], p["hint"])
            for p in data["problems"]] == [("warning", code, line, col, hint)]


def test_rules_without_declared_events_warn_only_about_likely_typos(tmp_path):
    directory = write_rules(tmp_path / "rules", {RULES: y("""
        leadflow: 1
        scoring:
          engagement:
            - id: views
              on: page_view
              points: 1
            - id: demo
              on: demo_requested
              points: 40
            - id: bounced
              on: email_bounced
              points: -5
            - id: unsubscribed
              on: email_unsubscribed
              points: -10
        """) + y(ROUTED)})  # alike, but two real types: not a misspelling of each other
    result = check(str(directory))
    assert (result.returncode, result.stderr) == (0, "")


def test_warnings_wait_until_the_errors_are_fixed(tmp_path):
    # judged on a rule set that loads: with an error present, only the error is reported
    text = y("""
        leadflow: 1
        events:
          demo_requested: the lead asked for a demo
        scoring:
          engagement:
            - id: demo
              on: demo_requsted
              points: {points}
        """) + y(GATES)
    directory = write_rules(tmp_path / "rules", {RULES: text.replace("{points}", "lots")})
    result = check(str(directory))
    assert result.returncode == 1
    assert [h[3] for h in headers(result.stderr)] == ["WRONG_TYPE"]
    assert ": warning: " not in result.stderr and result.stderr.splitlines()[-1] == "1 problem found"
    write_rules(directory, {RULES: text.replace("{points}", "40")})
    result = check(str(directory))
    assert result.returncode == 0
    assert result.stderr.splitlines()[-1] == "2 warnings"
    assert [line.split(": ")[2] for line in result.stderr.splitlines() if ": warning: " in line] == \
        ["UNKNOWN_ON_EVENT", "NO_FALLBACK"]


def test_a_directory_named_like_a_rule_file_is_not_a_rule_file(tmp_path):
    directory = write_rules(tmp_path / "rules", {RULES: "leadflow: 1\n" + y(ROUTED)})
    (directory / "drafts.yaml").mkdir()
    result = check(str(directory))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# ---- the bundled rules ----------------------------------------------------------------------------

def test_bundled_rules_check_silently():
    result = check(str(BUNDLED))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_bundled_rules_are_the_default_directory():
    result = check()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# ---- YAML 1.2 scalars -----------------------------------------------------------------------------

def test_yaml_1_2_scalars():
    doc, problems = load_text(y("""
        on: page_view
        answers: [yes, no, No, Yes, on, off, YES, n, y]
        booleans: [true, false, True, FALSE]
        date: 2026-11-02
        hex: 0x1F
        octal: 0o17
        decimal: 012
        nothing: ~
        null_word: null
        empty:
        float: 1.5
        sexagesimal: 1:30
        underscored: 1_000
        """), "x.yaml")
    assert problems == []
    data = doc.data
    assert "on" in data and True not in data
    assert data["on"] == "page_view"
    assert data["answers"] == ["yes", "no", "No", "Yes", "on", "off", "YES", "n", "y"]
    assert all(isinstance(v, str) for v in data["answers"])
    assert data["booleans"] == [True, False, True, False]
    assert all(v is True or v is False for v in data["booleans"])
    assert data["date"] == "2026-11-02" and isinstance(data["date"], str)
    assert data["hex"] == 31 and type(data["hex"]) is int
    assert data["octal"] == 15
    assert data["decimal"] == 12
    assert data["nothing"] is None and data["null_word"] is None and data["empty"] is None
    assert data["float"] == 1.5
    assert data["sexagesimal"] == "1:30"
    assert data["underscored"] == "1_000"


def test_yaml_positions_of_keys_and_values():
    doc, _ = load_text("leadflow: 1\nreps:\n  - { id: alice, weight: 2 }\n", "x.yaml")
    assert doc.keys[("reps",)] == (2, 1)
    assert doc.values[("reps", 0, "id")] == (3, 11)
    assert doc.keys[("reps", 0, "weight")] == (3, 18)
    assert str(doc.at(("reps", 0, "weight"))) == "x.yaml:3:26"
    assert str(doc.at(("reps", 0, "weight"), key=True)) == "x.yaml:3:18"


# ---- generated files and the JSON Schema ----------------------------------------------------------

def test_generated_schema_and_reference_are_current():
    assert (BUNDLED / "schema.json").read_text(encoding="utf-8") == render_json_schema(), \
        "rules/schema.json is stale: run `leadflow rules schema --write rules`"
    assert (BUNDLED / "REFERENCE.md").read_text(encoding="utf-8") == render_reference(), \
        "rules/REFERENCE.md is stale: run `leadflow rules schema --write rules`"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((BUNDLED / "schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


BUNDLED_FILES = sorted(p.name for p in BUNDLED.glob("*.yaml"))


def test_there_are_bundled_rule_files():
    assert BUNDLED_FILES, "no rule files in rules/: the schema tests below would check nothing"


@pytest.mark.parametrize("name", BUNDLED_FILES)
def test_bundled_rule_file_matches_json_schema(validator, name):
    doc, problems = load_file(str(BUNDLED / name))
    assert problems == []
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc.data)]
    assert errors == []


def test_unknown_key_fails_json_schema(validator):
    doc, _ = load_text(y("""
        leadflow: 1
        scoring:
          fit:
            - id: big
              when: { employees: { at_least: 100 } }
              points: 10
              pionts: 10
        """), "x.yaml")
    errors = list(validator.iter_errors(doc.data))
    assert [(list(e.absolute_path), e.validator) for e in errors] == [(["scoring", "fit", 0], "additionalProperties")]
    assert "'pionts' was unexpected" in errors[0].message


def test_unknown_section_fails_json_schema(validator):
    doc, _ = load_text("leadflow: 1\nroutng: []\n", "x.yaml")
    errors = list(validator.iter_errors(doc.data))
    assert len(errors) == 1 and errors[0].validator == "additionalProperties"
    assert "'routng' was unexpected" in errors[0].message


def test_problem_text_is_bounded_and_cannot_forge_lines(tmp_path):
    long_key = "k" * 200_000
    directory = write_rules(tmp_path / "rules", {RULES: (
        'leadflow: 1\n"evil\\nleadflow.service ERROR forged line\\x1b[31m": 1\n'
        f'long: &long "{long_key}"\nscoring: {{ *long : 1 }}\n')})
    result = check(str(directory))
    assert result.returncode == 1
    assert len(result.stderr) < 20_000  # the 200 KB value, key and line are shortened, not printed whole
    assert "\x1b" not in result.stderr
    assert not any(text.startswith("leadflow.service") for text in result.stderr.splitlines())
    assert len(headers(result.stderr)) >= 3, result.stderr
