"""Why a delivery failed, and whether trying again can help.

Every failure of an outbox row is turned into a `DeliveryError` with a stable code, and the code's
class in `CLASSES` decides what the dispatcher does: a PERMANENT failure (a bad address, a refused
header, a channel that does not exist, a payload Slack or the receiver refuses) fails the row at once
with its reason, because sending the same thing again gives the same answer; a TRANSIENT one (the
network, a timeout, a 5xx, a 429, an SMTP 4xx) is retried with backoff, a 429 after its Retry-After.
Anything nobody foresaw (a bug, an odd answer) is retried like a transient failure and, after about
four hours, failed: nothing is thrown away on a guess.

Notifiers raise `DeliveryError` themselves for what only they can tell (an address they will not
use, a Slack error code); `classify` maps the standard library's network, SMTP and HTTP exceptions.
This module imports no Slack code: Slack answers reach it as (HTTP status, error code) pairs.
"""
from __future__ import annotations

import email.utils
import math
import smtplib
import socket
import time
import urllib.error
from dataclasses import dataclass

PERMANENT = "permanent"
TRANSIENT = "transient"
NETWORK_TIMEOUT = 30  # seconds any one network call of a delivery may take (Slack, SMTP, webhooks)
MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond this waits only this long: a row never parks for days

# The table: code -> class. Codes not listed (new Slack errors, say) are transient.
CLASSES: dict[str, str] = {
    "bad_address": PERMANENT,        # not exactly one valid e-mail address
    "bad_header": PERMANENT,         # CR/LF or a control character in a header (subject, ...)
    "bad_payload": PERMANENT,        # the message cannot be built (unreadable payload, Block Kit limits)
    "missing_field": PERMANENT,      # a placeholder with no value and no default
    "smtp_refused": PERMANENT,       # SMTP 5xx for the recipient or the message
    "smtp_busy": TRANSIENT,          # SMTP 4xx: try again later
    "http_refused": PERMANENT,       # HTTP 4xx from an outgoing webhook, other than 408 and 429
    "http_busy": TRANSIENT,          # HTTP 408 or 5xx
    "http_unexpected": TRANSIENT,    # a redirect (3xx): the URL needs a look
    "rate_limited": TRANSIENT,       # HTTP 429 (Slack or a webhook): after Retry-After
    "network": TRANSIENT,            # connection refused or reset, DNS, TLS
    "timeout": TRANSIENT,
    "unexpected": TRANSIENT,         # an exception nobody classified: retried, then failed
    "not_configured": TRANSIENT,     # a webhook's URL or secret variable is not set: waits until it is
    "bad_url": PERMANENT,            # a webhook URL that is not http(s)
    "no_subscription": PERMANENT,    # the rule files dropped the webhook a row was queued for
    "slack:channel_not_found": PERMANENT,
    "slack:not_in_channel": PERMANENT,
    "slack:is_archived": PERMANENT,
    "slack:invalid_blocks": PERMANENT,
    "slack:invalid_blocks_format": PERMANENT,
    "slack:invalid_arguments": PERMANENT,
    "slack:msg_too_long": PERMANENT,
    "slack:no_text": PERMANENT,
    "slack:too_many_attachments": PERMANENT,
    "slack:invalid_metadata_format": PERMANENT,
    "slack:metadata_too_large": PERMANENT,
    "slack:user_not_found": PERMANENT,
    "slack:cannot_dm_bot": PERMANENT,
    "slack:message_not_found": PERMANENT,
    "slack:cant_update_message": PERMANENT,
    "slack:edit_window_closed": PERMANENT,
}


class DeliveryError(Exception):
    """A failed delivery with its code; `retry_after` (seconds) when the other side said when."""

    def __init__(self, code: str, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return CLASSES.get(self.code, TRANSIENT) == PERMANENT

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class RetryLater(DeliveryError):
    """Not a failure: try again after `seconds` (rate limits, or a card that is not posted yet)."""

    def __init__(self, seconds: float, message: str = ""):
        super().__init__("rate_limited", message or f"retry in {seconds}s", seconds)
        self.seconds = seconds


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now, between 0 and
    MAX_RETRY_AFTER (an hour); None (the usual backoff) when absent, unreadable or not finite
    (`inf`, `nan`, `1e400`), so a hostile or broken answer can neither park a row forever nor
    hide it from the operator."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def http_failure(status: int, retry_after: str | None = None) -> DeliveryError:
    """An outgoing webhook answered `status` (not 2xx)."""
    if status == 429:
        return DeliveryError("rate_limited", "HTTP 429", retry_after_seconds(retry_after))
    if 400 <= status < 500 and status != 408:
        return DeliveryError("http_refused", f"HTTP {status}")
    if status < 400:  # a redirect or an odd answer: the URL needs a look; retried meanwhile
        return DeliveryError("http_unexpected", f"HTTP {status}")
    return DeliveryError("http_busy", f"HTTP {status}", retry_after_seconds(retry_after) if status == 503 else None)


def slack_failure(status: int, error: str | None, retry_after: str | None = None) -> DeliveryError:
    """Slack's Web API answered `status` with `{"ok": false, "error": error}`."""
    error = error or "unknown_error"
    if status == 429 or error == "ratelimited":
        return RetryLater(retry_after_seconds(retry_after) or 1.0, "Slack rate limit")
    if status >= 500:
        return DeliveryError("http_busy", f"Slack answered HTTP {status} ({error})")
    return DeliveryError(f"slack:{error}", f"Slack said {error}")


def smtp_failure(code: int, what: str) -> DeliveryError:
    return DeliveryError("smtp_refused" if 500 <= code < 600 else "smtp_busy", f"SMTP {code} {what}")


def classify(exc: BaseException) -> DeliveryError:
    """The DeliveryError for any exception raised while delivering one row."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()] or [550]
        refused = ", ".join(f"{rcpt} ({code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg})"
                            for rcpt, (code, msg) in exc.recipients.items())
        return smtp_failure(min(codes), f"recipient refused: {refused}"[:300])
    if isinstance(exc, smtplib.SMTPDataError):  # the server refused this message (size, content)
        msg = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return smtp_failure(exc.smtp_code, msg[:300])
    if isinstance(exc, urllib.error.HTTPError):
        return http_failure(exc.code, exc.headers.get("Retry-After") if exc.headers else None)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DeliveryError("timeout", str(exc) or "timed out")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, (TimeoutError, socket.timeout)):
        return DeliveryError("timeout", str(exc.reason) or "timed out")
    if isinstance(exc, (urllib.error.URLError, OSError, smtplib.SMTPException)):
        # refused/reset connections, DNS, TLS; SMTP sender or login refused (a setting to fix, then it works)
        return DeliveryError("network", f"{type(exc).__name__}: {exc}"[:300])
    return DeliveryError("unexpected", f"{type(exc).__name__}: {exc}"[:300])


@dataclass
class Backoff:
    """When to try a transient failure again: doubling from 2 s up to 5 minutes, about four hours in all."""

    max_attempts: int = 60
    cap: float = 300.0

    def delay(self, attempts: int, error: DeliveryError) -> float:
        wait = error.retry_after
        if wait is not None and math.isfinite(wait):  # notifiers' own RetryLater too: at most an hour
            return min(max(0.0, wait), MAX_RETRY_AFTER)
        return min(2.0 ** attempts, self.cap)

    def give_up(self, attempts: int, error: DeliveryError) -> bool:
        return not isinstance(error, RetryLater) and attempts >= self.max_attempts
