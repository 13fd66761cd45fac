"""The ASGI app `leadflow serve` runs: the event webhook, the Slack request URL and a health check.

Bolt's sync handler runs in a thread pool so a slow listener never blocks the webhook; a background
thread runs the service's work loop (routing, SLA checks, deliveries) and is woken as soon as an
event or a decision is committed. The webhook's events are written by the service's `WriterProcess`
(a child process, started before the first request is served and stopped after the last is
answered) unless LEADFLOW_WRITER=thread keeps it on a thread here.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import sys
import threading
import time
from typing import Any, Callable, TextIO

from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leadflow.core import TOLERANCE, format_time
from leadflow.delivery import (
    NETWORK_TIMEOUT,
    ChannelSender,
    ChannelSettings,
    Notifier,
    SubscriptionSender,
    unconfigured,
)
from leadflow.intake import Intake
from leadflow.service import EventWriter, LeadService, Presence, ThreadWriter, WriterProcess
from leadflow.store import Instance

from .app import build_app
from .config import Settings
from .notifier import ConsoleNotifier, SlackNotifier
from .webhook import EventsEndpoint, Receive, Scope, Send, authenticate, read_capped

log = logging.getLogger("leadflow.server")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")  # as engine.signing reads its own timestamp header


def build_service(settings: Settings, client: WebClient | None = None, clock: Callable[[], float] | None = None,
                  console: TextIO | None = None) -> tuple[LeadService, WebClient | None]:
    """The service, delivering to Slack (or, without Slack credentials, to `console`) and sending
    nurture e-mail and webhooks; the notifiers read what they show through the service's view."""
    kwargs = {"clock": clock} if clock else {}
    service = LeadService(settings.db, settings.rules, **kwargs)
    stream = console or sys.stderr
    notifier: Notifier
    if settings.slack_enabled:
        # no automatic retries: a post re-sent after a dropped connection would be a second card; the
        # outbox retries instead, looking for the first copy (its key) before posting again
        client = client or WebClient(token=settings.bot_token, base_url=settings.slack_api_url or
                                     "https://slack.com/api/", timeout=NETWORK_TIMEOUT, retry_handlers=[])
        notifier = SlackNotifier(client, service.view)
    else:
        notifier = ConsoleNotifier(stream, service.view)
    # CRM webhooks (`webhooks:` in the rule files) read the live rules and their URL and secret variables
    hooks = SubscriptionSender(lambda: service.pipeline.compiled.rules)
    for line in unconfigured(service.pipeline.compiled.rules):
        log.warning("%s", line)
    service.deliver_through([notifier, ChannelSender(settings.channels or ChannelSettings(), service.store, stream),
                             hooks])
    return service, client


def build_asgi(settings: Settings, service: LeadService, client: WebClient | None,
               run_worker: bool = True, interval: float = 1.0) -> Server:
    bolt = build_app(settings, client, service) if settings.slack_enabled and client else None
    stop = threading.Event()

    presence = Presence(service.store, "serve")  # registered when the app starts, removed when it stops
    intake = Intake(clock=time.time, max_future=settings.max_future)
    writer = build_writer(settings, service, intake)

    async def slack(request: Request) -> Response:
        """Slack's request URL. The size cap and the signature come before anything reads or parses
        the body, so an anonymous caller can neither make us buffer or log a large body nor reach
        Bolt's parser; whatever is malformed gets a 4xx, never a 500."""
        if bolt is None:
            return JSONResponse({"error": "Slack is not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)"},
                                503)
        raw = await read_capped(request.headers, request.receive, settings.max_slack_body_bytes)
        if raw is None:
            return JSONResponse({"error": f"body larger than {settings.max_slack_body_bytes} bytes"}, 413)
        problem = _slack_problem(settings.signing_secret or "", raw, request.headers)
        if problem:
            return JSONResponse({"error": problem}, 401)
        try:
            text = raw.decode("utf-8")
            bolt_request = BoltRequest(body=text, query=request.url.query, headers=dict(request.headers))
        except Exception:  # noqa: BLE001 - building it only parses: any failure means "not a Slack payload"
            return JSONResponse({"error": "malformed request body"}, 400)
        if not isinstance(bolt_request.body, dict):
            return JSONResponse({"error": "malformed request body"}, 400)
        resp = await run_in_threadpool(bolt.dispatch, bolt_request)
        headers = {k: v[0] for k, v in resp.headers.items() if v}
        return Response(content=resp.body, status_code=resp.status, headers=headers)

    worker_threads: list[threading.Thread] = []

    async def health(request: Request) -> Response:
        """Anyone may ask whether the service is well (load balancers, uptime checks); only callers
        with the webhook credentials see the details (rule problems name files and lines). Without
        credentials, a request that came through a proxy is refused outright: the operator learns
        that the open, loopback-only mode is reachable from elsewhere. The details include every
        instance on the database seen lately with the rule version it runs, and whether the versions
        differ (normal for a moment while a rule change reaches each instance; not while it lasts)."""
        problem = authenticate(settings, request.headers, b"")
        if problem and not settings.webhook_protected:
            return JSONResponse({"error": problem}, 401)
        problems = list(service.rule_problems)
        worker_alive = all(t.is_alive() for t in worker_threads)
        ok = not problems and worker_alive and writer.alive
        if problem:
            return JSONResponse({"ok": ok})
        counts = await run_in_threadpool(service.store.outbox_counts)
        instances = await run_in_threadpool(presence.live)
        versions = sorted({i.rules_version or "" for i in instances} | {service.pipeline.version})
        return JSONResponse({"ok": ok, "instance": presence.id, "rules_version": service.pipeline.version,
                             "instances": [_instance(i) for i in instances], "rules_versions": versions,
                             "versions_differ": len(versions) > 1,
                             "outbox_pending": counts.get("pending", 0) + counts.get("sending", 0),
                             "outbox_failed": counts.get("failed", 0), "worker": worker_alive if run_worker else None,
                             "writer": {"mode": settings.writer, "alive": writer.alive},
                             "slack": bolt is not None,
                             "rule_problems": [f"{p.location}: {p.code}: {p.message}" for p in problems]})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        worker = None
        try:
            await run_in_threadpool(writer.start)  # the webhook is served only once its writer is ready
            await run_in_threadpool(presence.register, service.pipeline.version)
            service.presence = presence  # the work loop beats with the version it runs
            if run_worker:
                worker = threading.Thread(target=service.run, args=(stop, interval), name="leadflow-worker",
                                          daemon=True)
                worker.start()
                worker_threads.append(worker)
            yield
        finally:
            stop.set()
            service.wake.set()
            if worker:
                worker.join(timeout=5)
            await run_in_threadpool(presence.stop)
            # what was submitted is committed and answered before the store closes
            await run_in_threadpool(writer.close)

    rest = Starlette(routes=[Route("/slack/events", slack, methods=["POST"]),
                             Route("/healthz", health, methods=["GET"])], lifespan=lifespan)
    rest.state.writer = writer  # the webhook's writer (its counters show how requests were grouped)
    return Server(EventsEndpoint(settings, service, writer), rest)


def build_writer(settings: Settings, service: LeadService, intake: Intake) -> EventWriter:
    """The webhook's group commit: in a process of its own (the default), following the rule version
    `service` runs, or on a thread here (one rule version per group either way)."""
    if settings.writer == "thread":
        return ThreadWriter(service.store, lambda: service.pipeline, intake)
    return WriterProcess(settings.db, settings.rules, intake, lambda: service.pipeline.version,
                         logging.getLogger().getEffectiveLevel(), lambda: getattr(service.store, "busy_timeout", None))


class Server:
    """The ASGI app: the event webhook straight to its endpoint (see webhook.py), everything else
    (Slack, /healthz, the lifespan) through Starlette."""

    def __init__(self, events: EventsEndpoint, rest: Starlette):
        self.events, self.rest, self.state = events, rest, rest.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/events":
            await self.events(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


def _instance(instance: Instance) -> dict:
    """An instance as /healthz shows it."""
    return {"id": instance.id, "role": instance.role, "rules_version": instance.rules_version,
            "started_at": format_time(instance.started_at), "seen_at": format_time(instance.seen_at)}


def _slack_problem(secret: str, body: bytes, headers: Any) -> str | None:
    """None when the request carries Slack's v0 signature over these raw bytes, made within five
    minutes; else why not (safe to send back). The timestamp must be 1 to 12 ASCII digits, like
    engine.signing's, before it is read as a number: str.isdigit() also accepts '١' and '²', and
    400 nines overflow a float, 4,301 digits make int() raise, and any exception here is a 500.
    (slack_sdk's verifier decodes the body first and calls int() on the header: not usable here.)"""
    timestamp, given = (headers.get("x-slack-request-timestamp") or "").strip(), headers.get("x-slack-signature") or ""
    if not given:
        return "missing X-Slack-Signature"
    if not _UNIX_SECONDS.fullmatch(timestamp):
        return "X-Slack-Request-Timestamp must be unix seconds (1 to 12 digits)"
    want = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), want.encode()):
        return "X-Slack-Signature does not match this body and timestamp"
    if abs(time.time() - int(timestamp)) > TOLERANCE:
        return f"X-Slack-Request-Timestamp is more than {TOLERANCE} s away from this server's clock"
    return None


def serve(settings: Settings) -> None:
    import uvicorn

    problem = settings.exposure_problem()
    if problem:
        raise ValueError(problem)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service, client = build_service(settings)
    if not settings.webhook_protected:
        log.warning("the event webhook accepts unauthenticated requests from local callers (anything relayed by "
                    "a proxy or a browser is refused): set LEADFLOW_WEBHOOK_TOKEN before putting it behind a proxy")
    if not settings.slack_enabled:
        log.warning("Slack is not configured: SQL cards go to this log; decide with `leadflow sql accept|reject`")
    uvicorn.run(build_asgi(settings, service, client), host=settings.host, port=settings.port, log_level="info",
                access_log=settings.access_log)
