"""The one place where text the bot did not write becomes Slack mrkdwn.

Slack reads `<...>` in mrkdwn (and in a message's `text`) as control sequences: `<!channel>` and
`<!here>` notify everyone, `<@U123>` pings a person, `<https://evil|Open CRM>` shows a link under a
false label. Lead data comes from web forms, CRMs and webhooks, so every lead-derived string (ids,
attributes, event data, comments, stories) goes through `escape` or `code` before it is placed in a
message; only `mention` produces a live `<@...>`, and only for a well-formed Slack user id.
Slack asks for exactly three entities (&amp; &lt; &gt;); nothing else needs escaping. Plain-text
objects (headers, buttons, modal titles) are shown literally by Slack and are not escaped.
"""
from __future__ import annotations

import re

_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
# In a code span a backtick would end the span and a line break would leave it; both are replaced
# with look-alikes so the span stays one span and what follows it cannot become markup.
_CODE = str.maketrans({"`": "ˋ", "\n": " ", "\r": " "})


def escape(value: object) -> str:
    """`value` as mrkdwn text that Slack shows literally (no mentions, links or broadcasts)."""
    return str(value).translate(_ENTITIES)


def code(value: object) -> str:
    """`value` in a code span: escaped, and unable to close the span early."""
    return "`" + escape(value).translate(_CODE) + "`"


def mention(user_id: object) -> str:
    """A live `<@U...>` for a real Slack user id; anything else is shown as escaped text."""
    text = str(user_id or "")
    return f"<@{text}>" if _USER_ID.fullmatch(text) else escape(text)
