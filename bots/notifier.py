"""Delivering outbox rows to Slack (or, without Slack credentials, to the log).

Cards carry their outbox key in Slack message metadata. If the process died after Slack accepted a
card but before the outbox row was marked done, the retry finds the card by that key in the
conversation's history and records it instead of posting a second one.

Slack's history, replies and update methods take conversation ids, not names (`#sales-queue` gives
`channel_not_found`), so every channel named in the rules is resolved to its id once
(`conversations.list`, all pages; cached) and the id is used everywhere. A lookup that fails (an
error, a 429, a 5xx) is a transient failure and the row is retried; only a complete listing without
the name makes it a permanent `channel_not_found`. Names are looked up again after CHANNEL_TTL (an
hour), and at once when Slack answers `channel_not_found` or `is_archived` for an id found by name
(the channel was renamed or archived and another one took the name): the message goes to the
channel that has the name now, and fails only if that is the same id. Slack errors become
DeliveryErrors classified by engine.delivery.

What a message shows (the lead, its assignment, where the rep is reached, stats, a proposal) is read
through the service's read-only DeliveryView, given to the notifier when it is built.
"""
from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Callable, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackObjectFormationError

from leadflow.core import format_time
from leadflow.delivery import DeliveryError, RetryLater, slack_failure
from leadflow.reports import dashboard
from leadflow.service import Card, DeliveryView

from .blocks import decided_card, sql_card
from .mrkdwn import code, escape

KINDS = ("card", "card_update", "remind", "escalate", "answer", "chart", "digest", "slack_owner", "proposal",
         "proposal_update")
log = logging.getLogger("leadflow.notify")
CONVERSATION_ID = re.compile(r"^[CDG][A-Z0-9]{2,}$")  # channels, DMs, private groups; names are lower case
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
LOOK_BACK = 3600.0  # search for a possibly sent message from this long before its row was written (clock skew)
CHANNEL_TTL = 3600.0  # channel ids found by name are looked up again after this long (renames, archives)
STALE = ("channel_not_found", "is_archived")  # for an id found by name: look the name up again, once


class SlackNotifier:
    kinds = KINDS

    def __init__(self, client: WebClient, view: DeliveryView, clock: Callable[[], float] = time.monotonic,
                 channel_ttl: float = CHANNEL_TTL):
        self.client = client
        self.view = view
        self.channel_ids: dict[str, str] = {}  # channel name (no '#') -> conversation id
        self.listed_at: float | None = None  # when `channel_ids` was read from Slack (self.clock)
        self.clock = clock
        self.channel_ttl = channel_ttl
        self.since = 0.0  # when the row being delivered was written (bounds the search for an earlier copy)

    def deliver(self, kind: str, lead_id: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict:
        self.since = since
        try:
            return getattr(self, f"_{kind}")(payload, key, resumed)
        except SlackApiError as exc:
            resp = exc.response
            status = getattr(resp, "status_code", 0) or 0
            error = resp.get("error") if resp is not None and isinstance(resp.data, dict) else None
            headers = (getattr(resp, "headers", None) or {}) if resp is not None else {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            raise slack_failure(status, error, retry_after) from exc
        except SlackObjectFormationError as exc:  # a Block Kit limit: the same message fails every time
            raise DeliveryError("bad_payload", f"the message cannot be built: {exc}") from exc

    def conversation(self, channel: str, fresh: bool = False) -> str:
        """The conversation id for a channel id, a user id (their DM) or a channel name (`#sales-queue`);
        `fresh`: look a name up in Slack again, whatever the cache holds."""
        channel = (channel or "").strip()
        if CONVERSATION_ID.match(channel):
            return channel
        if USER_ID.match(channel):
            return self.client.conversations_open(users=channel)["channel"]["id"]
        name = channel.lstrip("#").lower()
        expired = self.listed_at is None or self.clock() - self.listed_at >= self.channel_ttl
        if fresh or expired or name not in self.channel_ids:
            listed = self._list_channels()  # raises on any failed page: retried, never "not found"
            self.channel_ids, self.listed_at = listed, self.clock()
        if name not in self.channel_ids:
            raise DeliveryError("slack:channel_not_found", f"no channel named #{name} that the bot can see "
                                                           "(check the name, invite the bot, or use the channel id)")
        return self.channel_ids[name]

    def _list_channels(self) -> dict[str, str]:
        found: dict[str, str] = {}
        cursor = None
        while True:
            resp = self.client.conversations_list(types="public_channel,private_channel", exclude_archived=True,
                                                  limit=200, cursor=cursor)
            found.update({c["name"]: c["id"] for c in resp.get("channels", []) if c.get("name") and c.get("id")})
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found

    def _in_channel(self, channel: str, call: Callable[[str], dict]) -> dict:
        """`call(conversation id)`; when Slack says a channel found by name is gone or archived, the
        cached id is stale: look the name up again and, if it now names another channel, call once more."""
        channel_id = self.conversation(channel)
        try:
            return call(channel_id)
        except SlackApiError as exc:
            data = exc.response.data if exc.response is not None else None
            by_name = not (CONVERSATION_ID.match(channel.strip()) or USER_ID.match(channel.strip()))
            if not by_name or not isinstance(data, dict) or data.get("error") not in STALE:
                raise
            fresh = self.conversation(channel, fresh=True)
            if fresh == channel_id:
                raise
            log.info("channel %s is now %s (was %s): sending there", channel, fresh, channel_id)
            return call(fresh)

    def _post(self, channel: str, key: str, resumed: bool, **message: Any) -> dict:
        def post(channel_id: str) -> dict:
            if resumed:
                found = self._find(channel_id, key, message.get("thread_ts"))
                if found:
                    return found
            meta = {"event_type": "leadflow", "event_payload": {"key": key}}
            resp = self.client.chat_postMessage(channel=channel_id, metadata=meta, **message)
            return {"channel": resp["channel"], "ts": resp["ts"]}

        return self._in_channel(channel, post)

    def _find(self, channel_id: str, key: str, thread_ts: str | None = None) -> dict | None:
        """The message carrying `key`, posted since the row was written: the channel's history, or the
        thread's replies (history does not list replies). Every page is read; a failed page raises."""
        args: dict[str, Any] = {"channel": channel_id, "limit": 200, "include_all_metadata": True}
        if self.since:
            args["oldest"] = f"{max(self.since - LOOK_BACK, 0.0):.6f}"
        cursor = None
        while True:
            if thread_ts:
                resp = self.client.conversations_replies(ts=thread_ts, cursor=cursor, **args)
            else:
                resp = self.client.conversations_history(cursor=cursor, **args)
            for msg in resp.get("messages", []):
                if ((msg.get("metadata") or {}).get("event_payload") or {}).get("key") == key:
                    return {"channel": channel_id, "ts": msg["ts"], "recovered": True}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    def _channel_for(self, card: Card) -> str:
        if card.route.slack:
            return self.client.conversations_open(users=card.route.slack)["channel"]["id"]
        return card.assignment["channel"] or card.route.fallback or "#sales-queue"

    def _card(self, payload: dict, key: str, resumed: bool) -> dict:
        card = self.view.card(payload["assignment"])
        assignment, lead = card.assignment, card.lead
        due = format_time(assignment["due_at"]) if assignment["due_at"] else None
        if assignment["status"] != "pending":  # decided while the card waited: no live buttons
            blocks = decided_card(lead, self._shown(assignment), card.activity, card.reason_labels)
        else:
            blocks = sql_card(lead, assignment, card.activity, due)
        text = f"New SQL {escape(lead['id'])} (score {lead['score']:g}): accept or reject"
        return self._post(self._channel_for(card), key, resumed, text=text,
                          blocks=[b.to_dict() for b in blocks])

    def _card_update(self, payload: dict, key: str, resumed: bool) -> dict:
        card = self.view.card(payload["assignment"])
        assignment, lead = card.assignment, card.lead
        posted = self.view.posted(f"card:{assignment['id']}")
        if not posted or "ts" not in posted:
            if self.view.status(f"card:{assignment['id']}") in ("pending", "sending"):
                raise RetryLater(2, "the card is not posted yet")  # update it once it is
            return {"skipped": "card was never posted (it is posted already decided, if at all)"}
        blocks = decided_card(lead, self._shown(assignment), card.activity, card.reason_labels)
        resp = self.client.chat_update(channel=self.conversation(posted["channel"]), ts=posted["ts"],
                                       text=f"{escape(lead['id'])}: {assignment['status']}",
                                       blocks=[b.to_dict() for b in blocks])
        return {"channel": resp["channel"], "ts": resp["ts"]}

    @staticmethod
    def _shown(assignment: dict) -> dict:
        shown = dict(assignment)
        if assignment["decided_by"] and assignment["decided_by"].startswith("U"):
            shown["decided_by_slack"] = assignment["decided_by"]
        return shown

    def _remind(self, payload: dict, key: str, resumed: bool) -> dict:
        card = self.view.card(payload["assignment"])
        assignment, lead = card.assignment, card.lead
        posted = self.view.posted(f"card:{assignment['id']}") or {}
        due = format_time(assignment["due_at"]) if assignment["due_at"] else "soon"
        return self._post(posted.get("channel") or self._channel_for(card), key, resumed,
                          thread_ts=posted.get("ts"), text=f"⏰ Reminder: {escape(lead['id'])} is waiting for you; accept or "
                                                           f"reject by {due} or it goes to the next rep.")

    def _escalate(self, payload: dict, key: str, resumed: bool) -> dict:
        card = self.view.card(payload["assignment"])
        lead = card.lead
        channel = payload.get("channel") or "#sales-managers"
        tried = card.assignments
        return self._post(channel, key, resumed, text=f"🚨 {escape(lead['id'])} (score {lead['score']:g}) has not been "
                                                      f"accepted after {tried} assignment(s). Please take a look.")

    def _chart(self, payload: dict, key: str, resumed: bool) -> dict:
        """A PNG dashboard for a stats answer, uploaded into the answer's thread (files_upload_v2)."""
        # an upload carries no metadata to find it by: a crash during it can repeat the chart (and only it)
        data = self.view.stats(payload.get("since"), payload.get("until"), payload.get("by"), payload.get("rep"),
                               weekly=True)
        png = dashboard(data, payload.get("title") or "Pipeline")
        resp = self._in_channel(payload["channel"], lambda channel_id: self.client.files_upload_v2(
            channel=channel_id, thread_ts=payload.get("thread_ts"), content=png, filename="pipeline.png",
            title=payload.get("title"), initial_comment=None))
        return {"file": (resp.get("file") or {}).get("id")}

    def _digest(self, payload: dict, key: str, resumed: bool) -> dict:
        from .questions import Question, render_stats

        data = self.view.stats(payload["since"], payload["until"])
        title = f"Weekly pipeline digest, {format_time(payload['since'])[:10]} to {format_time(payload['until'])[:10]}"
        posted = self._post(payload["channel"], key, resumed, text=title,
                            blocks=[{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                                    {"type": "section", "text": {"type": "mrkdwn",
                                                                 "text": "\n".join(render_stats(data, Question("stats")))[:3000]}}])
        self._chart({**payload, "thread_ts": posted["ts"], "title": title}, key + ":chart", resumed)
        return posted

    def _slack_owner(self, payload: dict, key: str, resumed: bool) -> dict:
        """A nurture step's note to the lead's owner, as a DM (or the fallback channel without owner)."""
        route = self.view.route(payload.get("owner") or "")
        if route.slack:
            channel = self.client.conversations_open(users=route.slack)["channel"]["id"]
        else:
            channel = route.fallback or "#sales-queue"
        note = escape(payload.get("text") or payload.get("subject"))
        return self._post(channel, key, resumed,
                          text=f"{note} (lead {code(payload['lead'])}, track {escape(payload.get('track'))})")

    def _proposal(self, payload: dict, key: str, resumed: bool) -> dict:
        from .blocks import proposal_blocks

        row = self.view.proposal(payload["proposal"])
        report = json.loads(row["report"])
        return self._post(payload["channel"], key, resumed, text="Rule tuning proposal",
                          blocks=[b.to_dict() for b in proposal_blocks(row, report, decided=False)])

    def _proposal_update(self, payload: dict, key: str, resumed: bool) -> dict:
        from .blocks import proposal_blocks

        row = self.view.proposal(payload["proposal"])
        posted = self.view.posted(f"proposal:{row['id']}")
        if not posted or "ts" not in posted:
            return {"skipped": "never posted"}
        resp = self.client.chat_update(channel=self.conversation(posted["channel"]), ts=posted["ts"],
                                       text=f"Proposal {row['status']}",
                                       blocks=[b.to_dict() for b in proposal_blocks(row, json.loads(row["report"]),
                                                                                    decided=True)])
        return {"channel": resp["channel"], "ts": resp["ts"]}

    def _answer(self, payload: dict, key: str, resumed: bool) -> dict:
        if payload.get("private_to"):  # only the asker sees it (a lead's story asked in a shared channel)
            resp = self.client.chat_postEphemeral(channel=payload["channel"], user=payload["private_to"],
                                                  thread_ts=payload.get("thread_ts"), text=payload["text"],
                                                  blocks=payload.get("blocks"))
            return {"channel": payload["channel"], "ephemeral": resp.get("message_ts")}
        return self._post(payload["channel"], key, resumed, thread_ts=payload.get("thread_ts"),
                          text=payload["text"], blocks=payload.get("blocks"))


class ConsoleNotifier:
    """No Slack credentials: say what would have been sent, so the loop can be tried offline."""

    kinds = KINDS

    def __init__(self, stream: TextIO, view: DeliveryView):
        self.stream = stream
        self.view = view

    def deliver(self, kind: str, lead_id: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict:
        if kind in ("answer", "chart", "digest", "slack_owner", "proposal", "proposal_update"):
            line = f"[{kind}] {payload.get('text') or payload.get('title') or payload.get('channel')}"
        else:
            card = self.view.card(payload["assignment"])
            assignment, lead = card.assignment, card.lead
            target = assignment["rep"] or assignment["channel"]
            line = {"card": f"[card] new SQL {lead['id']} (score {lead['score']:g}) for {target}: {assignment['why']}. "
                            f"Decide with: leadflow sql accept {assignment['id']} | leadflow sql reject {assignment['id']} "
                            f"--reason REASON" + (f". Open in CRM: {lead['crm_url']}" if lead.get("crm_url") else ""),
                    "card_update": f"[update] {lead['id']} is {assignment['status']}",
                    "remind": f"[reminder] {lead['id']} still waits for {target}",
                    "escalate": f"[escalation] {lead['id']} was not accepted in time"}[kind]
        print(line, file=self.stream, flush=True)
        return {"console": True}
