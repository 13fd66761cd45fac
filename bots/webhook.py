"""`POST /v1/events`, the event webhook, as a plain ASGI endpoint; and who may call it.

It is the one route under load (a CRM sends one request per event), so it skips Starlette: the
router, three middleware layers, `Request` and `JSONResponse` were about a fifth of the server's
interpreter time in a profile of `leadflow bench --webhook` (every `send` went through four
wrappers); without them the HTTP side's share of the GIL fell from 42% to 24%. The rate itself did
not move measurably then: the group-commit writer and the store's lock were the limit (README,
"Measured performance"), until the writer moved to a process of its own (engine/service/_writer.py).
The behaviour is the route's as before: the same checks in the same order, the same answers.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from leadflow.core import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from leadflow.intake import decode_body, split_body
from leadflow.service import EventWriter, LeadService, Receipt, WriterUnavailable

from .config import Settings, is_loopback

log = logging.getLogger("leadflow.server")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_JSON = (b"content-type", b"application/json")


class EventsEndpoint:
    """One event or a JSON array of them. Each item is checked like a JSONL line (64 KB, JSON,
    fields) and applied in its own savepoint, so a bad item is answered `rejected` (or `conflict`)
    alone; the answer comes after the group transaction holding the request is committed with an
    fsync: `applied` means on disk."""

    def __init__(self, settings: Settings, service: LeadService, writer: EventWriter):
        self.settings, self.service, self.writer = settings, service, writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await answer(send, 405, {"error": "send events with POST"}, [(b"allow", b"POST")])
            return
        try:
            status, payload, extra = await self._handle(Headers(scope=scope), receive)
        except ClientDisconnect:
            return  # nobody is left to answer; nothing of the request was read whole, so nothing was kept
        await answer(send, status, payload, extra)

    async def _handle(self, headers: Headers, receive: Receive) -> tuple[int, Any, list]:
        settings, writer = self.settings, self.writer
        body = await read_capped(headers, receive, settings.max_body_bytes)
        if body is None:
            return 413, {"error": f"body larger than {settings.max_body_bytes} bytes"}, []
        problem = authenticate(settings, headers, body)
        if problem:
            return 401, {"error": problem}, [(b"www-authenticate", b"Bearer")]
        try:
            batch, items = split_body(decode_body(body))
        except ValueError as exc:
            reason = f"not JSON: {exc}"
            try:
                await asyncio.wrap_future(writer.submit_dead_letter(body.decode("utf-8", "replace"), reason))
            except Exception:  # noqa: BLE001 - the database is busy or failing: the body is not kept yet
                log.exception("malformed body not kept as a dead letter")
                return 503, {"error": f"{reason}; it could not be kept as a dead letter now (the database is "
                                      "busy): fix it, or send it again to have it kept"}, []
            return 400, {"error": reason}, []
        if len(items) > settings.max_batch:
            return 413, {"error": f"at most {settings.max_batch} events per request"}, []
        try:
            receipts = await asyncio.wrap_future(writer.submit_events(items))
        except WriterUnavailable as exc:  # it may have been committed just before the writer stopped
            log.error("events not answered: %s", exc)
            return 503, {"error": "the events could not be confirmed (the writer process is restarting); send "
                                  "them again: an event already stored is answered 'duplicate'"}, \
                [(b"retry-after", b"1")]
        except Exception:  # noqa: BLE001 - the database failed: nothing of this request was kept
            log.exception("events not stored")
            return 503, {"error": "the events could not be stored; nothing was applied, send them again"}, []
        results = [_result(r) for r in receipts]
        if any("stage" in r for r in results):  # a new SQL to route now; other work waits for the next pass
            self.service.wake.set()
        if batch:
            return (422 if any(r["status"] in ("rejected", "conflict") for r in results) else 200), \
                {"results": results}, []
        return {"rejected": 400, "conflict": 409}.get(results[0]["status"], 200), results[0], []


async def answer(send: Send, status: int, payload: Any, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A JSON answer in two ASGI messages, with its length (so the connection stays open)."""
    body = _json_bytes(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def _json_bytes(payload: Any) -> bytes:
    """UTF-8 JSON; a value orjson refuses (a lone surrogate echoed from a hostile field name, an
    integer past 64 bits) takes the standard library's path with \\u escapes, which always encodes."""
    try:
        return orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(payload, separators=(",", ":")).encode("ascii")


async def read_capped(headers: Headers, receive: Receive, limit: int) -> bytes | None:
    """The body, or None once it is larger than `limit` (a declared length is checked before
    anything is buffered). Raises ClientDisconnect if the client goes away before the end."""
    length = headers.get("content-length", "").strip()
    if length.isascii() and length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def authenticate(settings: Settings, headers: Headers, body: bytes) -> str | None:
    """None when the caller may write events (and read /healthz details), else why not.

    No credential configured means the service is on loopback (`serve` refuses otherwise) and open
    to local callers only: a request that a proxy or a browser relayed (see `_relayed`) is refused.
    A signature must be fresh (engine.signing: timestamp within five minutes), so a captured request
    cannot be replayed later."""
    if not settings.webhook_protected:
        return _relayed(headers)
    if settings.webhook_token:
        given = headers.get("authorization", "")
        if hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {settings.webhook_token}".encode()):
            return None
    if settings.webhook_secret and headers.get(SIGNATURE_HEADER):
        return verify(settings.webhook_secret, body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER))
    ways = ["'Authorization: Bearer TOKEN'"] if settings.webhook_token else []
    if settings.webhook_secret:
        ways.append(f"'{TIMESTAMP_HEADER}: UNIX_SECONDS' with '{SIGNATURE_HEADER}: sha256=HMAC(secret, "
                    "\"<timestamp>.\" + body)'")
    return "missing or wrong credentials: send " + " or ".join(ways)


_PROXY_HEADERS = ("forwarded", "via", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
                  "x-forwarded-server", "x-real-ip")


def _relayed(headers: Headers) -> str | None:
    """Why a request must not be trusted as a local caller's, or None.

    Loopback-only is the open mode's whole protection, and a reverse proxy on the same machine (the
    usual way to get the public HTTPS URL Slack needs) makes every internet caller look local. Such a
    request shows itself by a proxy header, or by a Host that is not a loopback name (a proxy passing
    the public host on, or a DNS-rebinding web page); a browser on this machine sends an Origin."""
    if any(headers.get(name) is not None for name in _PROXY_HEADERS) or not _loopback_host(headers.get("host")):
        return ("behind a proxy: set LEADFLOW_WEBHOOK_TOKEN (callers send 'Authorization: Bearer TOKEN') or "
                "LEADFLOW_WEBHOOK_SECRET; without one only local callers are served")
    if headers.get("origin") is not None:
        return "browser requests need credentials: set LEADFLOW_WEBHOOK_TOKEN or LEADFLOW_WEBHOOK_SECRET"
    return None


def _loopback_host(host: str | None) -> bool:
    """True for a missing Host (HTTP/1.0) and for a loopback address or `localhost`, with any port."""
    if host is None:
        return True
    name = host.strip()
    if name.startswith("["):  # [::1]:8080
        name = name[:name.find("]") + 1] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":")[0]
    return is_loopback(name)


def _result(receipt: Receipt) -> dict:
    """One item's answer: its status, what was wrong with it, or the stage it reached."""
    entry = {"id": receipt.event_id, "status": receipt.status}
    if receipt.status in ("rejected", "conflict"):
        entry.update(field=receipt.field, reason=receipt.reason)
    elif receipt.stage:
        entry["stage"] = receipt.stage
    return entry
