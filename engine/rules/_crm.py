"""The link from a lead to its record in the CRM: `crm: { record_url: TEMPLATE }` in the rule files.

The template is the marketer's, the values are the lead's, and lead attributes come from anyone who
can send an event or an import row. So the template is checked when the rules load (http or https,
a fixed host, placeholders only after the host, ASCII, no stray braces), and every value is
percent-encoded whole (`/`, `?`, `#`, `@` and `:` included) when the link is made: an attribute can
change which record the link opens, never which site or scheme. A lead without the attribute (or
with an empty, boolean or nested value) gets no link rather than a link to the wrong place.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from leadflow.core import Location, Problem

from ._conditions import lookup

MAX_URL_LENGTH = 3000  # Slack's limit for a button's url; a longer link is not shown
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class RecordUrl:
    """A checked URL template: `{name}` is the lead's attribute `name` (dotted paths read nested ones)."""

    template: str
    fields: tuple[str, ...]

    def url(self, attributes: dict) -> str | None:
        """The lead's record URL, or None when an attribute it needs is missing or unusable, or the
        result would be longer than Slack accepts."""
        values = {}
        for name in self.fields:
            text = _text(lookup(attributes, name))
            if text is None:
                return None
            try:
                values[name] = quote(text, safe="")
            except UnicodeEncodeError:  # a lone surrogate: no link rather than a wrong one
                return None
        url = PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)
        if len(url) > MAX_URL_LENGTH or _origin(url) != _origin(self.template):
            return None  # the second test cannot fail after quoting; it is the invariant, kept explicit
        return url


def parse_crm(value: Any, at: Callable[..., Location], problems: list[Problem]) -> RecordUrl | None:
    """The checked `crm` section (the schema walk has already checked its keys and types)."""
    template = value.get("record_url") if isinstance(value, dict) else None
    if not isinstance(template, str):
        return None
    found = template_problems(template)
    where = at(("crm", "record_url"))
    problems += [Problem(code, message, where, hint) for code, message, hint in found]
    if found:
        return None
    return RecordUrl(template, tuple(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(template))))


def template_problems(template: str) -> list[tuple[str, str, str]]:
    """What is wrong with a record URL template, as (code, message, hint)."""
    if not template.isascii() or any(c.isspace() or not c.isprintable() for c in template):
        return [("BAD_CRM_URL", "the record URL has spaces, control or non-ASCII characters",
                 "percent-encode them (a space is %20)")]
    if PLACEHOLDER.sub("", template).count("{") or PLACEHOLDER.sub("", template).count("}"):
        return [("BAD_CRM_URL", "a '{' or '}' that is not a placeholder",
                 "placeholders are attribute names in braces, e.g. {hubspot_id}")]
    fields = PLACEHOLDER.findall(template)
    if not fields:
        return [("BAD_CRM_URL", "the record URL has no placeholder, so every lead would open the same page",
                 "name the attribute holding the CRM's id, e.g. .../record/0-1/{hubspot_id}")]
    try:
        urlsplit(PLACEHOLDER.sub("a", template))
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        return [("BAD_CRM_URL", f"the record URL is not a valid URL: {exc}", "write it as https://HOST/PATH")]
    scheme, host = _origin(PLACEHOLDER.sub("a", template))
    if scheme not in SCHEMES:
        return [("CRM_URL_SCHEME", f"the record URL must start with http:// or https://, not "
                 f"'{scheme + ':' if scheme else template[:12]}'", "write the full address, e.g. https://app.hubspot.com/...")]
    if not host:
        return [("BAD_CRM_URL", "the record URL has no host", "write it as https://HOST/PATH")]
    if _origin(PLACEHOLDER.sub("b", template)) != (scheme, host):
        return [("CRM_URL_HOST", "a placeholder is part of the host: a lead's attribute could send the rep to "
                 "another site", "keep the host fixed and put placeholders in the path or the query")]
    if len(PLACEHOLDER.sub("", template)) > MAX_URL_LENGTH:
        return [("CRM_URL_TOO_LONG", f"the record URL is over {MAX_URL_LENGTH} characters, Slack's limit", "")]
    return []


def _origin(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ("", "")
    return parts.scheme.lower(), parts.netloc.lower()


def _text(value: Any) -> str | None:
    """An attribute as the text of an id, or None if it cannot be one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)  # 12345.0 from a spreadsheet is 12345
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
