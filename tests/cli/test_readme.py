"""Every command in the README's shell blocks runs as written, in order, as a user would after cloning:
in a fresh folder holding what a clone has (rules/), with `.venv` being the environment running this
test. Each must exit 0, or the code its line documents (`# exit N`).

What is not run, and why:
- the set-up steps of the quick start (`.ci/install.sh ...`): they made the environment this test runs
  in (CI runs them as written, see .ci/run), and `.venv/bin/python -m pytest`, the suite this test is in;
- a word in capitals used as a placeholder (`OTHER.csv`) is replaced by a file of that kind.
The shared X Education data the tuning example reads from `../shared/datasets` is given as a sample
of its first leads (the real file takes a minute to tune), or as the generated stand-in on a bare clone.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.datasets import datasets_dir, write_labelled_csv, write_real_sample
from tests.leadflow_cli import ROOT, clean_env

SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```", re.S | re.M)
SET_UP = re.compile(r"^(\.ci/install\.sh\b.*|python3 -m venv .*|\.venv/bin/pip install .*|\.venv/bin/python -m pytest.*)$")
PLACEHOLDERS = {"OTHER.csv": "../shared/datasets/x-education/leads_train.csv"}


def readme_commands(text: str) -> list[str]:
    """Each command of the shell blocks, continuation lines joined, comment lines dropped."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def runnable(command: str) -> list[str]:
    """The parts of `a && b && c` to run here: all but the set-up steps (see the module's docstring)."""
    return [part for part in (p.strip() for p in command.split(" && ")) if not SET_UP.match(part)]


def expected_code(command: str) -> int:
    found = re.search(r"#.*\bexit (\d+)", command)
    return int(found.group(1)) if found else 0


def fresh_clone(tmp_path: Path) -> Path:
    """tmp/clone with the repository's rules/ and `.venv` (this environment), and tmp/shared/datasets
    with a small X Education file."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "rules", clone / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    (clone / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    data = tmp_path / "shared" / "datasets" / "x-education"
    data.mkdir(parents=True)
    if (datasets_dir() / "x-education" / "leads_train.csv").is_file():
        write_real_sample(data / "leads_train.csv", 600)
    else:
        write_labelled_csv(data / "leads_train.csv", 400)
    return clone


def test_the_readme_commands_run_as_written(tmp_path):
    assert Path(sys.prefix, "bin", "leadflow").is_file(), "the test runs in an environment with leadflow installed"
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any("leadflow demo" in c for c in commands) and any("leadflow init" in c for c in commands)
    clone = fresh_clone(tmp_path)
    env = clean_env(PATH=f"{clone / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    ran = 0
    for command in commands:
        for part in runnable(command):
            for word, stand_in in PLACEHOLDERS.items():
                part = part.replace(word, stand_in)
            proc = subprocess.run(["bash", "-c", part], cwd=clone, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert proc.returncode == expected_code(command), f"{part}\nexit {proc.returncode}\n{proc.stdout[-2000:]}" \
                                                              f"{proc.stderr[-2000:]}"
            ran += 1
    assert ran >= 10
    assert (clone / "leadflow-demo.db").is_file() and (clone / "my-crm" / "rules" / "scoring.yaml").is_file()


def test_the_set_up_steps_skipped_above_are_the_quick_starts_own():
    """Only the quick start's set-up lines are skipped, and they are what CI runs (.ci/run)."""
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    skipped = [p.strip() for c in commands for p in c.split(" && ") if SET_UP.match(p.strip())]
    assert skipped and all(p.startswith((".ci/install.sh", ".venv/bin/python -m pytest")) for p in skipped)
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".ci/install.sh test" in ci and "-m pytest" in ci
    assert os.access(ROOT / ".ci" / "install.sh", os.X_OK)
