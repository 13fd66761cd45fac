"""`leadflow init`: a starter project a marketer can put in git, made from the bundled rule set.

The bundled rules (package data of `leadflow.bundled_rules`) are the commented example every new user
starts from; the demo runs on them when a folder has no rules of its own. A starter project is a copy
of them that is the user's to change: the rule files, their templates and tests, the schema and the
reference, plus an example events file and a README for the folder.

Nothing that exists is ever overwritten: every target is checked before the first file is written,
and each file is created exclusively, so a second `init` (or a file that appears meanwhile) is a
problem naming the file, never a silent replacement of someone's edited rules.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from leadflow.core import LeadflowError, Location, Problem

RULE_FILES = ("schema.json", "REFERENCE.md")  # besides the *.yaml rule files
RULE_TREES = ("templates", "tests")
STARTER = ("examples", "starter")  # the folder's README and example events, inside the bundled rules
GITIGNORE = "# lead data stays out of git\n*.db\n*.db-wal\n*.db-shm\n"


@dataclass(frozen=True)
class StarterFile:
    """One file of the starter project: where it goes (relative to the project) and its bytes."""

    path: str
    content: bytes


def bundled_rules_dir() -> str:
    """The bundled rule directory on disk (the repository's rules/ in a development install)."""
    root = files("leadflow.bundled_rules")
    if not isinstance(root, Path):  # a zipped install: the loader needs real files
        raise LeadflowError([Problem("BUNDLED_RULES_UNAVAILABLE", "the bundled rules are not files on disk",
                                     hint="install leadflow as a regular (unzipped) package")])
    return str(root)


def starter_files() -> list[StarterFile]:
    """What `leadflow init` writes, in order: the folder's README, example events, .gitignore, then
    rules/ with the bundled rule files, schema, reference, templates and rule tests."""
    root = files("leadflow.bundled_rules")
    starter = root.joinpath(*STARTER)
    out = [StarterFile("README.md", starter.joinpath("README.md").read_bytes()),
           StarterFile("events.jsonl", starter.joinpath("events.jsonl").read_bytes()),
           StarterFile(".gitignore", GITIGNORE.encode())]
    for item in sorted(root.iterdir(), key=lambda t: t.name):
        if item.is_file() and (item.name.endswith(".yaml") or item.name in RULE_FILES):
            out.append(StarterFile(f"rules/{item.name}", item.read_bytes()))
    for tree in RULE_TREES:
        out += [StarterFile(f"rules/{tree}/{path}", data) for path, data in _tree(root.joinpath(tree))]
    return out


def _tree(folder: Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    if not folder.is_dir():
        return found
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.name.startswith((".", "#", "__")):  # editor leftovers, __pycache__
            continue
        if item.is_dir():
            found += _tree(item, f"{prefix}{item.name}/")
        elif item.is_file():
            found.append((prefix + item.name, item.read_bytes()))
    return found


def init_project(directory: str) -> list[str]:
    """Write the starter project into `directory` (created when missing) and return the paths written.

    Raises LeadflowError listing every file that already exists (FILE_EXISTS), or the directory that
    cannot hold a project, before anything is written."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise LeadflowError([Problem("NOT_A_DIRECTORY", "exists and is not a directory", Location(directory),
                                     hint="give a new or existing folder: leadflow init DIR")])
    wanted = starter_files()
    taken = [f.path for f in wanted if os.path.lexists(os.path.join(directory, f.path))]
    if taken:
        raise LeadflowError([Problem("FILE_EXISTS", "already exists; leadflow init never overwrites a file",
                                     Location(os.path.join(directory, path)),
                                     hint="move it away, or run leadflow init in an empty folder")
                             for path in taken])
    written = []
    try:
        for item in wanted:
            target = os.path.join(directory, item.path)
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            with open(target, "xb") as fh:  # exclusive: a file that appeared meanwhile is not replaced
                fh.write(item.content)
            written.append(target)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else directory
        code = "FILE_EXISTS" if isinstance(exc, FileExistsError) else "CANNOT_WRITE"
        raise LeadflowError([Problem(code, exc.strerror or str(exc), Location(where),
                                     hint=f"{len(written)} files were written before it")]) from exc
    return written
