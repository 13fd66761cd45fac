"""How webhook bodies and JSONL files become raw items, each to be parsed and validated on its own."""
from __future__ import annotations

import codecs
import json
import re
import sys
from typing import Iterator

_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.S)  # a lone " opens a string never closed
_CLOSES = {"]": "[", "}": "{"}
_JSON_SPACE = " \t\r\n"


def split_body(text: str) -> tuple[bool, list[str]]:
    """(is a batch, raw text of each event) of a webhook body: one event, or a JSON array of them.

    Each item of an array is returned as the sender wrote it, so a batch item goes through exactly
    what a JSONL line does (size limit, JSON syntax, validation) and one bad item never takes the
    others with it. Raises ValueError when the array itself is broken."""
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if not text.startswith("[", start):
        return False, [text]
    items: list[str] = []
    opened: list[str] = []
    begin = start + 1
    for m in _TOKENS.finditer(text, start):
        tok = m.group()
        if tok == '"':
            raise ValueError(f"the string at column {m.start() + 1} is not closed")
        if tok[0] == '"':
            continue
        if tok in "[{":
            opened.append(tok)
        elif tok in "]}":
            if not opened or opened.pop() != _CLOSES[tok]:
                raise ValueError(f"'{tok}' at column {m.start() + 1} closes nothing")
            if not opened:
                last = text[begin:m.start()].strip(_JSON_SPACE)
                if last or items:
                    items.append(last)
                if text[m.end():].strip(_JSON_SPACE):
                    raise ValueError(f"text after the closing ] at column {m.end() + 1}")
                if not all(items):
                    raise ValueError("an empty item in the array")
                return True, items
        elif len(opened) == 1:  # a comma between items
            items.append(text[begin:m.start()].strip(_JSON_SPACE))
            begin = m.end()
    raise ValueError("the array is not closed")


def decode_body(body: bytes) -> str:
    """A request body as text; bytes that are not UTF-8 are kept (surrogateescape) for parse_line."""
    encoding = json.detect_encoding(body)
    if encoding not in ("utf-8", "utf-8-sig"):
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            encoding = "utf-8"
    return body.decode(encoding, "surrogateescape")


def read_jsonl(path: str) -> Iterator[tuple[int, str]]:
    """(line number, raw text) for every non-blank line; '-' reads standard input. Lines are read as
    bytes: a byte that is not UTF-8 rejects its line (parse_line says where), not the file."""
    fh = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for number, line in enumerate(fh, 1):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            text = line.decode("utf-8", "surrogateescape").rstrip("\r\n")
            if text.strip():
                yield number, text
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
