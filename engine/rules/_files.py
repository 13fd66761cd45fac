"""Which files make a rule set, and its version: the one definition that loading, the service's
change detection and proposal copies all use, so a copy has the same version as its source."""
from __future__ import annotations

import hashlib
import os

from leadflow.core import Location, Problem

MAX_FILE_BYTES = 1_000_000  # a rule file is a few KB; a bigger one is refused before it is parsed


def yaml_files(directory: str, tests: bool = False) -> list[str]:
    """The one definition of a rule set's top-level YAML files, used by loading and by proposal copies
    alike (so a copy has the same version as its source): `*.yaml`/`*.yml` that are regular files (not
    a directory or pipe named x.yaml), not hidden or editor leftovers (`.x.yaml`, `#x.yaml`); rule
    tests (`*_test.yaml`) only with `tests=True`."""
    if not os.path.isdir(directory):
        return []
    names = sorted(n for n in os.listdir(directory)
                   if n.endswith((".yaml", ".yml")) and not n.startswith((".", "#"))
                   and (tests or not n.rsplit(".", 1)[0].endswith("_test"))
                   and os.path.isfile(os.path.join(directory, n)))
    return [os.path.join(directory, n) for n in names]


def rule_files(directory: str) -> list[str]:
    """The YAML files of a rule set: directly in the directory, not rule tests (`*_test.yaml`)."""
    return yaml_files(directory)


def read_rule_files(paths: list[str]) -> tuple[list[tuple[str, bytes]], list[Problem]]:
    """Each file's bytes, read once (the version is the hash of exactly what is checked), and a
    problem for each file that cannot be read or is too large to parse."""
    contents, problems = [], []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)  # never more: parsing costs ~7 s and 150 MB per MB
        except OSError as exc:
            problems.append(Problem("FILE_UNREADABLE", f"cannot read: {exc.strerror}", Location(path)))
            continue
        if len(data) > MAX_FILE_BYTES:
            problems.append(Problem("FILE_TOO_LARGE", f"the file is over {MAX_FILE_BYTES // 1_000_000} MB",
                                    Location(path), "split it, or move data out of the rules"))
            continue
        contents.append((path, data))
    return contents, problems


def rules_version(paths: list[str]) -> str:
    contents = []
    for path in paths:
        with open(path, "rb") as fh:
            contents.append((path, fh.read()))
    return version_of(contents)


def version_of(contents: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for path, data in contents:
        digest.update(os.path.basename(path).encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:12]
