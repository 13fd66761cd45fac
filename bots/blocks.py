"""Block Kit messages and views, built from slack_sdk.models so Slack's limits are checked before
anything is sent (section text 3000 chars, button text 75, modal title 24, ...)."""
from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from leadflow.core import format_time
from leadflow.rules import STALE, percent

from .mrkdwn import code, escape, mention

BANT_LABELS = {"budget": "Budget", "authority": "Authority", "need": "Need", "timeline": "Timeline"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _who(lead: dict) -> str:
    a = lead["attributes"]
    name = a.get("name") or lead["id"]
    parts = [str(a[k]) for k in ("title", "company") if a.get(k)]
    return f"{name}" + (f", {' at '.join(parts)}" if parts else "")


def crm_button(url: str | None) -> ButtonElement | None:
    """A link button to the lead's CRM record. Slack still posts a click on it to the app, which only
    acknowledges `open_crm`. The URL comes from the rules' checked template with every attribute
    URL-encoded (RuleSet.record_url); slack_sdk refuses one over 3000 characters, so it never is."""
    return ButtonElement(text="Open in CRM", action_id="open_crm", url=url) if url else None


def _reason(c: dict) -> str:
    """One contribution as its author described it (the rule id when there is no description)."""
    said = " ".join(str(c.get("description") or c["rule"]).split())
    return f"• {escape(_clip(said, 150))} {c['points']:+g}"


def _likely(lead: dict) -> str:
    """What follows the score on the card, " · likely to buy: 72%", when the rules have a calibration
    (a rep reads a chance, not a number of points); nothing without one."""
    chance = lead.get("likely_to_buy")
    return f" · likely to buy: {percent(chance)}" if chance is not None else ""


def lead_summary_blocks(lead: dict, activity: list[str]) -> list:
    a = lead["attributes"]
    top = lead["contributions"][:5]
    points = "\n".join(_reason(c) for c in top) or "• no contributions"
    bant = "  ".join(("✅ " if lead["bant"].get(k) else "⬜ ") + label for k, label in BANT_LABELS.items())
    facts = [f"*Email*\n{escape(a.get('email', '—'))}", f"*Country*\n{escape(a.get('country', '—'))}",
             f"*Employees*\n{escape(a.get('employees', '—'))}", f"*Stage*\n{escape(lead['stage'].upper())}"]
    blocks = [
        HeaderBlock(text=PlainTextObject(text=_clip(f"New SQL: {_who(lead)}", 150))),
        SectionBlock(fields=[MarkdownTextObject(text=_clip(f, 2000)) for f in facts],
                     accessory=crm_button(lead.get("crm_url"))),
        SectionBlock(text=MarkdownTextObject(text=_clip(
            f"*Score {lead['score']:g}*{_likely(lead)} (fit {lead['fit']:g}, engagement {lead['engagement']:g})\n{points}",
            3000))),
        SectionBlock(text=MarkdownTextObject(text=f"*BANT*  {bant}")),
    ]
    if activity:
        recent = "*Recent activity*\n" + "\n".join(escape(line) for line in activity)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(recent, 3000))))
    return blocks


def sql_card(lead: dict, assignment: dict, activity: list[str], due: str | None) -> list:
    blocks = lead_summary_blocks(lead, activity)
    context = f"Lead {code(lead['id'])} · rules {code(lead['rules_version'])} · {escape(assignment['why'])}"
    if due:
        context += f" · accept by {escape(due)}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_clip(context, 3000))]))
    value = str(assignment["id"])
    blocks.append(ActionsBlock(block_id="decide", elements=[
        ButtonElement(text="Accept", action_id="sql_accept", value=value, style="primary"),
        ButtonElement(text="Reject…", action_id="sql_reject", value=value, style="danger"),
    ]))
    return blocks


def decided_card(lead: dict, assignment: dict, activity: list[str], labels: dict) -> list:
    blocks = lead_summary_blocks(lead, activity)
    status = assignment["status"]
    who = mention(assignment["decided_by_slack"]) if assignment.get("decided_by_slack") else \
        escape(assignment["decided_by"] or "the SLA")
    when = format_time(assignment["decided_at"]) if assignment["decided_at"] else ""
    reason = escape(labels.get(assignment["reason"], assignment["reason"]))
    text = {"accepted": f"✅ Accepted by {who} at {when}",
            "rejected": f"❌ Rejected by {who} at {when}: {reason}",
            "reassigned": f"↪️ Passed on by {who} at {when}: {reason}",
            "expired": f"⏰ Not answered in time; reassigned at {when}",
            "closed": f"Closed at {when}: {escape(assignment.get('reason') or 'the lead moved on')}"}.get(status,
                                                                                                     escape(status))
    if assignment.get("comment"):  # a rep's own words: quoted line by line, never markup
        text += "\n" + "\n".join(f"> {escape(line)}" for line in str(assignment["comment"]).splitlines())
    blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000))))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=_clip(f"Lead {code(lead['id'])} · rules {code(lead['rules_version'])}", 3000))]))
    return blocks


def reject_modal(assignment_id: int, lead_id: str, reasons: dict) -> View:
    options = [Option(value=rid, text=_clip(r["label"], 75)) for rid, r in reasons.items()]
    return View(type="modal", callback_id="sql_reject_reason", private_metadata=str(assignment_id),
                title=PlainTextObject(text="Reject lead"), submit=PlainTextObject(text="Reject"),
                close=PlainTextObject(text="Cancel"), blocks=[
                    SectionBlock(text=MarkdownTextObject(text=_clip(f"Why is {code(lead_id)} not a fit?", 3000))),
                    InputBlock(block_id="reason", label=PlainTextObject(text="Reason"),
                               element=StaticSelectElement(action_id="reason", options=options,
                                                           placeholder=PlainTextObject(text="Pick a reason"))),
                    InputBlock(block_id="comment", optional=True, label=PlainTextObject(text="Comment"),
                               element=PlainTextInputElement(action_id="comment", multiline=True, max_length=2000)),
                ])


def stats_blocks(title: str, lines: list[str]) -> list:
    return [HeaderBlock(text=PlainTextObject(text=_clip(title, 150))),
            SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines) or "No data for this period.", 3000)))]


def home_view(rep_name: str, rows: list[tuple[str, str | None]]) -> View:
    """A rep's App Home: one section per open SQL (mrkdwn text, and its CRM link if it has one)."""
    blocks = [HeaderBlock(text=PlainTextObject(text=_clip(f"Your open SQLs, {rep_name}", 150))), DividerBlock()]
    if not rows:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="Nothing waiting for you. 🎉")))
    for row, url in rows[:40]:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(row, 3000)), accessory=crm_button(url)))
    return View(type="home", blocks=blocks)


def proposal_blocks(row: dict, report: dict, decided: bool) -> list:
    from leadflow.learning import queue_line  # here: learning loads numpy, which the other cards never need

    b, a = report["validation"]["before"], report["validation"]["after"]
    changed = [r for r in report["rules"] if r["old"] != r["new"]]
    lines = [f"*AUC* {b['auc']} → {a['auc']} · *precision top 30%* {b['precision_at']['0.3']} → "
             f"{a['precision_at']['0.3']} (cross-validated on {report['leads']} leads)"]
    if report.get("queue"):  # absent in proposals made before it was computed
        lines.append(escape(queue_line(report["queue"])))
    lines += [f"• {code(r['rule'])} {r['old']:g} → {escape(r['new'])}" for r in changed[:12]]
    lines += [f"• new {code(r['rule'])} ({r['points']:+d}): {escape(r['evidence'])}" for r in report["new_rules"][:5]]
    lines += [f"• {k.upper()} threshold → {v:g}" for k, v in report.get("thresholds", {}).items()]
    blocks = [HeaderBlock(text=PlainTextObject(text=f"Rule tuning proposal #{row['id']}")),
              SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines), 3000))),
              ContextBlock(elements=[MarkdownTextObject(text=_clip(f"Files: {code(row['dir'])} (see TUNING.md there)",
                                                                   3000))])]
    if decided:
        who = mention(row["decided_by"])
        if row["status"] == "stale":
            text = f"*Not applied*: {STALE} (Apply pressed by {who} at {format_time(row['decided_at'])})"
        else:
            text = f"*{row['status'].capitalize()}* by {who} at {format_time(row['decided_at'])}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    else:
        blocks.append(ActionsBlock(block_id="proposal", elements=[
            ButtonElement(text="Apply", action_id="proposal_apply", value=str(row["id"]), style="primary"),
            ButtonElement(text="Dismiss", action_id="proposal_dismiss", value=str(row["id"]))]))
    return blocks
