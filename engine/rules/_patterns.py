"""Pattern and substring tests of conditions, and whether a pattern may run at all.

Patterns run on RE2 (google-re2), not Python's backtracking `re`: a rule file's pattern is evaluated on
every event while the engine lock is held, and `^(\\w+\\s?)*$` against 28 bytes took Python 10 s. RE2
runs in time linear in the text, which is also capped at `PATTERN_TEXT_LIMIT` characters. The engine's
own regex dialect is not Python's, so these tests reach durable_rules as 0/1 fields.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

import re2

PATTERN_TEXT_LIMIT = 4096  # a `matches` pattern sees the first 4,096 characters of a value

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print its own error lines to stderr; we report problems


MAX_PATTERN_LENGTH = 1000  # characters of a `matches` pattern
MAX_PROGRAM_SIZE = 1000  # RE2 program instructions (the bundled title pattern has 33); measured worst ~10 ms


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program of a pattern (compiled once per pattern); raises re2.error."""
    return re2.compile(pattern, _RE2_OPTIONS)


def pattern_problem(pattern: str) -> tuple[str, str, str] | None:
    """(code, message, hint) when a pattern cannot run, or None. RE2 decides: Python's `re` only tells a
    malformed pattern (BAD_REGEX) from one that needs backtracking RE2 refuses (UNSAFE_REGEX). RE2 runs
    in time linear in the text but also in the size of its program: a program of 2,000 instructions
    took up to 100 ms per 4 KB match, one of 200,000 took 11 s, so big programs are refused too."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return ("UNSAFE_REGEX", f"the pattern is {len(pattern):,} characters long; at most "
                f"{MAX_PATTERN_LENGTH:,} are allowed", "split the test into several conditions")
    ambiguous = _ambiguous(pattern)
    if ambiguous:
        return ambiguous
    try:
        size = compile_pattern(pattern).programsize
        if size <= MAX_PROGRAM_SIZE:
            return None
        return ("UNSAFE_REGEX", f"the pattern compiles to {size:,} RE2 instructions; at most {MAX_PROGRAM_SIZE:,} "
                "keep a match within milliseconds", "bound repetitions tightly (`{0,20}`, not `{0,1000}`) "
                "and nest them less, or split the test into several conditions")
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    try:
        re.compile(pattern)
    except re.error as exc:
        return ("BAD_REGEX", f"invalid regular expression: {exc.msg} at position {exc.pos}",
                "patterns use RE2 syntax (Python's re without backreferences or lookaround); "
                "escape special characters with \\\\")
    piece = reason.rsplit(": ", 1)[-1]
    instead = ("write `\\z` for the end of the text" if piece == "\\Z" else
               "rewrite the pattern without it or split the test into several conditions")
    return ("UNSAFE_REGEX", f"RE2, the linear-time pattern engine, refuses this pattern: {reason}",
            f"RE2 does not support `{piece}`; {instead}")


# `{,n}` is {0,n} to Python's re but the literal text "{,n}" to RE2: refused rather than silently literal.
_OPEN_MINIMUM = re.compile(r"(?:^|[^\\])(?:\\\\)*(\{,\d+\})")


def _ambiguous(pattern: str) -> tuple[str, str, str] | None:
    found = _OPEN_MINIMUM.search(pattern)
    if found is None:
        return None
    brace = found.group(1)
    return ("BAD_REGEX", f"`{brace}` is a repetition in Python's re but the literal text \"{brace}\" in RE2",
            f"write `{{0,{brace[2:]}` for the repetition, or `\\{brace}` for the text")


def _search(program: Any, text: str) -> bool:
    text = text[:PATTERN_TEXT_LIMIT]
    try:
        return program.search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8 encoded for RE2; it matches nothing
        return program.search(text.encode("utf-8", "replace").decode("utf-8")) is not None


MEMO_SIZE = 4096  # distinct values remembered per pattern (titles, countries and domains repeat)
MEMO_TEXT = 256  # longer values are tested every time rather than kept


def text_predicate(op: str, arg: Any) -> Callable[[Any], bool]:
    """A Python predicate for a `matches` or `contains` test, true only for string values.

    A pattern's answers for short values are remembered: the same job titles and domains come back
    on lead after lead, and google-re2's Python layer (encoding the text, mapping offsets) cost 5% of
    the full path. The memo is bounded in entries and in the length of what it keeps."""
    if op == "matches":
        program = compile_pattern(arg)
        memo: dict[str, bool] = {}

        def matches(v: Any) -> bool:
            if not isinstance(v, str):
                return False
            hit = memo.get(v)
            if hit is None:
                hit = _search(program, v)
                if len(v) <= MEMO_TEXT:
                    if len(memo) >= MEMO_SIZE:
                        memo.clear()
                    memo[v] = hit
            return hit
        return matches
    needle = str(arg).casefold()
    return lambda v: isinstance(v, str) and needle in v.casefold()
