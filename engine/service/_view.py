"""What delivery may read: a read-only view of the live service, given to notifiers when they are built.

A notifier renders a card, a reminder or a proposal when its outbox row is delivered, which can be
long after the row was written: it needs the lead as it is then, the live rules (for the lead's
summary) and the live routing table (a rep's Slack user, the fallback channel, the reject reasons'
labels). It gets them from here, as values, instead of reaching into the service's store, pipeline
and desk, and nothing it is given can change the service. The rules and the routing table are read
through getters, so a reload is seen by the next delivery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from leadflow.core import read_json
from leadflow.desk import RoutingTable
from leadflow.reports import compute, lead_json, recent_activity
from leadflow.rules import LeadState, RuleSet
from leadflow.store import Store


@dataclass(frozen=True)
class Route:
    """Where a rep is reached: their Slack user id if they have one, else the routing fallback."""

    slack: str | None
    fallback: str | None


@dataclass(frozen=True)
class Card:
    """An assignment as a notifier shows it (a card, its update, a reminder, an escalation)."""

    assignment: dict  # the assignment row as it is now (status, rep, channel, why, deadlines, decision)
    lead: dict  # the lead's summary under the live rules: attributes, score and its parts (each with its
    # rule's description), stage, rules version, and `crm_url`, the link to its CRM record (or None)
    activity: list[str]  # the lead's recent events, one line each
    route: Route  # where the assigned rep is reached
    reason_labels: dict  # reject reason id -> its label
    assignments: int  # how many assignments the lead has had


class DeliveryView:
    def __init__(self, store: Store, rules: Callable[[], RuleSet], routing: Callable[[], RoutingTable]):
        self._store = store
        self._rules = rules
        self._routing = routing

    def card(self, assignment_id: int) -> Card:
        store = self._store
        assignment = store.assignment(assignment_id)
        lead = lead_json(store, self._rules(), assignment["lead"])
        routing = self._routing()
        return Card(assignment, lead, recent_activity(store, lead["id"]), self.route(assignment["rep"]),
                    {rid: r["label"] for rid, r in routing.reasons.items()}, len(store.assignments(lead=lead["id"])))

    def crm_url(self, lead_id: str) -> str | None:
        """The lead's CRM record link under the live rules (None without a `crm` template or the attribute)."""
        row = self._store.lead_row(lead_id)
        if row is None:
            return None
        return self._rules().record_url(lead_id, LeadState.from_json(read_json(row["state"])).attrs)

    def route(self, rep_id: str | None) -> Route:
        routing = self._routing()
        rep = routing.reps.get(rep_id) if rep_id else None
        return Route(rep.slack if rep else None, routing.fallback)

    def posted(self, key: str) -> dict | None:
        """What delivering the outbox row `key` returned (a Slack channel and ts), once it is done."""
        return self._store.outbox_result(key)

    def status(self, key: str) -> str | None:
        return self._store.outbox_status(key)

    def proposal(self, proposal_id: int) -> dict | None:
        return self._store.proposal(proposal_id)

    def stats(self, since: float | None, until: float | None, by: str | None = None, rep: str | None = None,
              weekly: bool = False) -> dict:
        return compute(self._store, since, until, by, rep, weekly=weekly)
