"""The shipped `leadflow` command, run as a user runs it: `python -m bots` (the console script's own
group, with `serve` and `worker`) in a subprocess, with an environment cleaned of the developer's own
LEADFLOW_* and SLACK_* settings. Every test that runs the CLI goes through here."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**settings: str) -> dict[str, str]:
    """os.environ without LEADFLOW_* and SLACK_* (a developer's shell must not change what a test
    sees), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_", "SLACK_"))}
    env.update(settings)
    return env


def leadflow_command(*args: object) -> list[str]:
    """The argv of the shipped command with `args` (for subprocess.Popen: serve, a worker to kill)."""
    return [sys.executable, "-m", "bots", *map(str, args)]


def leadflow(*args: object, env: dict | None = None, input: str | None = None, timeout: float = 120,
             check: bool = False) -> subprocess.CompletedProcess:
    """Run `leadflow ARGS` to the end in the repository root; with check, a failure shows its output."""
    proc = subprocess.run(leadflow_command(*args), cwd=ROOT, env=clean_env() if env is None else env, input=input,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"leadflow {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


class Leadflow:
    """`leadflow --db DB --rules RULES ARGS` on a test's own database and rule directory."""

    def __init__(self, db: Path, rules: Path, env: dict | None = None):
        self.db, self.rules, self.dir, self.env = Path(db), Path(rules), Path(db).parent, env

    def __call__(self, *args: object, rules_dir: Path | None = None, env: dict | None = None,
                 input: str | None = None, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
        return leadflow("--db", self.db, "--rules", rules_dir or self.rules, *args, env=env or self.env, input=input,
                        timeout=timeout, check=check)


def free_port() -> int:
    """A loopback port nobody listens on (for `leadflow serve --port`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
