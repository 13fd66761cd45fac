"""The `webhooks:` section: who outside leadflow hears about its decisions (a CRM, Zapier, n8n).

Each subscription names the environment variables that hold its URL and its signing secret, never
the values: rule files live in git, URLs with tokens in them and secrets do not. Whether those
variables are set is a question for the running service (it logs a subscription it cannot reach and
keeps its deliveries in the outbox until they are set); a rule file is judged only on what it says.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# What a subscription can ask for; `stage_changed` covers every row of a lead's stage history.
KINDS = ("stage_changed", "sql_assigned", "sql_accepted", "sql_rejected", "sql_reassigned", "sql_expired")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Subscription:
    name: str
    url_env: str  # the environment variable holding the URL
    secret_env: str  # the environment variable holding the HMAC secret requests are signed with
    kinds: tuple[str, ...]
    description: str = ""


Report = Callable[[str, str, tuple, str], None]  # code, message, path, hint


def parse_webhooks(value: Any, report: Report) -> list[Subscription]:
    """The subscriptions of a `webhooks:` section already walked against the schema; reports what the
    schema cannot see: a URL where a variable name belongs, a name used twice, a kind listed twice."""
    out: list[Subscription] = []
    seen: set[str] = set()
    for i, item in enumerate(value if isinstance(value, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        ok = True
        for key in ("url_env", "secret_env"):
            name = item.get(key)
            if isinstance(name, str) and not ENV_NAME.match(name):
                looks_like_url = "://" in name or name.startswith("/")
                report("BAD_ENV_NAME", f"{key} names an environment variable, not '{name[:60]}'", ("webhooks", i, key),
                       "put the value in an environment variable (e.g. CRM_WEBHOOK_URL) and write its name here; "
                       "URLs and secrets stay out of git" if looks_like_url else
                       "letters, digits and _; not starting with a digit")
                ok = False
        kinds = item.get("kinds")
        kinds = [k for k in kinds if isinstance(k, str)] if isinstance(kinds, list) else []
        for j, kind in enumerate(kinds):
            if kind in kinds[:j]:
                report("DUPLICATE_KIND", f"kind '{kind}' is listed twice", ("webhooks", i, "kinds", j), "")
        if item["name"] in seen:
            report("DUPLICATE_ID", f"webhook name '{item['name']}' appears twice", ("webhooks", i, "name"),
                   "each subscription needs its own name: deliveries are keyed by it")
            ok = False
        seen.add(item["name"])
        if ok and isinstance(item.get("url_env"), str) and isinstance(item.get("secret_env"), str) and kinds:
            out.append(Subscription(item["name"], item["url_env"], item["secret_env"], tuple(dict.fromkeys(kinds)),
                                    str(item.get("description", ""))))
    return out

