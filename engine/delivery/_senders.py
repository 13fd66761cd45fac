"""Nurture messages leaving the building: e-mail over SMTP and signed outbound webhooks.

Settings come from the environment when the service starts (never at import):
LEADFLOW_SMTP_HOST, LEADFLOW_SMTP_PORT, LEADFLOW_SMTP_USER, LEADFLOW_SMTP_PASSWORD,
LEADFLOW_SMTP_TLS (starttls|ssl|none), LEADFLOW_SMTP_FROM; LEADFLOW_NURTURE_WEBHOOK_URL and
LEADFLOW_NURTURE_WEBHOOK_SECRET. Without them messages are written to the log instead.
Per-lead opt-outs are checked at send time: a `do_not_email` attribute (true, yes) or an
`email_unsubscribed` event stops e-mail, whatever the track says.

The recipient is the lead's `email` attribute and must be exactly one address: several addresses
would turn the step into a relay, so anything else (a list, a display name with a comma, a line
break, a number) fails the step permanently with the reason, as does a line break in any header:
anything `str.splitlines()` splits on (CR, LF, NEL `\x85`, the separators `\x1c`-`\x1e`, U+2028,
U+2029), any other control character, or a lone surrogate. Once the server has taken a message it is
delivered: a failed goodbye (QUIT) afterwards is logged, never retried (that would send it again).
Outgoing webhooks are signed over `<timestamp>.<body>` so a captured request cannot be replayed
later: `X-Leadflow-Timestamp: <unix seconds>`, `X-Leadflow-Signature: sha256=HEX`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Callable, Mapping, TextIO

from leadflow.core import sign
from leadflow.rules import LeadState
from leadflow.store import Store

from ._failures import NETWORK_TIMEOUT, DeliveryError, http_failure

log = logging.getLogger("leadflow.channels")
OPT_OUT = ("do_not_email", "email_opt_out", "unsubscribed")


@dataclass
class ChannelSettings:
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_tls: str = "none"
    smtp_from: str = "leadflow@localhost"
    webhook_url: str | None = None
    webhook_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ChannelSettings":
        return cls(env.get("LEADFLOW_SMTP_HOST") or None, int(env.get("LEADFLOW_SMTP_PORT") or 25),
                   env.get("LEADFLOW_SMTP_USER") or None, env.get("LEADFLOW_SMTP_PASSWORD") or None,
                   (env.get("LEADFLOW_SMTP_TLS") or "none").lower(), env.get("LEADFLOW_SMTP_FROM") or
                   "leadflow@localhost", env.get("LEADFLOW_NURTURE_WEBHOOK_URL") or None,
                   env.get("LEADFLOW_NURTURE_WEBHOOK_SECRET") or None)


def opted_out(state: LeadState | None, unsubscribed: bool) -> str | None:
    for key in OPT_OUT:
        value = (state.attrs if state else {}).get(key)
        if value is True or (isinstance(value, str) and value.strip().lower() in ("yes", "true", "y", "1")):
            return f"{key} is {value}"
    return "unsubscribed by event" if unsubscribed else None


# Unicode Cc (C0, DEL, C1 with NEL), Zl, Zp: every line break str.splitlines() knows and every control
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NAMED = re.compile(r"^([^<>]*)<([^<>]*)>$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def recipient(value: Any) -> Address:
    """The one address a lead's `email` attribute holds (`ann@acme.example` or `Ann <ann@acme.example>`).

    Raises DeliveryError('bad_address') for anything else: several addresses, a comma or semicolon
    anywhere (also inside a display name), a line break or control character, text that does not
    parse as an RFC 5322 address, a domain without a dot. A light syntax check; no DNS.
    """
    if not isinstance(value, str):
        raise DeliveryError("bad_address", f"the email attribute is {type(value).__name__}, not text")
    text = value.strip()
    if not text:
        raise DeliveryError("bad_address", "the email attribute is empty")
    if _CONTROL.search(text):
        raise DeliveryError("bad_address", "the email attribute holds a line break or control character")
    if "," in text or ";" in text:
        raise DeliveryError("bad_address", "the email attribute holds more than one address (a comma or semicolon)")
    named = _NAMED.match(text)
    name, spec = (named.group(1).strip().strip('"').strip(), named.group(2).strip()) if named else ("", text)
    if any(c in name for c in '"\\@'):
        raise DeliveryError("bad_address", "the display name holds a quote, a backslash or an @")
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise DeliveryError("bad_address", f"not one valid e-mail address: {exc}") from None
    domain = address.domain
    labels = domain.split(".")
    try:
        ascii_labels = [label.encode("idna").decode("ascii") for label in labels]
    except UnicodeError:
        ascii_labels = []
    if not address.username or len(labels) < 2 or not all(_LABEL.match(label) for label in ascii_labels) \
            or not ascii_labels or not address.username.isascii():
        raise DeliveryError("bad_address", f"'{spec}' is not a usable address (domain with a dot, ASCII local part)")
    return Address(display_name=name, username=address.username, domain=".".join(ascii_labels))


def header_value(name: str, value: Any) -> str:
    """A header value as text; a line break, a control character or a lone surrogate in it is a
    permanent failure."""
    text = "" if value is None else str(value)
    if _CONTROL.search(text) or len(text.splitlines()) > 1:
        raise DeliveryError("bad_header", f"the {name} holds a line break or control character")
    if _SURROGATE.search(text):
        raise DeliveryError("bad_header", f"the {name} holds text that cannot be encoded (a lone surrogate)")
    return text


def _set_header(msg: EmailMessage, header: str, value: Any) -> None:
    """Set a header; whatever the e-mail library refuses in it (a ValueError, or the IndexError its
    address parser raises for text such as `<`) is a permanent `bad_header`."""
    try:
        msg[header] = value
    except (ValueError, TypeError, IndexError, HeaderParseError) as exc:
        raise DeliveryError("bad_header", f"the {header} header is refused: {exc}") from None


def _set_sender(msg: EmailMessage, value: str) -> None:
    """The From header: one address with a mailbox. Python 3.11's parser raises on text such as `<`
    while 3.13 reads it as the null sender `<>`, so the check is ours, the same on every version."""
    _set_header(msg, "From", header_value("sender address", value))
    addresses = getattr(msg["From"], "addresses", ())
    if len(addresses) != 1 or "@" not in addresses[0].addr_spec:
        raise DeliveryError("bad_header", "the From header is refused: the sender address must be one address "
                                          "such as leadflow@example.com (LEADFLOW_SMTP_FROM)")


class ChannelSender:
    """Delivers `email` and `webhook` outbox rows (a notifier for the outbox dispatcher)."""

    kinds = ("email", "webhook")

    def __init__(self, settings: ChannelSettings, store: Store, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.store = store
        self.stream = stream
        self.clock = clock  # wall time for webhook timestamps (receivers compare it with theirs)

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict:
        return self._email(lead, payload, key) if kind == "email" else self._webhook(lead, payload, key)

    def _email(self, lead: str, payload: dict, key: str) -> dict:
        state = self.store.load_state(lead)
        unsubscribed = bool(self.store.event_times(lead, {"email_unsubscribed"}))
        why = opted_out(state, unsubscribed)
        if why:
            return {"skipped": why}
        to = (state.attrs.get("email") if state else None) or payload.get("to")
        if to is None or to == "":
            return {"skipped": "the lead has no email attribute"}
        address = recipient(to)
        s = self.settings
        msg = EmailMessage()
        _set_sender(msg, s.smtp_from)
        _set_header(msg, "To", address)
        _set_header(msg, "Subject", header_value("subject", payload.get("subject") or "(no subject)"))
        # the same step always carries the same Message-ID: a resend after a crash is recognisably a copy
        _set_header(msg, "Message-ID", f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@leadflow>")
        _set_header(msg, "X-Leadflow-Key", header_value("key", key))
        text = str(payload.get("text") or "")
        if _SURROGATE.search(text):
            raise DeliveryError("bad_payload", "the message text holds a lone surrogate (it cannot be encoded)")
        msg.set_content(text)
        if not s.smtp_host:
            print(f"[email] to {address.addr_spec}: {msg['Subject']}", file=self.stream, flush=True)
            return {"to": address.addr_spec, "logged": True}
        smtp_class = smtplib.SMTP_SSL if s.smtp_tls == "ssl" else smtplib.SMTP
        smtp = smtp_class(s.smtp_host, s.smtp_port, timeout=NETWORK_TIMEOUT)
        try:
            if s.smtp_tls == "starttls":
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            # the envelope names the one recipient: never whatever the headers might add up to
            smtp.send_message(msg, from_addr=s.smtp_from, to_addrs=[address.addr_spec])
        except BaseException:
            smtp.close()
            raise
        _goodbye(smtp)  # not `with`: its QUIT raises on an odd reply, after the server took the message
        return {"to": address.addr_spec, "message_id": msg["Message-ID"]}

    def _webhook(self, lead: str, payload: dict, key: str) -> dict:
        s = self.settings
        try:
            body = json.dumps({"key": key, "lead": lead, **payload}, sort_keys=True, allow_nan=False).encode()
        except (ValueError, TypeError) as exc:
            raise DeliveryError("bad_payload", f"the webhook body cannot be built: {exc}") from None
        if not s.webhook_url:
            print(f"[webhook] {lead}: {payload.get('subject') or str(payload.get('text', ''))[:60]}", file=self.stream,
                  flush=True)
            return {"logged": True}
        headers = {"Content-Type": "application/json", "Idempotency-Key": header_value("key", key)}
        if s.webhook_secret:  # X-Leadflow-Timestamp and X-Leadflow-Signature over "<timestamp>." + body
            headers.update(sign(s.webhook_secret, body, now=self.clock()))
        request = urllib.request.Request(s.webhook_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT) as resp:
                return {"status": resp.status}
        except urllib.error.HTTPError as exc:  # the receiver answered, but not 2xx
            raise http_failure(exc.code, exc.headers.get("Retry-After") if exc.headers else None) from None


def _goodbye(smtp: smtplib.SMTP) -> None:
    """QUIT and close; a server that answers QUIT oddly or drops the line changes nothing sent."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError) as exc:
        log.info("SMTP goodbye failed (the message, if sent, stays sent): %s: %s", type(exc).__name__, exc)
    finally:
        smtp.close()
