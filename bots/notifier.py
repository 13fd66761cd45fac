"""Delivering outbox rows to Slack (or, without Slack credentials, to the log).

Cards carry their outbox key in Slack message metadata. If the process died after Slack accepted a
card but before the outbox row was marked done, the retry finds the card by that key in the
conversation's history and records it instead of posting a second one.
"""
from __future__ import annotations

import json
import logging
from typing import Any, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from engine.leadview import lead_json, recent_activity
from engine.outbox import RetryLater
from engine.service import LeadService
from engine.timeutil import format_time

from .blocks import decided_card, sql_card

KINDS = ("card", "card_update", "remind", "escalate", "answer", "chart", "digest", "slack_owner", "proposal",
         "proposal_update")
log = logging.getLogger("leadflow.notify")


class _Base:
    kinds = KINDS

    def __init__(self) -> None:
        self.service: LeadService | None = None

    def bind(self, service: LeadService) -> None:
        self.service = service

    def _context(self, payload: dict) -> tuple[dict, dict]:
        service = self.service
        assignment = service.store.assignment(payload["assignment"])
        lead = lead_json(service.store, service.pipeline.compiled.rules, assignment["lead"])
        return assignment, lead


class SlackNotifier(_Base):
    def __init__(self, client: WebClient):
        super().__init__()
        self.client = client

    def deliver(self, kind: str, lead_id: str, payload: dict, key: str, resumed: bool) -> dict:
        try:
            return getattr(self, f"_{kind}")(payload, key, resumed)
        except SlackApiError as exc:
            if exc.response is not None and exc.response.status_code == 429:
                raise RetryLater(float(exc.response.headers.get("Retry-After", "1") or 1), "rate limited") from exc
            raise

    def _post(self, channel: str, key: str, resumed: bool, **message: Any) -> dict:
        if resumed:
            found = self._find(channel, key)
            if found:
                return found
        meta = {"event_type": "leadflow", "event_payload": {"key": key}}
        resp = self.client.chat_postMessage(channel=channel, metadata=meta, **message)
        return {"channel": resp["channel"], "ts": resp["ts"]}

    def _find(self, channel: str, key: str) -> dict | None:
        resp = self.client.conversations_history(channel=channel, limit=50, include_all_metadata=True)
        for msg in resp.get("messages", []):
            if ((msg.get("metadata") or {}).get("event_payload") or {}).get("key") == key:
                return {"channel": channel, "ts": msg["ts"], "recovered": True}
        return None

    def _channel_for(self, assignment: dict) -> str:
        desk = self.service.desk.desk
        rep = desk.reps.get(assignment["rep"]) if assignment["rep"] else None
        if rep and rep.slack:
            return self.client.conversations_open(users=rep.slack)["channel"]["id"]
        return assignment["channel"] or desk.fallback or "#sales-queue"

    def _card(self, payload: dict, key: str, resumed: bool) -> dict:
        assignment, lead = self._context(payload)
        due = format_time(assignment["due_at"]) if assignment["due_at"] else None
        if assignment["status"] != "pending":  # decided while the card waited: no live buttons
            labels = {rid: r["label"] for rid, r in self.service.desk.desk.reasons.items()}
            blocks = decided_card(lead, self._shown(assignment), recent_activity(self.service.store, lead["id"]), labels)
        else:
            blocks = sql_card(lead, assignment, recent_activity(self.service.store, lead["id"]), due)
        text = f"New SQL {lead['id']} (score {lead['score']:g}): accept or reject"
        return self._post(self._channel_for(assignment), key, resumed, text=text,
                          blocks=[b.to_dict() for b in blocks])

    def _card_update(self, payload: dict, key: str, resumed: bool) -> dict:
        assignment, lead = self._context(payload)
        store = self.service.store
        posted = store.outbox_result(f"card:{assignment['id']}")
        if not posted or "ts" not in posted:
            if store.outbox_status(f"card:{assignment['id']}") in ("pending", "sending"):
                raise RetryLater(2, "the card is not posted yet")  # update it once it is
            return {"skipped": "card was never posted (it is posted already decided, if at all)"}
        labels = {rid: r["label"] for rid, r in self.service.desk.desk.reasons.items()}
        blocks = decided_card(lead, self._shown(assignment), recent_activity(store, lead["id"]), labels)
        resp = self.client.chat_update(channel=posted["channel"], ts=posted["ts"], text=f"{lead['id']}: {assignment['status']}",
                                       blocks=[b.to_dict() for b in blocks])
        return {"channel": resp["channel"], "ts": resp["ts"]}

    @staticmethod
    def _shown(assignment: dict) -> dict:
        shown = dict(assignment)
        if assignment["decided_by"] and assignment["decided_by"].startswith("U"):
            shown["decided_by_slack"] = assignment["decided_by"]
        return shown

    def _remind(self, payload: dict, key: str, resumed: bool) -> dict:
        assignment, lead = self._context(payload)
        posted = self.service.store.outbox_result(f"card:{assignment['id']}") or {}
        due = format_time(assignment["due_at"]) if assignment["due_at"] else "soon"
        return self._post(posted.get("channel") or self._channel_for(assignment), key, resumed,
                          thread_ts=posted.get("ts"), text=f"⏰ Reminder: {lead['id']} is waiting for you; accept or "
                                                           f"reject by {due} or it goes to the next rep.")

    def _escalate(self, payload: dict, key: str, resumed: bool) -> dict:
        assignment, lead = self._context(payload)
        channel = payload.get("channel") or "#sales-managers"
        tried = len(self.service.store.assignments(lead=lead["id"]))
        return self._post(channel, key, resumed, text=f"🚨 {lead['id']} (score {lead['score']:g}) has not been "
                                                      f"accepted after {tried} assignment(s). Please take a look.")

    def _chart(self, payload: dict, key: str, resumed: bool) -> dict:
        """A PNG dashboard for a stats answer, uploaded into the answer's thread (files_upload_v2)."""
        from engine.charts import dashboard
        from engine.stats import compute

        if resumed and self._find(payload["channel"], key):
            return {"recovered": True}
        data = compute(self.service.store, payload.get("since"), payload.get("until"), payload.get("by"),
                       payload.get("rep"), weekly=True)
        png = dashboard(data, payload.get("title") or "Pipeline")
        resp = self.client.files_upload_v2(channel=payload["channel"], thread_ts=payload.get("thread_ts"),
                                           content=png, filename="pipeline.png", title=payload.get("title"),
                                           initial_comment=None)
        return {"file": (resp.get("file") or {}).get("id")}

    def _digest(self, payload: dict, key: str, resumed: bool) -> dict:
        from engine.stats import compute

        from .questions import Question, render_stats

        data = compute(self.service.store, payload["since"], payload["until"])
        title = f"Weekly pipeline digest, {format_time(payload['since'])[:10]} to {format_time(payload['until'])[:10]}"
        posted = self._post(payload["channel"], key, resumed, text=title,
                            blocks=[{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                                    {"type": "section", "text": {"type": "mrkdwn",
                                                                 "text": "\n".join(render_stats(data, Question("stats")))[:3000]}}])
        self._chart({**payload, "thread_ts": posted["ts"], "title": title}, key + ":chart", resumed)
        return posted

    def _slack_owner(self, payload: dict, key: str, resumed: bool) -> dict:
        """A nurture step's note to the lead's owner, as a DM (or the fallback channel without owner)."""
        desk = self.service.desk.desk
        rep = desk.reps.get(payload.get("owner") or "")
        if rep and rep.slack:
            channel = self.client.conversations_open(users=rep.slack)["channel"]["id"]
        else:
            channel = desk.fallback or "#sales-queue"
        return self._post(channel, key, resumed, text=f"{payload.get('text') or payload.get('subject')} "
                                                      f"(lead `{payload['lead']}`, track {payload.get('track')})")

    def _proposal(self, payload: dict, key: str, resumed: bool) -> dict:
        from .blocks import proposal_blocks

        row = self.service.store.proposal(payload["proposal"])
        report = json.loads(row["report"])
        return self._post(payload["channel"], key, resumed, text="Rule tuning proposal",
                          blocks=[b.to_dict() for b in proposal_blocks(row, report, decided=False)])

    def _proposal_update(self, payload: dict, key: str, resumed: bool) -> dict:
        from .blocks import proposal_blocks

        row = self.service.store.proposal(payload["proposal"])
        posted = self.service.store.outbox_result(f"proposal:{row['id']}")
        if not posted or "ts" not in posted:
            return {"skipped": "never posted"}
        resp = self.client.chat_update(channel=posted["channel"], ts=posted["ts"], text=f"Proposal {row['status']}",
                                       blocks=[b.to_dict() for b in proposal_blocks(row, json.loads(row["report"]),
                                                                                    decided=True)])
        return {"channel": resp["channel"], "ts": resp["ts"]}

    def _answer(self, payload: dict, key: str, resumed: bool) -> dict:
        return self._post(payload["channel"], key, resumed, thread_ts=payload.get("thread_ts"),
                          text=payload["text"], blocks=payload.get("blocks"))


class ConsoleNotifier(_Base):
    """No Slack credentials: say what would have been sent, so the loop can be tried offline."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream

    def deliver(self, kind: str, lead_id: str, payload: dict, key: str, resumed: bool) -> dict:
        if kind in ("answer", "chart", "digest", "slack_owner", "proposal", "proposal_update"):
            line = f"[{kind}] {payload.get('text') or payload.get('title') or payload.get('channel')}"
        else:
            assignment, lead = self._context(payload)
            target = assignment["rep"] or assignment["channel"]
            line = {"card": f"[card] new SQL {lead['id']} (score {lead['score']:g}) for {target}: {assignment['why']}. "
                            f"Decide with: leadflow sql accept {assignment['id']} | leadflow sql reject {assignment['id']} "
                            f"--reason REASON",
                    "card_update": f"[update] {lead['id']} is {assignment['status']}",
                    "remind": f"[reminder] {lead['id']} still waits for {target}",
                    "escalate": f"[escalation] {lead['id']} was not accepted in time"}[kind]
        print(line, file=self.stream, flush=True)
        return {"console": True}
