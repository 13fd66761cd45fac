"""CSV rows, read one at a time: a row that cannot be read (a byte that is not UTF-8, a field over
MAX_EVENT_BYTES) is a `BadRow` of its own and never stops the file."""
from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from leadflow.core import MAX_EVENT_BYTES

from ._events import storable


@dataclass
class BadRow:
    """A CSV row that cannot be read (a byte that is not UTF-8, a field over MAX_EVENT_BYTES): it is
    refused on its own, as a dead letter holding its text, and the other rows go on."""

    line: int
    text: str  # the row as it was in the file, non-UTF-8 bytes written as \\xNN
    reason: str
    field: str = ""  # the column at fault, when one is


class CsvRow(dict):
    """One row as {column: value}, with the file line it starts on (quoted cells may span lines)."""

    line = 0


class _RecordLines:
    """The file's lines, decoded one by one (a byte that is not UTF-8 is kept by surrogateescape, so it
    rejects its row, not the file), remembering the text and first line of the record being read."""

    def __init__(self, fh: TextIO) -> None:
        self.fh, self.number, self.start, self.text = fh, 0, 1, []

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line = next(self.fh)
        self.number += 1
        self.text.append(line)
        return line

    def begin(self) -> None:
        self.start, self.text = self.number + 1, []


def _row_problem(header: list[str], values: list[str]) -> str | None:
    for name, value in zip(header + [""] * len(values), values):
        if len(value) > MAX_EVENT_BYTES // 4 and len(value.encode("utf-8", "surrogateescape")) > MAX_EVENT_BYTES:
            return f"column '{storable(name)}' holds more than {MAX_EVENT_BYTES // 1024} KB"
        bad = _SURROGATE.search(value)
        if bad:
            byte = ord(bad.group()) - 0xDC00
            return f"not UTF-8: byte 0x{byte:02X} in column '{storable(name)}'"
    return None


_SURROGATE = re.compile("[\udc80-\udcff]")


BLANK = object()  # a blank line, given by read_rows(blank_lines=True): where a report's footer may start


def read_rows(csv_path: str, blank_lines: bool = False) -> tuple[list[str], Iterator[dict | BadRow]]:
    """The header, and each row as {column: value} (None for missing cells) or as a BadRow. Rows are
    read one at a time and a bad one never stops the file: fields are at most MAX_EVENT_BYTES (64 KB,
    the size limit of one event); Python's csv refuses beyond 128 KB and that row is refused too.
    Blank lines are no rows; with `blank_lines` each is given as BLANK, for a mapping that ends there."""
    fh = open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape")  # a bad byte stays in its row
    lines = _RecordLines(fh)
    reader = csv.reader(lines)

    def record() -> list[str] | BadRow | None:
        lines.begin()
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            reason = f"a field holds more than {MAX_EVENT_BYTES // 1024} KB" if "field limit" in str(exc) \
                else f"not CSV: {exc}"
            return BadRow(lines.start, _text(lines), reason)

    first = record()
    header = first if isinstance(first, list) else []
    header = [storable(name) for name in header]

    def rows() -> Iterator[dict | BadRow]:
        with fh:
            while (values := record()) is not None:
                if isinstance(values, BadRow):
                    yield values
                elif not values or values == [""]:  # an empty line, or one empty quoted field
                    if blank_lines:
                        yield BLANK
                else:
                    problem = _row_problem(header, values)
                    if problem:
                        yield BadRow(lines.start, _text(lines), problem)
                    else:
                        row = CsvRow(zip(header, values))
                        row.update((name, None) for name in header[len(values):])
                        row.line = lines.start
                        yield row

    return header, rows()


def _text(lines: _RecordLines) -> str:
    return storable("".join(lines.text).rstrip("\r\n"))[:MAX_EVENT_BYTES]
