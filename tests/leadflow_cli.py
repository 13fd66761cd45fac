"""The shipped `leadflow` command, run as a user runs it: `python -m leadflow` (the same command as the
console script, `serve` and `worker` included) in a subprocess, with an environment cleaned of the developer's own
LEADFLOW_* and SLACK_* settings. Every test that runs the CLI goes through here."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

from leadflow.core import format_time, parse_time
from leadflow.store import Store, is_postgres_url

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**settings: str) -> dict[str, str]:
    """os.environ without LEADFLOW_* and SLACK_* (a developer's shell must not change what a test
    sees), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_", "SLACK_"))}
    env.update(settings)
    return env


def leadflow_command(*args: object) -> list[str]:
    """The argv of the shipped command with `args` (for subprocess.Popen: serve, a worker to kill)."""
    return [sys.executable, "-m", "leadflow", *map(str, args)]


def leadflow(*args: object, env: dict | None = None, input: str | None = None, timeout: float = 120,
             check: bool = False) -> subprocess.CompletedProcess:
    """Run `leadflow ARGS` to the end in the repository root; with check, a failure shows its output."""
    proc = subprocess.run(leadflow_command(*args), cwd=ROOT, env=clean_env() if env is None else env, input=input,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"leadflow {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def run(args: list, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`leadflow` with an argument list, failing the test on a non-zero exit unless check is False."""
    return leadflow(*args, env=env, check=check)


class Leadflow:
    """`leadflow --db DB --rules RULES ARGS` on a test's own database and rule directory. DB is a SQLite
    path or a postgresql:// URL, passed on unchanged (a Path would fold its `//`); files the test
    writes go beside the database, or beside the rule directory for a URL."""

    def __init__(self, db: Path | str, rules: Path, env: dict | None = None):
        url = is_postgres_url(str(db))
        self.db: Path | str = str(db) if url else Path(db)
        self.rules, self.env = Path(rules), env
        self.dir = Path(rules).parent if url else Path(db).parent

    def __call__(self, *args: object, rules_dir: Path | None = None, env: dict | None = None,
                 input: str | None = None, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
        return leadflow("--db", self.db, "--rules", rules_dir or self.rules, *args, env=env or self.env, input=input,
                        timeout=timeout, check=check)


# ---- a small rule set on a fresh database: the `cli` fixture (tests/conftest.py) and its helpers ------

AT = "2026-11-02T09:00:00Z"
SMALL_RULES = r"""
    leadflow: 1
    scoring:
      fit:
        - { id: senior, when: { title: { matches: "(?i)\\bvp\\b" } }, points: 20 }
      engagement:
        - { id: demo, on: demo_requested, points: 40, repeat: once }
    """


def small_setup(directory: Path, db: str | None = None) -> Leadflow:
    """`leadflow` on `db` (directory/t.db by default) with SMALL_RULES in directory/rules."""
    rules = directory / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(SMALL_RULES))
    return Leadflow(db or directory / "t.db", rules)


def ev(eid: str, lead: str = "L", etype: str = "page_view", at: str = AT, **data) -> dict:
    return {"id": eid, "lead": lead, "type": etype, "at": at, "data": data}


def write(path: Path, lines: list) -> Path:
    """Lines are dicts (written as JSON), str (written as they are) or bytes."""
    with path.open("wb") as fh:
        for line in lines:
            raw = json.dumps(line).encode() if isinstance(line, dict) else line if isinstance(line, bytes) else \
                line.encode("utf-8", "surrogatepass")
            fh.write(raw + b"\n")
    return path


def ingest(cli: Leadflow, lines: list, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`leadflow ingest --json` of `lines`: the process and its answer (an answer, never a traceback)."""
    proc = cli("ingest", str(write(cli.dir / "in.jsonl", lines)), "--json", *flags)
    assert proc.stdout, proc.stderr
    return proc, json.loads(proc.stdout)


def rows(db: Path | str, sql: str, *args: object) -> list:
    """What the database holds, read with sqlite3 (not through leadflow); on PostgreSQL with the store's
    `sql` (the common SQL with `?`), on a store that upgrades nothing."""
    if is_postgres_url(str(db)):
        store = Store(str(db), upgrade=False)
        try:
            return store.sql(sql, args)
        finally:
            store.close()
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def tamper(db: Path | str, *statements: tuple) -> None:
    """Change what the database holds past leadflow's checks, as an older release (or a hand) left it:
    each (SQL, *args) of the common SQL (`?`), all in one transaction, with the store's `sql` on either
    backend (a store that upgrades nothing)."""
    store = Store(str(db), upgrade=False)
    try:
        with store.transaction():
            for sql, *args in statements:
                store.sql(sql, args)
    finally:
        store.close()


def rejected_fields(proc: subprocess.CompletedProcess) -> dict:
    """line number -> 'field: reason' from `FILE:LINE: rejected: ...` lines on stderr."""
    out = {}
    for text in proc.stderr.splitlines():
        if ": rejected: " in text:
            where, what = text.split(": rejected: ", 1)
            out[int(where.rsplit(":", 1)[1])] = what
    return out


# ---- nurture and delivery through the worker: mail on loopback, history at T0 --------------------------

T0 = parse_time(AT)  # a Monday


def mail_env(smtp: object, hooks: object = None) -> dict[str, str]:
    """A clean environment sending nurture mail to `smtp` (and webhooks to `hooks`) on loopback."""
    env = clean_env(LEADFLOW_SMTP_HOST="127.0.0.1", LEADFLOW_SMTP_PORT=str(smtp.port),
                    LEADFLOW_SMTP_FROM="hi@leadflow.test",
                    LEADFLOW_MAX_FUTURE="3650d")  # the tracks are replayed over dates that may lie ahead of today
    if hooks:
        env.update(LEADFLOW_NURTURE_WEBHOOK_URL=hooks.url, LEADFLOW_NURTURE_WEBHOOK_SECRET="hooksecret")
    return env


def ingest_events(db: Path, rules: Path, events: list, env: dict | None = None) -> None:
    """`leadflow ingest` of `events` (dicts), which must all apply."""
    path = db.parent / f"in-{time.time_ns()}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    run(["--db", str(db), "--rules", str(rules), "ingest", str(path)], env)


def event_at(i: str, lead: str, etype: str, t: float, data: dict | None = None) -> dict:
    """An event at time `t` (seconds)."""
    return {"id": i, "lead": lead, "type": etype, "at": format_time(t), "data": data or {}}
