"""Service settings, read from the environment only when asked (never at import)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


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
    channels: object = None  # engine.channels.ChannelSettings for e-mail and outbound webhooks

    @property
    def slack_enabled(self) -> bool:
        return bool(self.bot_token and self.signing_secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> "Settings":
        values = {
            "bot_token": env.get("SLACK_BOT_TOKEN") or None,
            "signing_secret": env.get("SLACK_SIGNING_SECRET") or None,
            "slack_api_url": env.get("LEADFLOW_SLACK_API_URL") or None,
            "webhook_token": env.get("LEADFLOW_WEBHOOK_TOKEN") or None,
            "webhook_secret": env.get("LEADFLOW_WEBHOOK_SECRET") or None,
        }
        from engine.channels import ChannelSettings

        values["channels"] = ChannelSettings.from_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
