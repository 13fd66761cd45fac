"""Queueing the webhooks a rule set's `webhooks:` section asks for, in the transaction of the change.

A change (a stage entry, an assignment, a rep's decision) and the outbox rows announcing it are
written together, so a crash keeps both or neither: a change is never announced twice, and never
lost. Each change gets a delivery id derived from what changed (a UUID 5 of the lead, the event and
the position of the change in it), not from the clock or a counter, so the same change always has
the same id: a receiver drops repeats by it, and a replayed event cannot queue a second row (the
outbox key holds the subscription and the delivery id, and an existing key is left alone).
engine/delivery sends the rows (rules/WEBHOOKS.md shows the body).
"""
from __future__ import annotations

import uuid

from leadflow.core import format_time
from leadflow.rules import LeadState, RuleSet
from leadflow.store import Store

WEBHOOK_KIND = "crm_webhook"  # the outbox kind of these rows
_NAMESPACE = uuid.UUID("6f1d3c1e-3a52-4d8e-9b7a-1e6c0f4b9a10")  # fixed forever: ids must not change


def delivery_id(kind: str, change: str) -> str:
    """The stable id of one change (the same text always gives the same id)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\x00{change}"))


def lead_snapshot(state: LeadState | None) -> dict:
    """The lead as it stands after the change: what a CRM mirrors."""
    if state is None:
        return {}
    email = state.attrs.get("email")
    return {"stage": state.stage, "score": state.score, "fit": state.fit,
            "engagement": state.engagement, "bant": dict(state.bant), "owner": state.owner,
            "disqualified": state.disqualified, "rules_version": state.rules_version,
            "email": email if isinstance(email, str) else None}


def queue_webhook(store: Store, rules: RuleSet, kind: str, lead: str, change: str, at: float, data: dict,
                  state: LeadState | None = None) -> int:
    """Queue `kind` for every subscription that asked for it (call inside the change's transaction);
    returns how many rows were queued. `change` names the change uniquely within its kind."""
    subscribers = [s for s in rules.webhooks if kind in s.kinds]
    if not subscribers:
        return 0
    did = delivery_id(kind, change)
    body = {"kind": kind, "delivery_id": did, "occurred_at": format_time(at), "lead": lead,
            "lead_state": lead_snapshot(state), "data": data}
    for sub in subscribers:
        store.add_outbox(f"hook:{sub.name}:{did}", WEBHOOK_KIND, lead, {"subscription": sub.name, "body": body})
    return len(subscribers)


def queue_stage_changes(store: Store, rules: RuleSet, event_id: str, at: float, state: LeadState, created: bool,
                        transitions: list) -> None:
    """A `stage_changed` webhook per stage history row one event wrote: the lead's first stage when the
    event created it, then each transition."""
    if not any("stage_changed" in s.kinds for s in rules.webhooks):
        return
    if created:
        queue_webhook(store, rules, "stage_changed", state.id, f"{state.id}\x00{event_id}\x00new", at,
                      {"from": None, "to": "new", "reason": "first event", "rule": None, "event_id": event_id}, state)
    for n, t in enumerate(transitions):
        queue_webhook(store, rules, "stage_changed", state.id, f"{state.id}\x00{event_id}\x00{n}",
                      state.clock if state.clock is not None else at,
                      {"from": t["from"], "to": t["to"], "reason": t["reason"], "rule": t["rule"],
                       "event_id": event_id}, state)
