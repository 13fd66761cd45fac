"""Service settings, read from the environment only when asked (never at import)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from leadflow.delivery import ChannelSettings


WRITERS = ("process", "thread")


@dataclass
class Settings:
    db: str = "./leadflow.db"
    rules: str = "./rules"
    host: str = "127.0.0.1"
    port: int = 8080
    bot_token: str | None = None
    signing_secret: str | None = None
    slack_api_url: str | None = None  # the Web API base URL; Slack's when None
    webhook_token: str | None = None
    webhook_secret: str | None = None
    max_body_bytes: int = 1_000_000
    max_batch: int = 1000
    max_future: float = 86400.0  # seconds an event may be dated after the wall clock (LEADFLOW_MAX_FUTURE)
    max_slack_body_bytes: int = 1_000_000  # /slack/events: Slack's own payloads are far smaller
    channels: ChannelSettings | None = None  # e-mail and outbound webhooks for nurture steps
    # where the webhook's events are written: "process" (a child process, the default: the HTTP side
    # and the writer each get a core) or "thread" (one process); LEADFLOW_WRITER
    writer: str = "process"
    access_log: bool = False  # a log line per HTTP request (LEADFLOW_ACCESS_LOG=1); costs 10% of the webhook's rate

    @property
    def slack_enabled(self) -> bool:
        return bool(self.bot_token and self.signing_secret)

    @property
    def webhook_protected(self) -> bool:
        return bool(self.webhook_token or self.webhook_secret)

    def exposure_problem(self) -> str | None:
        """Why this service must not start as configured, or None.

        Without a webhook credential anyone who reaches the port can write events (and so forge
        stages and cards); that is only acceptable when nobody else can reach it: a loopback address.
        Slack needs a public HTTPS URL, so with Slack configured the service sits behind a proxy that
        makes every internet caller look local, whatever the host: a credential is required then.
        """
        if self.webhook_protected:
            return None
        how = ("Set LEADFLOW_WEBHOOK_TOKEN (callers send 'Authorization: Bearer TOKEN') or "
               "LEADFLOW_WEBHOOK_SECRET (callers sign each request), e.g. "
               "export LEADFLOW_WEBHOOK_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if self.slack_enabled:
            return ("refusing to serve with Slack configured (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET) but without "
                    "webhook credentials: Slack needs a public URL, and through the proxy that provides it anyone "
                    f"could send events to /v1/events. {how}")
        if is_loopback(self.host):
            return None
        return (f"refusing to serve on {self.host!r} without webhook credentials: anyone who can reach it could "
                f"send events. {how}; or serve on 127.0.0.1")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> "Settings":
        values = {
            "bot_token": env.get("SLACK_BOT_TOKEN") or None,
            "signing_secret": env.get("SLACK_SIGNING_SECRET") or None,
            "slack_api_url": env.get("LEADFLOW_SLACK_API_URL") or None,
            "webhook_token": env.get("LEADFLOW_WEBHOOK_TOKEN") or None,
            "webhook_secret": env.get("LEADFLOW_WEBHOOK_SECRET") or None,
        }
        values["channels"] = ChannelSettings.from_env(env)
        values["access_log"] = env.get("LEADFLOW_ACCESS_LOG", "").strip().lower() in ("1", "true", "yes", "on")
        writer = env.get("LEADFLOW_WRITER", "").strip().lower()
        if writer:
            if writer not in WRITERS:
                raise ValueError(f"LEADFLOW_WRITER: {writer!r} is not one of {', '.join(WRITERS)}")
            values["writer"] = writer
        if env.get("LEADFLOW_MAX_FUTURE"):
            from leadflow.core import parse_duration

            try:
                values["max_future"] = parse_duration(env["LEADFLOW_MAX_FUTURE"])
            except ValueError as exc:
                raise ValueError(f"LEADFLOW_MAX_FUTURE: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) and `localhost`; anything else (0.0.0.0, ::, names) is not."""
    name = (host or "").strip()
    if name.lower() == "localhost":
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
