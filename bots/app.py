"""The Bolt app: buttons, the reject modal, the slash command, mentions, DMs and App Home.

`build_app` takes its settings, Web API client and lead service as arguments (no module-level App,
nothing read from the environment). Everything the bot posts goes through the outbox with an
idempotency key, so a Slack retry or a double click never produces two answers or two decisions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt import App
from slack_sdk import WebClient

from engine.leadview import story
from engine.service import LeadService
from engine.stats import compute
from engine.timeutil import format_time

from .blocks import reject_modal, stats_blocks
from .config import Settings
from .mrkdwn import code, escape
from .questions import HELP, parse, render_stats

log = logging.getLogger("leadflow.bot")


def build_app(settings: Settings, client: WebClient, service: LeadService) -> App:
    app = App(client=client, signing_secret=settings.signing_secret, token_verification_enabled=False,
              request_verification_enabled=True, ignoring_self_events_enabled=True, logger=bolt_logger())

    def who(user: str) -> tuple[str | None, bool]:
        desk = service.desk.desk
        rep = desk.rep_by_slack(user)
        return (rep.id if rep else None), user in desk.managers

    def tell(body: dict, user: str, text: str) -> None:
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=escape(text))

    @app.action("sql_accept")
    def on_accept(ack, body) -> None:  # noqa: ANN001 - Bolt injects by parameter name
        ack()
        user = body["user"]["id"]
        rep_id, manager = who(user)
        verdict = service.desk.decide(int(body["actions"][0]["value"]), "accept", user, rep_id, manager)
        if verdict.status != "done":
            tell(body, user, verdict.message)
        service.wake.set()

    @app.action("sql_reject")
    def on_reject(ack, body) -> None:  # noqa: ANN001
        ack()
        user = body["user"]["id"]
        rep_id, manager = who(user)
        assignment = service.store.assignment(int(body["actions"][0]["value"]))
        if assignment is None or not service.desk.may_decide(assignment, rep_id, manager):
            owner = assignment and (assignment["rep"] or assignment["channel"])
            tell(body, user, f"This lead is assigned to {owner}; only they or a manager can reject it.")
            return
        if assignment["status"] != "pending":
            tell(body, user, f"{assignment['lead']} was already {assignment['status']}.")
            return
        client.views_open(trigger_id=body["trigger_id"],
                          view=reject_modal(assignment["id"], assignment["lead"], service.desk.desk.reasons))

    @app.view("sql_reject_reason")
    def on_reject_reason(ack, body, view) -> None:  # noqa: ANN001
        user = body["user"]["id"]
        rep_id, manager = who(user)
        values = view["state"]["values"]
        reason = ((values.get("reason") or {}).get("reason") or {}).get("selected_option") or {}
        comment = ((values.get("comment") or {}).get("comment") or {}).get("value")
        verdict = service.desk.decide(int(view["private_metadata"]), "reject", user, rep_id, manager,
                                      reason.get("value"), comment)
        if verdict.status in ("done",):
            ack()
        else:
            ack(response_action="errors", errors={"reason": verdict.message[:150]})
        service.wake.set()

    def on_proposal(ack, body, verdict: str) -> None:  # noqa: ANN001
        ack()
        from engine.errors import LeadflowError
        from engine.proposals import apply_proposal, dismiss_proposal

        user = body["user"]["id"]
        _, manager = who(user)
        if not manager:
            tell(body, user, "Only managers named in the rule files can apply or dismiss rule changes.")
            return
        pid = int(body["actions"][0]["value"])
        try:
            status, message = (apply_proposal if verdict == "apply" else dismiss_proposal)(service, pid, user)
        except LeadflowError as exc:
            status, message = "invalid", "the proposal has problems: " + "; ".join(
                f"{p.location}: {p.message}" for p in exc.problems[:3])
        if status in ("done", "stale"):  # the proposal is closed either way: its card loses the buttons
            with service.store.transaction():
                service.store.add_outbox(f"proposal_update:{pid}", "proposal_update", "", {"proposal": pid})
            service.wake.set()
        if status != "done":
            tell(body, user, message)

    app.action("proposal_apply")(lambda ack, body: on_proposal(ack, body, "apply"))
    app.action("proposal_dismiss")(lambda ack, body: on_proposal(ack, body, "dismiss"))

    @app.command("/leadflow")
    def on_command(ack, command) -> None:  # noqa: ANN001
        said = answer(service, command.get("text", ""), command["user_id"], who)
        ack(response_type="ephemeral", text=escape(said.title),
            blocks=[b.to_dict() for b in stats_blocks(said.title, said.lines)])

    def reply(event: dict, body: dict) -> None:
        said = answer(service, event.get("text", ""), event.get("user", ""), who)
        key = f"answer:{body.get('event_id') or event.get('client_msg_id') or event.get('ts')}"
        thread = event.get("thread_ts") or event.get("ts")
        payload = {"channel": event["channel"], "thread_ts": thread, "text": escape(said.title),
                   "blocks": [b.to_dict() for b in stats_blocks(said.title, said.lines)]}
        in_dm = event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")
        if said.private and not in_dm:  # a lead's story asked in a shared channel: only the asker sees it
            payload.update(private_to=event.get("user"), thread_ts=event.get("thread_ts"))
        with service.store.transaction():
            service.store.add_outbox(key, "answer", "", payload)
            if said.chart is not None:  # stats answers come with the dashboard as a PNG in the thread
                service.store.add_outbox(key + ":chart", "chart", "", {
                    "channel": event["channel"], "thread_ts": thread, "title": said.title, **said.chart})
        service.wake.set()

    @app.event("app_mention")
    def on_mention(event, body) -> None:  # noqa: ANN001
        reply(event, body)

    @app.event("message")
    def on_message(event, body) -> None:  # noqa: ANN001
        if event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id"):
            reply(event, body)

    @app.event("app_home_opened")
    def on_home(event) -> None:  # noqa: ANN001
        from .blocks import home_view

        rep_id, _ = who(event["user"])
        rows = []
        if rep_id:
            now = service.clock()
            for a in service.store.assignments(rep=rep_id, status="pending"):
                left = "" if a["due_at"] is None else f" · {max(0.0, (a['due_at'] - now) / 3600):.1f} h left to accept"
                rows.append(f"*{escape(a['lead'])}* assigned {format_time(a['assigned_at'])}{left}")
        client.views_publish(user_id=event["user"], view=home_view(rep_id or "there", rows))

    return app


class _NoRequestContent(logging.Filter):
    """Bolt puts request content into log lines: the whole raw body of every request that fails
    signature verification (at INFO), parts of unhandled requests, responses. That text is the
    caller's: megabytes of it, or line breaks that forge log lines. Keep each message up to its
    first detail and drop the rest (tracebacks of our own errors stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        cut = min((i for i in (text.find(c) for c in "(:{[\n\r") if i >= 0), default=len(text))
        record.msg = text[:min(cut, 200)].rstrip() + (" (request details not logged)" if cut < len(text) else "")
        record.args = ()
        return True


def bolt_logger() -> logging.Logger:
    """The logger Bolt and its middleware write to (they copy its filters); never logs request content."""
    logger = logging.getLogger("leadflow.slack")
    if not any(isinstance(f, _NoRequestContent) for f in logger.filters):
        logger.addFilter(_NoRequestContent())
    return logger


@dataclass
class Answer:
    """What the bot says to a question: `title` is plain text (escaped where it becomes mrkdwn),
    `lines` are mrkdwn with lead data already escaped, `private` marks a lead's story, which is
    never posted where others can read it."""
    title: str
    lines: list[str]
    chart: dict | None = None
    private: bool = False


def answer(service: LeadService, text: str, user: str, who) -> Answer:  # noqa: ANN001
    """The answer to a question in plain words, as this user may see it."""
    rep_id, manager = who(user)
    question = parse(text, service.clock(), list(service.desk.desk.reps))
    if question.kind == "help":
        return Answer("leadflow", [HELP])
    if question.kind == "why":
        lead = service.store.lead_row(question.lead or "")
        if lead is None or (not manager and (rep_id is None or lead["owner"] != rep_id)):
            # one answer for "no such lead" and "not yours", so nobody can probe which leads exist
            return Answer("No story to show", [f"I can't show you {code(question.lead)}: there is no such lead, or it "
                                               "is not assigned to you. Managers see every lead."], private=True)
        lines = (story(service.store, service.pipeline.compiled.rules, question.lead) or "").splitlines()[:25]
        return Answer(f"Why {question.lead} is {lead['stage'].upper()}", [escape(line) for line in lines],
                      private=True)
    if not manager and not rep_id:
        return Answer("Stats are for the sales team",
                      ["Only managers and reps named in the rule files can ask for stats."])
    if not manager:
        question.rep = rep_id  # a rep sees their own numbers
    data = compute(service.store, question.since, question.until, question.by, question.rep)
    scope = f" for {question.rep}" if question.rep else ""
    by = f" by {question.by}" if question.by else ""
    chart = {"since": question.since, "until": question.until, "by": question.by, "rep": question.rep}
    return Answer(f"Pipeline, {question.period}{scope}{by}", render_stats(data, question), chart)
