"""Nurture messages leaving the building: e-mail over SMTP and signed outbound webhooks.

Settings come from the environment when the service starts (never at import):
LEADFLOW_SMTP_HOST, LEADFLOW_SMTP_PORT, LEADFLOW_SMTP_USER, LEADFLOW_SMTP_PASSWORD,
LEADFLOW_SMTP_TLS (starttls|ssl|none), LEADFLOW_SMTP_FROM; LEADFLOW_NURTURE_WEBHOOK_URL and
LEADFLOW_NURTURE_WEBHOOK_SECRET. Without them messages are written to the log instead.
Per-lead opt-outs are checked at send time: a `do_not_email` attribute (true, yes) or an
`email_unsubscribed` event stops e-mail, whatever the track says.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Mapping

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


def opted_out(state: Any, unsubscribed: bool) -> str | None:
    for key in OPT_OUT:
        value = (state.attrs if state else {}).get(key)
        if value is True or (isinstance(value, str) and value.strip().lower() in ("yes", "true", "y", "1")):
            return f"{key} is {value}"
    return "unsubscribed by event" if unsubscribed else None


class ChannelSender:
    """Delivers `email` and `webhook` outbox rows (a notifier for the outbox dispatcher)."""

    kinds = ("email", "webhook")

    def __init__(self, settings: ChannelSettings, store: Any, stream: Any = None):
        self.settings = settings
        self.store = store
        self.stream = stream

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool) -> dict:
        return self._email(lead, payload, key) if kind == "email" else self._webhook(lead, payload, key)

    def _email(self, lead: str, payload: dict, key: str) -> dict:
        state = self.store.load_state(lead)
        unsubscribed = bool(self.store.event_times(lead, {"email_unsubscribed"}))
        why = opted_out(state, unsubscribed)
        if why:
            return {"skipped": why}
        to = (state.attrs.get("email") if state else None) or payload.get("to")
        if not to:
            return {"skipped": "the lead has no email attribute"}
        s = self.settings
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = s.smtp_from, to, payload.get("subject") or "(no subject)"
        # the same step always carries the same Message-ID: a resend after a crash is recognisably a copy
        msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@leadflow>"
        msg["X-Leadflow-Key"] = key
        msg.set_content(payload.get("text") or "")
        if not s.smtp_host:
            print(f"[email] to {to}: {msg['Subject']}", file=self.stream, flush=True)
            return {"to": to, "logged": True}
        smtp_class = smtplib.SMTP_SSL if s.smtp_tls == "ssl" else smtplib.SMTP
        with smtp_class(s.smtp_host, s.smtp_port, timeout=30) as smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            smtp.send_message(msg)
        return {"to": to, "message_id": msg["Message-ID"]}

    def _webhook(self, lead: str, payload: dict, key: str) -> dict:
        s = self.settings
        body = json.dumps({"key": key, "lead": lead, **payload}, sort_keys=True).encode()
        if not s.webhook_url:
            print(f"[webhook] {lead}: {payload.get('subject') or payload.get('text', '')[:60]}", file=self.stream,
                  flush=True)
            return {"logged": True}
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if s.webhook_secret:
            headers["X-Leadflow-Signature"] = "sha256=" + hmac.new(s.webhook_secret.encode(), body,
                                                                   hashlib.sha256).hexdigest()
        request = urllib.request.Request(s.webhook_url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:  # non-2xx raises and is retried
            return {"status": resp.status}
