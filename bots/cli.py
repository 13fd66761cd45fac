"""The `leadflow` console script: the engine's commands plus `serve` and `worker` (which need Slack)."""
from __future__ import annotations

import os
import signal
import threading

import click

from engine.cli import main, rules_option, db_option, _settings

from .config import Settings


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@db_option
@rules_option
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, db_path: str, rules_dir: str) -> None:
    """Run the HTTP service: POST /v1/events, POST /slack/events, GET /healthz."""
    from .server import serve as run

    db, rules = _settings(ctx, db_path, rules_dir)
    run(Settings.from_env(os.environ, db=db, rules=rules, host=host, port=port))


@main.command()
@click.option("--once", is_flag=True, help="Do one pass of due work and exit.")
@db_option
@rules_option
@click.pass_context
def worker(ctx: click.Context, once: bool, db_path: str, rules_dir: str) -> None:
    """Route new SQLs, check SLAs and deliver notifications (also runs inside `serve`)."""
    from .server import build_service

    db, rules = _settings(ctx, db_path, rules_dir)
    service, _ = build_service(Settings.from_env(os.environ, db=db, rules=rules))
    if once:
        click.echo(service.work_once())
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), service.wake.set()))
    try:
        service.run(stop)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
