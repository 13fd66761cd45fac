"""`leadflow serve` and `leadflow worker`, the commands that need Slack. They join the engine's commands
through the `leadflow.commands` entry point (pyproject.toml), so the engine never imports this."""
from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING

import click

from leadflow.cli import db_option, emit, interrupted, json_option, rules_option, settings

if TYPE_CHECKING:
    from leadflow.service import LeadService

    from .config import Settings


def _from_env(**overrides: object) -> Settings:
    """Settings from the environment; a bad variable is a usage error that names it, not a traceback.
    (Imported here: the settings pull in the store, which `leadflow --help` should not wait for.)"""
    from .config import Settings

    try:
        return Settings.from_env(os.environ, **overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@db_option
@rules_option
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, db_path: str, rules_dir: str) -> None:
    """Run the HTTP service: POST /v1/events, POST /slack/events, GET /healthz."""
    from .asgi import serve as run

    db, rules = settings(ctx, db_path, rules_dir)
    config = _from_env(db=db, rules=rules, host=host, port=port)
    problem = config.exposure_problem()
    if problem:
        raise click.UsageError(problem)
    run(config)


@click.command()
@click.option("--once", is_flag=True, help="Do one pass of due work and exit.")
@click.option("--until", "until", help="Fast-forward: run everything due up to this time (ISO), then exit.")
@db_option
@rules_option
@json_option
@click.pass_context
def worker(ctx: click.Context, once: bool, until: str | None, db_path: str, rules_dir: str, as_json: bool) -> None:
    """Run nurture steps, decay ticks, routing, SLAs and deliveries (also runs inside `serve`).

    With --once or --until it prints what it did (as JSON with --json)."""
    import time

    from leadflow.core import parse_time
    from leadflow.service import ManualClock, Presence

    from .asgi import build_service

    db, rules = settings(ctx, db_path, rules_dir)
    config = _from_env(db=db, rules=rules)
    end = None
    if until:
        try:
            end = parse_time(until)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--until") from None
    clock = ManualClock(0.0) if end is not None else None
    service, _ = build_service(config, clock=clock)
    presence = Presence(service.store, "worker")  # listed in every instance's /healthz while it runs
    presence.register(service.pipeline.version)
    service.presence = presence
    try:
        if clock is not None and end is not None:
            clock.now = min(service.store.next_due() or end, end, time.time())
            _done(service.run_until(end, clock), as_json)
        elif once:
            _done(service.work_once(), as_json)
        else:
            _run(service)
    finally:
        presence.stop()
        service.store.close()  # PostgreSQL: the pool's threads end here, not at interpreter exit (3.13 hangs there)


def _run(service: LeadService) -> None:
    """Work until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    asked: list[int] = []

    def finish(signum: int, _frame: object) -> None:
        """Finish the current pass, then stop; a second Ctrl-C does not wait."""
        if signum == signal.SIGINT and asked:
            interrupted()
        asked.append(signum)
        stop.set()
        service.wake.set()

    signal.signal(signal.SIGTERM, finish)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, finish)
    service.run(stop)
    if signal.SIGINT in asked:
        interrupted()


def _done(counts: dict, as_json: bool) -> None:
    """What a pass did: JSON with --json, else one line for people."""
    if as_json:
        emit(counts)
    else:
        click.echo(", ".join(f"{key} {value}" for key, value in counts.items()))

