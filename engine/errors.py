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
