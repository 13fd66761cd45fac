"""The Bolt app: buttons, the reject modal, the slash command, mentions, DMs and App Home.

`build_app` takes its settings, Web API client and lead service as arguments (no module-level App,
nothing read from the environment). Everything the bot posts goes through the outbox with an
idempotency key, so a Slack retry or a double click never produces two answers or two decisions.
"""
from __future__ import annotations

import functools
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

from slack_bolt import App
from slack_sdk import WebClient

from leadflow.core import LeadflowError, format_time
from leadflow.reports import check_scope, compute, story
from leadflow.service import LeadService

from .blocks import reject_modal, stats_blocks
from .config import Settings
from .mrkdwn import code, escape
from .questions import HELP, kind_of, parse, render_stats

log = logging.getLogger("leadflow.bot")


def build_app(settings: Settings, client: WebClient, service: LeadService) -> App:
    app = App(client=client, signing_secret=settings.signing_secret, token_verification_enabled=False,
              request_verification_enabled=True, ignoring_self_events_enabled=True, logger=bolt_logger())

    def who(user: str) -> tuple[str | None, bool]:
        routing = service.desk.routing
        rep = routing.rep_by_slack(user)
        return (rep.id if rep else None), user in routing.managers

    def guarded(listener):  # noqa: ANN001, ANN202
        """Every listener runs through this (each takes `ack` and `body`). An exception must not reach
        Bolt: before ack() it answers 500, and after ack() it resets the acknowledgement, so Slack
        may get a 404 three seconds later. Here the request is acknowledged all the same, the asker
        gets a word, and the log names the failure, never the request or the exception's text."""
        @functools.wraps(listener)  # Bolt reads the wrapped function's parameter names
        def run(**kwargs):  # noqa: ANN003, ANN202
            try:
                return listener(**kwargs)
            except Exception as exc:  # noqa: BLE001 - any failure of ours: answered, logged, not raised
                ack, body = kwargs["ack"], kwargs["body"] or {}
                _log_failure(exc, body)
                if ack.response is None:
                    ack(**_sorry_ack(body))
                    return None
                user = (body.get("user") or {}).get("id") or (body.get("event") or {}).get("user")
                channel = ((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
                           or (body.get("event") or {}).get("channel"))
                if isinstance(user, str) and isinstance(channel, str):
                    try:
                        client.chat_postEphemeral(channel=channel, user=user, text=SORRY)
                    except Exception as again:  # noqa: BLE001 - Slack unreachable too: the log line stays
                        log.error("could not tell the asker either: %s", type(again).__name__)
                return None

        return run

    def tell(body: dict, user: str, text: str) -> None:
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=escape(text))

    @app.action("sql_accept")
    @guarded
    def on_accept(ack, body) -> None:  # noqa: ANN001 - Bolt injects by parameter name
        ack()
        user = body["user"]["id"]
        rep_id, manager = who(user)
        verdict = service.desk.decide(int(body["actions"][0]["value"]), "accept", user, rep_id, manager)
        if verdict.status != "done":
            tell(body, user, verdict.message)
        service.wake.set()

    @app.action("sql_reject")
    @guarded
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
                          view=reject_modal(assignment["id"], assignment["lead"], service.desk.routing.reasons))

    @app.view("sql_reject_reason")
    @guarded
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
        from leadflow.core import LeadflowError

        user = body["user"]["id"]
        _, manager = who(user)
        if not manager:
            tell(body, user, "Only managers named in the rule files can apply or dismiss rule changes.")
            return
        pid = int(body["actions"][0]["value"])
        try:
            status, message = (service.apply_proposal if verdict == "apply" else service.dismiss_proposal)(pid, user)
        except LeadflowError as exc:
            status, message = "invalid", "the proposal has problems: " + "; ".join(
                f"{p.location}: {p.message}" for p in exc.problems[:3])
        if status in ("done", "stale"):  # the proposal is closed either way: its card loses the buttons
            with service.store.transaction():
                service.store.add_outbox(f"proposal_update:{pid}", "proposal_update", "", {"proposal": pid})
            service.wake.set()
        if status != "done":
            tell(body, user, message)

    app.action("proposal_apply")(guarded(lambda ack, body: on_proposal(ack, body, "apply")))
    app.action("proposal_dismiss")(guarded(lambda ack, body: on_proposal(ack, body, "dismiss")))

    @app.action("open_crm")
    @guarded
    def on_open_crm(ack, body) -> None:  # noqa: ANN001 - the link opens in the browser; Slack wants an ack
        ack()

    @app.command("/leadflow")
    @guarded
    def on_command(ack, body, command) -> None:  # noqa: ANN001
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
    @guarded
    def on_mention(ack, body, event) -> None:  # noqa: ANN001
        reply(event, body)

    @app.event("message")
    @guarded
    def on_message(ack, body, event) -> None:  # noqa: ANN001
        if event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id"):
            reply(event, body)

    @app.event("app_home_opened")
    @guarded
    def on_home(ack, body, event) -> None:  # noqa: ANN001
        from .blocks import home_view

        rep_id, _ = who(event["user"])
        rows = []
        if rep_id:
            now = service.clock()
            for a in service.store.assignments(rep=rep_id, status="pending"):
                left = "" if a["due_at"] is None else f" · {max(0.0, (a['due_at'] - now) / 3600):.1f} h left to accept"
                rows.append((f"*{escape(a['lead'])}* assigned {format_time(a['assigned_at'])}{left}",
                             service.view.crm_url(a["lead"])))
        client.views_publish(user_id=event["user"], view=home_view(rep_id or "there", rows))

    return app


SORRY = "Sorry, something went wrong on my side while answering that. The team can find it in the service log."


def _sorry_ack(body: dict) -> dict:
    """The arguments of ack() for a failed request: for a modal, an error on its first input (it
    stays open and says so); for a slash command, a message only the asker sees."""
    if body.get("type") == "view_submission":
        inputs = [b.get("block_id") for b in ((body.get("view") or {}).get("blocks") or [])
                  if isinstance(b, dict) and b.get("type") == "input" and isinstance(b.get("block_id"), str)]
        return {"response_action": "errors", "errors": {inputs[0]: SORRY[:150]}} if inputs else {}
    if "command" in body:
        return {"response_type": "ephemeral", "text": SORRY}
    return {}


def _log_failure(error: BaseException, body: dict) -> None:
    """One line: what kind of request failed, the exception's type and where in the code."""
    kind = {"event_callback": "event", "block_actions": "button click", "view_submission": "modal",
            "block_suggestion": "options request"}.get(str(body.get("type")), "slash command" if "command" in body
                                                       else "request")
    frames = traceback.extract_tb(error.__traceback__)[-4:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)) or "?"
    log.error("a Slack %s failed with %s at %s (request content not logged)", kind, type(error).__name__, where)


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
    """The answer to a question in plain words, as this user may see it. Who asks is settled before
    the question is read further than its kind: a stranger's stats question is never parsed."""
    rep_id, manager = who(user)
    question = kind_of(text)
    if question.kind == "stats" and not manager and not rep_id:
        return Answer("Stats are for the sales team",
                      ["Only managers and reps named in the rule files can ask for stats."])
    if question.kind == "stats":
        question = parse(text, service.clock(), list(service.desk.routing.reps))
    if question.kind == "help":
        return Answer("leadflow", [escape(question.problem), HELP] if question.problem else [HELP])
    if question.kind == "why":
        lead = service.store.lead_row(question.lead or "")
        if lead is None or (not manager and (rep_id is None or lead["owner"] != rep_id)):
            # one answer for "no such lead" and "not yours", so nobody can probe which leads exist
            return Answer("No story to show", [f"I can't show you {code(question.lead)}: there is no such lead, or it "
                                               "is not assigned to you. Managers see every lead."], private=True)
        lines = (story(service.store, service.pipeline.compiled.rules, question.lead) or "").splitlines()[:25]
        return Answer(f"Why {question.lead} is {lead['stage'].upper()}", [escape(line) for line in lines],
                      private=True)
    try:  # "by colour" nobody has, or "for zed" nobody is, is said so, not shown as an empty table
        check_scope(service.store, question.by, question.rep if manager else None)
    except LeadflowError as exc:
        return Answer("Nothing to slice by that", [escape(f"{p.message}. {p.hint}") for p in exc.problems],
                      private=True)
    if not manager:
        question.rep = rep_id  # a rep sees their own numbers
    data = compute(service.store, question.since, question.until, question.by, question.rep)
    scope = f" for {question.rep}" if question.rep else ""
    by = f" by {question.by}" if question.by else ""
    chart = {"since": question.since, "until": question.until, "by": question.by, "rep": question.rep}
    return Answer(f"Pipeline, {question.period}{scope}{by}", render_stats(data, question), chart)
