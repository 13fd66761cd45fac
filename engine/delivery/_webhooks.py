"""Sending the CRM webhooks a rule set subscribes to (`webhooks:`): signed, idempotent POSTs.

The outbox row holds the subscription's name and the body as it was when the change was committed;
the URL and the secret are read from the environment variables the live rule files name when the
row is sent, so neither is ever stored or committed. Every request is signed, over
`"<timestamp>." + body` (`X-Leadflow-Timestamp`, `X-Leadflow-Signature: sha256=HEX`, see
leadflow.core sign) at the moment it is sent, so a retry carries a fresh timestamp; a subscription
whose secret is not set sends nothing (an unsigned request is never sent) and its rows wait, retried,
until it is. The delivery id is in the body (`delivery_id`) and in `X-Leadflow-Delivery` (and
`Idempotency-Key`): the dispatcher delivers at least once (after a crash mid-send the same request
may come again), so a receiver keeps the ids it has seen and drops repeats.

Answers follow the failure table (_failures.py): 2xx is done; 4xx other than 408 and 429 fails the
row at once (the receiver refuses it; sending it again gives the same answer); 408, 429 and 5xx are
retried with backoff, a 429 or 503 after its Retry-After. Redirects are not followed (a signed POST
is not re-sent to a place the rule files did not name): they are retried until someone fixes the URL.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Mapping

from leadflow.core import sign
from leadflow.pipeline import WEBHOOK_KIND
from leadflow.rules import RuleSet, Subscription

from ._failures import NETWORK_TIMEOUT, DeliveryError, http_failure
from ._senders import header_value

DELIVERY_HEADER = "X-Leadflow-Delivery"
KIND_HEADER = "X-Leadflow-Kind"
FORMAT = 1  # the body's format version (rules/webhook-payload.schema.json)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 - urllib's hook
        return None  # the 3xx reaches the caller as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


class SubscriptionSender:
    """Delivers `crm_webhook` outbox rows (a notifier for the outbox dispatcher)."""

    kinds = (WEBHOOK_KIND,)

    def __init__(self, rules: Callable[[], RuleSet], env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time):
        self.rules = rules  # the live rule set: a reload changes where the next delivery goes
        self.env = os.environ if env is None else env
        self.clock = clock  # wall time for the signature's timestamp (receivers compare it with theirs)

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict:
        sub = self._subscription(payload.get("subscription"))
        url, secret = self.env.get(sub.url_env) or "", self.env.get(sub.secret_env) or ""
        missing = [name for name, value in ((sub.url_env, url), (sub.secret_env, secret)) if not value]
        if missing:  # retried: the rows wait for the operator to set the variable and restart
            raise DeliveryError("not_configured", f"webhook '{sub.name}': {' and '.join(missing)} not set")
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError("bad_url", f"webhook '{sub.name}': {sub.url_env} is not an http(s) URL")
        body = payload.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("delivery_id"), str):
            raise DeliveryError("bad_payload", "the stored webhook body is not an object with a delivery_id")
        try:
            raw = json.dumps({"format": FORMAT, "subscription": sub.name, **body}, sort_keys=True,
                             allow_nan=False).encode()
        except (ValueError, TypeError) as exc:
            raise DeliveryError("bad_payload", f"the webhook body cannot be built: {exc}") from None
        did = header_value("delivery id", body["delivery_id"])
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: did, "Idempotency-Key": did,
                   KIND_HEADER: header_value("kind", body.get("kind", "")), **sign(secret, raw, now=self.clock())}
        request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=NETWORK_TIMEOUT) as resp:
                return {"status": resp.status, "delivery_id": did}
        except urllib.error.HTTPError as exc:  # the receiver answered, but not 2xx
            raise http_failure(exc.code, exc.headers.get("Retry-After") if exc.headers else None) from None

    def _subscription(self, name: object) -> Subscription:
        for sub in self.rules().webhooks:
            if sub.name == name:
                return sub
        raise DeliveryError("no_subscription", f"the rule files no longer have a webhook named '{name}'")


def unconfigured(rules: RuleSet, env: Mapping[str, str] | None = None) -> list[str]:
    """One line per subscription whose environment variables are not set (for the service's log)."""
    env = os.environ if env is None else env
    out = []
    for sub in rules.webhooks:
        missing = [n for n in (sub.url_env, sub.secret_env) if not env.get(n)]
        if missing:
            out.append(f"webhook '{sub.name}': {' and '.join(missing)} not set; its deliveries wait in the outbox")
    return out
