"""YAML reading with YAML 1.2 scalars and a position for every key and value.

PyYAML follows YAML 1.1, where `on`, `yes`, `No` are booleans and `2026-11-02` is a date; rule files
say `on: page_view` and CRM exports say `No`, so we resolve scalars by YAML 1.2's core schema instead
(only true/false are booleans). Duplicate keys, which PyYAML silently overwrites, are reported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Location, Problem

Path = tuple  # a tuple of str keys and int indexes from the document root


class _Yaml12Resolver(yaml.resolver.BaseResolver):
    pass


for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _Yaml12Resolver.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
              yaml.constructor.SafeConstructor, _Yaml12Resolver):
    def __init__(self, stream: str):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Yaml12Resolver.__init__(self)


def _construct_int(loader: Any, node: yaml.Node) -> int:
    text = node.value
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


@dataclass
class Document:
    """A parsed YAML file: plain data plus where each path's key and value sit."""

    file: str
    data: Any
    values: dict = field(default_factory=dict)  # path -> (line, col) of the value
    keys: dict = field(default_factory=dict)  # path -> (line, col) of the key
    lines: list = field(default_factory=list)

    def at(self, path: Path, key: bool = False) -> Location:
        """Location of a path's key (or value), falling back to the nearest parent that has one."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                line, col = table[probe]
                return Location(self.file, line, col)
            if not key and probe in self.keys:
                line, col = self.keys[probe]
                return Location(self.file, line, col)
            probe = probe[:-1]
        line, col = self.values.get((), (1, 1))
        return Location(self.file, line, col)


def load_text(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML document; syntax errors come back as problems, never as exceptions."""
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = "; ".join(str(m) for m in (exc.context, exc.problem) if m)
        return None, [Problem("YAML_SYNTAX", f"YAML syntax error: {msg}", Location(file, line, col))]
    except yaml.YAMLError as exc:
        return None, [Problem("YAML_SYNTAX", f"YAML error: {exc}", Location(file, 1, 1))]
    finally:
        loader.dispose()
    doc = Document(file=file, data=None, lines=text.splitlines())
    if node is None:
        doc.data = None
        return doc, problems
    doc.data = _build(node, (), doc, loader, problems)
    return doc, problems


def _build(node: yaml.Node, path: Path, doc: Document, loader: _Loader, problems: list[Problem]) -> Any:
    doc.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            kpath = path + (key,)
            where = Location(doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                problems.append(Problem("DUPLICATE_KEY", f"key '{key}' appears twice in this mapping", where,
                                        "remove one of them; YAML would silently keep only the last"))
                continue
            doc.keys[kpath] = (where.line, where.column)
            result[key] = _build(value_node, kpath, doc, loader, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, loader, problems) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_file(path: str, display: str | None = None) -> tuple[Document | None, list[Problem]]:
    name = display or path
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        return None, [Problem("FILE_ENCODING", f"not UTF-8 text: {exc.reason}", Location(name, 1, 1))]
    except OSError as exc:
        return None, [Problem("FILE_UNREADABLE", f"cannot read: {exc.strerror}", Location(name))]
    return load_text(text, name)
