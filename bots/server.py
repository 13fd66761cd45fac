"""The HTTP service: the event webhook, the Slack request URL and a health check, in one ASGI app.

Bolt's sync handler runs in a thread pool so a slow listener never blocks the webhook; a background
thread runs the service's work loop (routing, SLA checks, deliveries) and is woken as soon as an
event or a decision is committed.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import sys
import threading
from typing import Any

from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.channels import ChannelSender, ChannelSettings
from engine.events import loads
from engine.service import LeadService

from .app import build_app
from .config import Settings
from .notifier import ConsoleNotifier, SlackNotifier

log = logging.getLogger("leadflow.server")


def build_service(settings: Settings, client: WebClient | None = None, clock: Any = None,
                  console: Any = None) -> tuple[LeadService, WebClient | None]:
    if settings.slack_enabled:
        client = client or WebClient(token=settings.bot_token, base_url=settings.slack_api_url or
                                     "https://slack.com/api/", retry_handlers=[ConnectionErrorRetryHandler()])
        notifier: Any = SlackNotifier(client)
    else:
        notifier = ConsoleNotifier(console or sys.stderr)
    kwargs = {"clock": clock} if clock else {}
    service = LeadService(settings.db, settings.rules, notifier=notifier, **kwargs)
    notifier.bind(service)
    channels = ChannelSender(settings.channels or ChannelSettings(), service.store, console or sys.stderr)
    service.dispatcher.add(channels)
    return service, client


def build_asgi(settings: Settings, service: LeadService, client: WebClient | None,
               run_worker: bool = True, interval: float = 1.0) -> Starlette:
    bolt = build_app(settings, client, service) if settings.slack_enabled and client else None
    stop = threading.Event()

    async def events(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse({"error": f"body larger than {settings.max_body_bytes} bytes"}, 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                return JSONResponse({"error": f"body larger than {settings.max_body_bytes} bytes"}, 413)
        problem = _authenticate(settings, request, body)
        if problem:
            return JSONResponse({"error": problem}, 401, headers={"WWW-Authenticate": "Bearer"})
        try:
            parsed = loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            await run_in_threadpool(_dead_letter, service, body, f"not JSON: {exc}")
            return JSONResponse({"error": f"not JSON: {exc}"}, 400)
        items = parsed if isinstance(parsed, list) else [parsed]
        if len(items) > settings.max_batch:
            return JSONResponse({"error": f"at most {settings.max_batch} events per request"}, 413)
        results = await run_in_threadpool(_apply_all, service, items)
        service.wake.set()
        status = 200 if all(r["status"] != "rejected" for r in results) else (422 if len(items) > 1 or
                                                                              isinstance(parsed, list) else 400)
        if isinstance(parsed, list):
            return JSONResponse({"results": results}, status)
        return JSONResponse(results[0], status)

    async def slack(request: Request) -> Response:
        if bolt is None:
            return JSONResponse({"error": "Slack is not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)"},
                                503)
        body = (await request.body()).decode("utf-8")
        bolt_request = BoltRequest(body=body, query=request.url.query, headers=dict(request.headers))
        resp = await run_in_threadpool(bolt.dispatch, bolt_request)
        headers = {k: v[0] for k, v in resp.headers.items() if v}
        return Response(content=resp.body, status_code=resp.status, headers=headers)

    async def health(request: Request) -> Response:
        pending = await run_in_threadpool(lambda: service.store.conn.execute(
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()[0])
        return JSONResponse({"ok": True, "rules_version": service.pipeline.version, "outbox_pending": pending,
                             "slack": bolt is not None,
                             "rule_problems": [f"{p.location}: {p.code}: {p.message}" for p in service.rule_problems]})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        worker = None
        if run_worker:
            worker = threading.Thread(target=service.run, args=(stop, interval), name="leadflow-worker", daemon=True)
            worker.start()
        try:
            yield
        finally:
            stop.set()
            service.wake.set()
            if worker:
                worker.join(timeout=5)

    return Starlette(routes=[Route("/v1/events", events, methods=["POST"]),
                             Route("/slack/events", slack, methods=["POST"]),
                             Route("/healthz", health, methods=["GET"])], lifespan=lifespan)


def _authenticate(settings: Settings, request: Request, body: bytes) -> str | None:
    if not settings.webhook_token and not settings.webhook_secret:
        return None
    if settings.webhook_token:
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {settings.webhook_token}".encode()):
            return None
    if settings.webhook_secret:
        given = request.headers.get("x-leadflow-signature", "")
        want = "sha256=" + hmac.new(settings.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(given.encode(), want.encode()):
            return None
    return "missing or wrong credentials: send 'Authorization: Bearer TOKEN' or 'X-Leadflow-Signature: sha256=HMAC'"


def _apply_all(service: LeadService, items: list) -> list[dict]:
    out = []
    for item in items:
        outcome = service.pipeline.apply(item, raw=json.dumps(item, default=str), source="webhook")
        entry = {"id": outcome.event_id or (item.get("id") if isinstance(item, dict) else None), "status": outcome.status}
        if outcome.status == "rejected":
            entry.update(field=outcome.field, reason=outcome.reason)
        elif outcome.decision and outcome.decision.transitions:
            entry["stage"] = outcome.decision.transitions[-1]["to"]
        out.append(entry)
    return out


def _dead_letter(service: LeadService, body: bytes, reason: str) -> None:
    with service.store.transaction():
        service.store.dead_letter(body.decode("utf-8", "replace"), reason, "", "webhook", None)


def serve(settings: Settings) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service, client = build_service(settings)
    if not settings.webhook_token and not settings.webhook_secret:
        log.warning("the event webhook accepts unauthenticated requests: set LEADFLOW_WEBHOOK_TOKEN")
    if not settings.slack_enabled:
        log.warning("Slack is not configured: SQL cards go to this log; decide with `leadflow sql accept|reject`")
    uvicorn.run(build_asgi(settings, service, client), host=settings.host, port=settings.port, log_level="info")
