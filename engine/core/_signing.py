"""Signed HTTP requests with a timestamp: one scheme for the event webhook and outgoing webhooks.

A signature over the body alone can be replayed forever by whoever captures one request. Here the
signer adds `X-Leadflow-Timestamp` (unix seconds) and signs `"<timestamp>." + body`:

    X-Leadflow-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>." + raw body))

and the receiver refuses timestamps more than `TOLERANCE` seconds away from its clock in either
direction (Slack and Stripe use the same five-minute window), so a captured request is worthless
after five minutes. Comparison is constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time

TIMESTAMP_HEADER = "X-Leadflow-Timestamp"
SIGNATURE_HEADER = "X-Leadflow-Signature"
TOLERANCE = 300  # seconds, either direction
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Leadflow-Signature` value for this body sent at this time."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers a sender adds to a request whose raw body is `body`."""
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(secret: str, body: bytes, timestamp: str | None, given: str | None, now: float | None = None,
           tolerance: int = TOLERANCE) -> str | None:
    """None when the request is authentic and fresh, else the reason it is not (safe to send back)."""
    if not given:
        return f"missing {SIGNATURE_HEADER}"
    if not timestamp:
        return f"missing {TIMESTAMP_HEADER} (unix seconds when the request was signed)"
    if not _UNIX_SECONDS.fullmatch(timestamp.strip()):
        return f"{TIMESTAMP_HEADER} must be unix seconds (digits only)"
    ts = int(timestamp.strip())
    want = signature(secret, timestamp.strip(), body)  # the header as sent: a sender signs what it writes
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), want.encode("ascii")):
        return (f"{SIGNATURE_HEADER} does not match: expected sha256=HEX(HMAC-SHA256(secret, "
                f"'<{TIMESTAMP_HEADER}>.' + raw body))")
    skew = (time.time() if now is None else now) - ts
    if abs(skew) > tolerance:
        return (f"{TIMESTAMP_HEADER} is {abs(int(skew))} s {'old' if skew > 0 else 'in the future'}; at most "
                f"{tolerance} s either way is accepted (sign each request when sending it; check the clock)")
    return None
