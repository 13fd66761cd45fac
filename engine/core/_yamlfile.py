"""YAML reading with YAML 1.2 scalars and a position for every key and value.

PyYAML follows YAML 1.1, where `on`, `yes`, `No` are booleans and `2026-11-02` is a date; rule files
say `on: page_view` and CRM exports say `No`, so we resolve scalars by YAML 1.2's core schema instead
(only true/false are booleans). Duplicate keys, which PyYAML silently overwrites, are reported, and so
are aliases and nesting beyond small limits (a rule file is input like any other).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ._errors import Location, Problem

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


# Limits on what a file may make the loader build. A 419-byte file of nested aliases expands to billions
# of nodes ("billion laughs") and a file of 1,000 nested brackets exhausts Python's stack; both are
# refused while composing, before anything is expanded, as problems at the offending alias or node.
MAX_ALIASES = 100  # alias uses (*name) per file
MAX_ALIAS_NODES = 10_000  # nodes that all alias uses of a file may add together, once expanded
MAX_YAML_DEPTH = 64  # nesting of mappings and lists


class _Refused(yaml.YAMLError):
    def __init__(self, code: str, message: str, mark: Any, hint: str):
        super().__init__(message)
        self.code, self.message, self.mark, self.hint = code, message, mark, hint


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
              yaml.constructor.SafeConstructor, _Yaml12Resolver):
    def __init__(self, stream: str):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Yaml12Resolver.__init__(self)
        self._depth = 0
        self._aliases = 0
        self._alias_nodes = 0
        self._sizes: dict = {}  # id(node) -> its size with aliases expanded, once the node is complete

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        """PyYAML's composer, counting alias uses, what they expand to, and the nesting depth."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._alias(node, event)
            return node
        if getattr(event, "tag", None) not in (None, "!"):  # "!" marks a quoted scalar, not a tag
            tag = "!!" + event.tag[18:] if event.tag.startswith("tag:yaml.org,2002:") else event.tag
            raise _Refused("YAML_TAG", f"tags such as {tag} are not read in these files",
                           event.start_mark, "remove the tag; quote a value to make it text")
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused("YAML_TOO_DEEP", f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark,
                           "rule files need a few levels; flatten the structure")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(item)] for item in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return node

    def _alias(self, node: yaml.Node, event: yaml.AliasEvent) -> None:
        self._aliases += 1
        hint = "write the values out, or reuse fewer and smaller anchors"
        if id(node) not in self._sizes:  # the anchored node is still being composed: it contains itself
            raise _Refused("YAML_RECURSIVE_ALIAS", f"alias *{event.anchor} is used inside its own anchor",
                           event.start_mark, "an anchor cannot be used inside itself")
        if self._aliases > MAX_ALIASES:
            raise _Refused("YAML_ALIAS_LIMIT", f"more than {MAX_ALIASES} aliases in one file", event.start_mark, hint)
        self._alias_nodes += self._sizes[id(node)]
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _Refused("YAML_ALIAS_LIMIT", f"aliases expand this file by more than {MAX_ALIAS_NODES:,} nodes",
                           event.start_mark, hint)


MAX_INTEGER = 2**53  # integers beyond this lose precision as JSON numbers and as the engine's doubles


def _too_large(node: yaml.Node) -> bool:
    """Whether an integer scalar is beyond MAX_INTEGER, judged without converting a huge decimal (Python
    refuses more than 4,300 digits, and huge values overflow floats later)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
        return False
    text = node.value.lstrip("+-")
    if text.startswith(("0x", "0o")):
        return len(text) > 64 or int(text[2:], 16 if text[1] == "x" else 8) > MAX_INTEGER
    return len(text.lstrip("0")) > 20 or int(text) > MAX_INTEGER


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
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character PyYAML refuses to read
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        return None, [Problem("YAML_SYNTAX", f"YAML error: unacceptable character #x{exc.character:04x}",
                              Location(file, line, column), "remove the control character")]
    try:
        node = loader.get_single_node()
    except _Refused as exc:
        where = Location(file, exc.mark.line + 1, exc.mark.column + 1)
        return None, [Problem(exc.code, exc.message, where, exc.hint)]
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
            key = key_node.value if _too_large(key_node) else loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            key = _encodable(key, key_node, doc, problems)
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
    if _too_large(node):
        problems.append(Problem("NUMBER_TOO_LARGE", f"the integer {node.value[:20]}... is beyond ±2**53"
                                if len(node.value) > 20 else f"the integer {node.value} is beyond ±2**53",
                                Location(doc.file, node.start_mark.line + 1, node.start_mark.column + 1),
                                f"write a number between -{MAX_INTEGER:,} and {MAX_INTEGER:,}"))
        return -MAX_INTEGER if node.value.startswith("-") else MAX_INTEGER  # stands in: one problem, not two
    value = loader.construct_object(node, deep=True)
    return _encodable(value, node, doc, problems) if isinstance(value, str) else value


def _encodable(text: str, node: yaml.Node, doc: Document, problems: list[Problem]) -> str:
    """A "\\ud800" escape makes a string no UTF-8 can hold, which the engine and the database refuse
    later: report it here, and go on checking with U+FFFD in its place (so nothing else cascades)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError as exc:
        where = Location(doc.file, node.start_mark.line + 1, node.start_mark.column + 1)
        problems.append(Problem("BAD_TEXT", f"the text holds a lone surrogate (\\u{ord(text[exc.start]):04x}), "
                                "which is not a character", where, "write the character itself, or remove it"))
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def load_file(path: str, display: str | None = None) -> tuple[Document | None, list[Problem]]:
    name = display or path
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, [Problem("FILE_UNREADABLE", f"cannot read: {exc.strerror}", Location(name))]
    return load_bytes(data, name)


def load_bytes(data: bytes, name: str) -> tuple[Document | None, list[Problem]]:
    """A file's bytes as a Document: UTF-8 or a FILE_ENCODING problem, then `load_text`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem("FILE_ENCODING", f"not UTF-8 text: {exc.reason}", Location(name, 1, 1))]
    return load_text(text, name)
