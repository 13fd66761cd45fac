"""Errors as values.

Every problem the engine finds (in a rule file, an event, a rule test) is a `Problem` with a stable
code, a location and an optional hint. Library code collects problems and raises them together in a
`LeadflowError`; only the CLI and the bot turn them into text, so the same problem reads the same way
in a terminal, in JSON output and in Slack.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable


@dataclass(frozen=True, order=True)
class Location:
    """1-based position in a source file; line/column 0 mean "the whole file"."""

    file: str = ""
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """A finding with a stable code. An "error" makes the input unusable; a "warning" is advice on input
    that works but probably not as meant (it never changes an exit code)."""

    code: str
    message: str
    location: Location = field(default_factory=Location)
    hint: str = ""
    severity: str = "error"  # error | warning

    def sort_key(self) -> tuple:
        return (self.location.file, self.location.line, self.location.column, self.code)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["location"] = asdict(self.location)
        return data


class LeadflowError(Exception):
    """Raised with one or more problems; `problems` is sorted by location."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("; ".join(f"{p.location}: {p.code}: {p.message}" for p in self.problems))


class EngineError(Exception):
    """The rule engine failed while evaluating an event (never swallowed, always re-raised)."""

    def __init__(self, code: str, message: str, hint: str = ""):
        self.code = code
        self.hint = hint
        super().__init__(message)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest allowed word, or "" when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def printable(text: str, limit: int = 300) -> str:
    """`text` safe to print on one line: control characters escaped (a key holding "\\n" cannot forge a
    line of output or a log record) and the middle of a long text left out (a 2 MB value in a message
    must not print 2 MB)."""
    text = str(text)
    if len(text) > limit:
        text = f"{text[:limit // 2]}...[{len(text) - limit} characters]...{text[-(limit // 2):]}"
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def excerpt(line: str, column: int, width: int = 120) -> tuple[str, int]:
    """A window of at most about `width` characters of a source line around `column` (1-based), made
    printable, and the 0-based position of that column in it (for the caret)."""
    start = max(0, column - 1 - width // 2)
    end = start + width
    head = ("..." if start else "") + printable(line[start:column - 1], width * 10)
    tail = printable(line[max(column - 1, start):end], width * 10) + ("..." if end < len(line) else "")
    return head + tail, len(head)
