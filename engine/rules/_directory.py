"""A rule directory as one unit: copying it for a proposal, telling its version, and writing a
proposal's rule files back over the live ones.

A rule set is more than its `*.yaml` files: nurture steps name templates in `templates/`, and rule
tests live in `tests/` or `*_test.yaml`. A copy that drops any of these does not load (or cannot be
tested), so every proposal (`rules tune --out`, `--apply`, the scheduled proposal in Slack) is made
from a copy made here. Anything else in the directory (documentation, examples, editor leftovers,
earlier proposals) is not part of the rule set and is not copied.

Applying a proposal writes only the rule files that differ, and only when the live rules are still
the version the proposal was made from: copying an old proposal's snapshot would silently revert
every edit made since (a new manager, a changed SLA).

Writing a proposal replaces several files one after another. A service reloading meanwhile (in
another process: `rules tune --apply`, a second instance) could read a mix of old and new files
that no one wrote, and no check of timestamps before and after its read can tell a mix that stays
still for a moment from a finished set. So writers hold an exclusive `flock` on the directory
while they write and readers a shared one while they load (`rule_dir_lock`); the kernel drops
the lock if a writer dies.
"""
from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import tempfile
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; the reload's timestamp check remains
    fcntl = None  # type: ignore[assignment]

from ._calibration import FILES as CALIBRATION_FILES
from ._files import rule_files, rules_version, yaml_files
from ._load import load_compiled

SUBDIRS = ("templates", "tests")  # the parts of a rule set that live in sub-directories
STALE = "rules changed since this proposal was made; a new proposal will follow"


def _junk(name: str) -> bool:
    """Editor, OS and Python leftovers that are never part of a rule set."""
    return (name.startswith((".", "#")) or name.endswith(("~", ".swp", ".swo", ".tmp", ".pyc", ".orig", ".rej"))
            or name in ("__pycache__", "Thumbs.db"))


def copy_rule_dir(src: str, dst: str) -> None:
    """Copy the rule set in `src` into `dst` (created; must not exist or be empty): the top-level
    YAML files the loader reads (rules and `*_test.yaml`) and the `templates/` and `tests/` trees.

    Only regular files are copied: in the sub-trees a symbolic link is copied (as a file) only when
    it points at a regular file inside `src`; links elsewhere, pipes and devices are skipped, so a
    `templates/zero.md -> /dev/zero` cannot make the copy run forever."""
    os.makedirs(dst, exist_ok=True)
    for path in yaml_files(src, tests=True):
        shutil.copyfile(path, os.path.join(dst, os.path.basename(path)))
    root = os.path.realpath(src)
    for sub in SUBDIRS:
        top = os.path.join(src, sub)
        if os.path.islink(top) or not os.path.isdir(top):
            continue
        for folder, dirs, files in os.walk(top):  # os.walk does not descend into linked directories
            dirs[:] = sorted(d for d in dirs if not _junk(d) and not os.path.islink(os.path.join(folder, d)))
            for name in sorted(files):
                path = os.path.join(folder, name)
                if _junk(name) or not _regular_inside(path, root):
                    continue
                target = os.path.join(dst, os.path.relpath(path, src))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)


def _regular_inside(path: str, root: str) -> bool:
    """A regular file, or a link to one inside `root` (never a pipe, device or a file elsewhere)."""
    return os.path.isfile(path) and (not os.path.islink(path) or inside(path, root))


def inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or lies under it (replacing `directory` would remove it)."""
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def out_dir_problem(rules_dir: str, out_dir: str) -> str | None:
    """Why `out_dir` must not receive a proposal (it is replaced wholesale), or None when it may.

    A proposal directory is removed and rewritten, so it may not hold or lie inside the live rules,
    and an existing non-empty directory is only replaced when it is an earlier proposal (has TUNING.md)."""
    if inside(rules_dir, out_dir):
        return "would replace the rules it is made from"
    if inside(out_dir, rules_dir):
        return "lies inside the rule directory; replacing it would change the live rules"
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        return "exists and is not a directory"
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, "TUNING.md")):
        return "is a non-empty directory that is not an earlier proposal (no TUNING.md); it would be deleted"
    return None


@contextlib.contextmanager
def rule_dir_lock(directory: str, exclusive: bool = False) -> Iterator[None]:
    """Hold the rule directory's lock: shared to read a whole rule set, exclusive to write one.

    The lock is taken on the directory itself (no lock file to commit or clean up) and is held per
    open descriptor, so it also keeps two threads of one process apart."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def dir_version(directory: str) -> str:
    """The version a service would run for this directory (the hash of its rule files)."""
    return rules_version(rule_files(directory))


def overlay_rule_files(proposal_dir: str, live_dir: str, base_version: str | None) -> tuple[str, list[str]]:
    """Write the proposal's changed rule files over `live_dir`.

    Returns ("stale", []) without touching anything when the live rules are no longer
    `base_version`; otherwise checks the result first (live templates and tests with the proposal's
    rule files: raises LeadflowError when that would not load) and returns ("done", names written).
    Each file is replaced atomically and the set is written under the directory's exclusive lock,
    so a service reloading meanwhile reads neither half a file nor half a proposal."""
    if base_version is None or dir_version(live_dir) != base_version:
        return "stale", []
    with tempfile.TemporaryDirectory() as stage:
        copy_rule_dir(live_dir, stage)
        changed = []
        for path in rule_files(proposal_dir):
            name = os.path.basename(path)
            target = os.path.join(stage, name)
            if not (os.path.exists(target) and filecmp.cmp(path, target, shallow=False)):
                shutil.copyfile(path, target)
                changed.append(name)
        # A calibration describes the points it was fitted with: the live one goes when the proposal has none.
        dropped = [name for name in CALIBRATION_FILES
                   if os.path.exists(os.path.join(stage, name)) and not os.path.exists(os.path.join(proposal_dir, name))]
        for name in dropped:
            os.remove(os.path.join(stage, name))
        load_compiled(stage)
        with rule_dir_lock(live_dir, exclusive=True):
            if dir_version(live_dir) != base_version:  # written by someone else while this one was checked
                return "stale", []
            _write(live_dir, stage, changed, dropped)
    return "done", changed + dropped


def _write(live_dir: str, stage: str, changed: list[str], dropped: list[str]) -> None:
    """Replace each changed file atomically and remove the dropped ones (the caller holds the lock)."""
    for name in dropped:
        os.remove(os.path.join(live_dir, name))
    for name in changed:
        fd, tmp = tempfile.mkstemp(dir=live_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(os.path.join(stage, name), tmp)
            live = os.path.join(live_dir, name)
            if os.path.exists(live):
                shutil.copymode(live, tmp)  # mkstemp makes 0600; keep the file's own permissions
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, live)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
