"""The sales desk: routing new SQLs to reps, their accept/reject decisions, and SLA deadlines.

Everything here is a transaction on the store plus outbox rows (`card`, `card_update`, `remind`,
`escalate`) that a notifier delivers later; the desk knows nothing about Slack. Rep feedback goes back
into the lead's event log as ordinary events (`sql_accepted`, `sql_rejected`, ...), so the rules and
stages react to it by forward chaining like to any other event.

Several processes may run the desk on one database. Each transaction here takes the lead's lock
first (as an event does: they change the lead's state and owner), then claims its work inside the
transaction: a `route_sql` row by `claim_route`, an SLA action and a decision by the compare-and-set
`close_assignment` / `mark_reminded`, so each is done once and a crash rolls the claim back with the
work. Choosing a rep also holds the routing lock, so two processes never both give the last seat of
a rep at capacity. A transaction that deadlocked with another process is left for the next pass.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from leadflow.core import EngineError, add_working_time, format_time, parse_duration
from leadflow.pipeline import Pipeline, queue_webhook

from ._routing import RoutingTable, build_routing, choose

log = logging.getLogger("leadflow.desk")


@dataclass
class Verdict:
    status: str  # done | already | forbidden | unknown | bad_reason | error
    message: str
    assignment: dict | None = None


class SalesDesk:
    def __init__(self, pipeline: Pipeline, clock: Callable[[], float] = time.time):
        self.pipeline = pipeline
        self.store = pipeline.store
        self.routing: RoutingTable = build_routing(pipeline.compiled.rules)
        self.clock = clock

    # -- routing --------------------------------------------------------------------------------------
    def route_pending(self) -> int:
        """Turn `route_sql` outbox rows (written with the SQL transition) into assignments."""
        done = 0
        for row in self.store.due_outbox(float("inf"), ("route_sql",)):
            try:
                done += self._route(row)
            except Exception as exc:
                if not self.store.is_retryable(exc):
                    raise
                log.warning("routing %s deadlocked with another process; it is routed on the next pass", row["lead"])
        return done

    def _route(self, row: dict) -> int:
        with self.store.transaction():
            self.store.lock_leads((row["lead"],))
            if not self.store.claim_route(row["id"]):  # another process routed it since the read
                return 0
            if self.store.assignments(lead=row["lead"], status="pending"):
                self.store.outbox_done(row["id"], {"skipped": "already assigned"})
                return 0
            state = self.store.load_state(row["lead"])
            if state is None or state.stage != "sql":  # it moved on before a rep was found
                self.store.outbox_done(row["id"], {"skipped": f"lead is {state.stage if state else 'gone'}"})
                return 0
            assignment = self.assign(row["lead"])
            self.store.outbox_done(row["id"], {"assignment": assignment["id"]})
            return 1

    def assign(self, lead: str, exclude: set = frozenset(), attempt: int = 0) -> dict:
        now = self.clock()
        with self.store.transaction():
            self.store.lock_leads((lead,))
            self.store.lock_routing()  # the loads and shares read below stay true until this commits
            state = self.store.load_state(lead)
            attrs = state.attrs if state else {}
            choice = choose(self.routing, attrs, now, self.store.open_counts(), self.store.assignment_totals(),
                            set(exclude))
            row = {"lead": lead, "rep": choice.rep.id if choice.rep else None, "channel": choice.channel,
                   "status": "pending", "why": choice.why, "attempt": attempt, "assigned_at": now}
            if choice.rep and self.routing.sla.get("accept_within"):
                within = parse_duration(self.routing.sla["accept_within"])
                row["due_at"] = add_working_time(choice.rep.hours, now, within)
                share = _percent(self.routing.sla.get("remind_at"))
                if share:
                    row["remind_at"] = add_working_time(choice.rep.hours, now, within * share)
            row["id"] = self.store.add_assignment(row)
            self.store.set_owner(lead, row["rep"])
            self.store.add_outbox(f"card:{row['id']}", "card", lead, {"assignment": row["id"]})
            rep = choice.rep
            self._announce("sql_assigned", lead, row["id"], now, {
                "assignment": row["id"], "rep": row["rep"], "rep_name": rep.name if rep else None,
                "rep_email": rep.email if rep else None, "channel": row["channel"], "why": row["why"],
                "attempt": attempt, "due_at": format_time(row["due_at"]) if row.get("due_at") else None})
            return row

    # -- decisions ------------------------------------------------------------------------------------
    def may_decide(self, assignment: dict, rep_id: str | None, manager: bool) -> bool:
        return manager or (rep_id is not None and assignment["rep"] == rep_id)

    def decide(self, assignment_id: int, verdict: str, by: str | None, rep_id: str | None = None,
               manager: bool = False, reason: str | None = None, comment: str | None = None) -> Verdict:
        """Accept or reject an assignment exactly once, whoever clicks twice or at the same time."""
        try:
            return self._decide(assignment_id, verdict, by, rep_id, manager, reason, comment)
        except EngineError as exc:  # its event could not be recorded: nothing was decided, and the rep hears why
            self.pipeline.keep_dead_letter(exc)
            return Verdict("error", f"the decision was not recorded: {exc}", self.store.assignment(assignment_id))

    def _decide(self, assignment_id: int, verdict: str, by: str | None, rep_id: str | None,
                manager: bool, reason: str | None, comment: str | None) -> Verdict:
        assignment = self.store.assignment(assignment_id)
        if assignment is None:
            return Verdict("unknown", f"there is no assignment {assignment_id}")
        if not self.may_decide(assignment, rep_id, manager):
            owner = assignment["rep"] or assignment["channel"]
            return Verdict("forbidden", f"{assignment['lead']} is assigned to {owner}; only they or a manager "
                                        "can accept or reject it", assignment)
        if verdict == "reject" and reason not in self.routing.reasons:
            choices = ", ".join(self.routing.reasons) or "(none configured)"
            return Verdict("bad_reason", f"'{reason}' is not a reject reason; use one of: {choices}", assignment)
        now = self.clock()
        then = self.routing.reasons.get(reason or "", {}).get("then") if verdict == "reject" else None
        status = "accepted" if verdict == "accept" else ("reassigned" if then == "reassign" else "rejected")
        with self.store.transaction(durable=True):  # the rep is told it is done: it must survive a power loss
            self.store.lock_leads((assignment["lead"],))  # before the assignment's row, like the SLA tick
            if not self.store.close_assignment(assignment_id, status, now, by, reason, comment):
                current = self.store.assignment(assignment_id)
                return Verdict("already", f"{current['lead']} was already {current['status']} by "
                                          f"{current['decided_by']}", current)
            lead = assignment["lead"]
            self.store.add_feedback({"assignment": assignment_id, "lead": lead, "rep": assignment["rep"],
                                     "verdict": verdict, "reason": reason, "comment": comment, "by": by, "at": now})
            data = {"assignment": assignment_id, "rep": assignment["rep"], "by": by}
            if verdict == "accept":
                self._event(lead, f"fb-{assignment_id}", "sql_accepted", now, data)
            elif then == "reassign":
                self._event(lead, f"fb-{assignment_id}", "sql_reassigned", now, {**data, "reason": reason})
                self._reassign(assignment)
            else:
                self._event(lead, f"fb-{assignment_id}", "sql_rejected", now, {**data, "reason": reason,
                                                                                 "comment": comment})
                if then == "disqualify":
                    self._event(lead, f"fb-{assignment_id}-dq", "lead_disqualified", now, {"reason": reason})
                elif isinstance(then, dict) and "nurture" in then:
                    self._event(lead, f"fb-{assignment_id}-recycle", "lead_recycled", now,
                                {"reason": reason, "track": then["nurture"]})
            self.store.add_outbox(f"card_update:{assignment_id}", "card_update", lead, {"assignment": assignment_id})
            kind = {"accepted": "sql_accepted", "reassigned": "sql_reassigned"}.get(status, "sql_rejected")
            label = self.routing.reasons.get(reason or "", {}).get("label") if verdict == "reject" else None
            self._announce(kind, lead, assignment_id, now, {**data, "reason": reason, "reason_label": label,
                                                            "comment": comment})
            return Verdict("done", f"{lead} {status}", self.store.assignment(assignment_id))

    def _event(self, lead: str, event_id: str, etype: str, now: float, data: dict) -> None:
        """The decision as an event in the lead's log. If it cannot be applied (its id is taken, say),
        this raises: the decision's transaction rolls back and `decide` answers with an error verdict
        the rep sees, instead of an Accept that silently changes nothing."""
        self.pipeline.apply_internal({"id": event_id, "lead": lead, "type": etype, "at": format_time(now),
                                      "data": data}, source="feedback")

    def _announce(self, kind: str, lead: str, assignment_id: int, now: float, data: dict) -> None:
        """The CRM webhooks for this change, in its transaction (one per assignment and kind)."""
        queue_webhook(self.store, self.pipeline.compiled.rules, kind, lead, str(assignment_id), now, data,
                      self.store.load_state(lead))

    def _reassign(self, assignment: dict) -> dict:
        tried = {a["rep"] for a in self.store.assignments(lead=assignment["lead"]) if a["rep"]}
        return self.assign(assignment["lead"], exclude=tried, attempt=assignment["attempt"] + 1)

    # -- SLA -------------------------------------------------------------------------------------------
    def tick(self) -> dict:
        """Send due reminders; reassign (then escalate) assignments nobody decided in time."""
        now = self.clock()
        counts = {"reminded": 0, "reassigned": 0, "escalated": 0}
        for a in self.store.due_assignments(now):
            try:
                for outcome in self._due(a, now):
                    counts[outcome] += 1
            except Exception as exc:
                if not self.store.is_retryable(exc):
                    raise
                log.warning("the SLA of assignment %s deadlocked with another process; next pass", a["id"])
        return counts

    def _due(self, a: dict, now: float) -> list[str]:
        """One due assignment, in one transaction; what was done (the compare-and-set updates make a
        second process that read the same row do nothing)."""
        with self.store.transaction():
            self.store.lock_leads((a["lead"],))
            state = self.store.load_state(a["lead"])
            if state is not None and state.stage != "sql":  # disqualified, won or lost meanwhile
                if self.store.close_assignment(a["id"], "closed", now, None, f"lead is {state.stage}", None):
                    self.store.add_outbox(f"card_update:{a['id']}", "card_update", a["lead"], {"assignment": a["id"]})
                return []
            if a["due_at"] is not None and a["due_at"] <= now:
                return self._timeout(a, now)
            if a["remind_at"] is not None and self.store.mark_reminded(a["id"]):
                self.store.add_outbox(f"remind:{a['id']}", "remind", a["lead"], {"assignment": a["id"]})
                return ["reminded"]
            return []

    def _timeout(self, a: dict, now: float) -> list[str]:
        """Expire an assignment; reassign and/or escalate as the SLA says. Returns what was done."""
        if not self.store.close_assignment(a["id"], "expired", now, None, "sla_timeout", None):
            return []  # decided meanwhile
        self.store.add_outbox(f"card_update:{a['id']}", "card_update", a["lead"], {"assignment": a["id"]})
        self._announce("sql_expired", a["lead"], a["id"], now, {"assignment": a["id"], "rep": a["rep"]})
        policy = self.routing.sla.get("on_timeout", "reassign")
        limit = self.routing.sla.get("escalate_after")
        expired = sum(1 for x in self.store.assignments(lead=a["lead"]) if x["status"] == "expired")
        done = []
        if policy == "escalate" or (limit is not None and expired >= limit):
            self.store.add_outbox(f"escalate:{a['id']}", "escalate", a["lead"],
                                  {"assignment": a["id"], "channel": self.routing.sla.get("escalate_to")})
            done.append("escalated")
        if policy == "reassign":
            self._reassign(a)
            done.append("reassigned")
        return done


def _percent(text: object) -> float | None:
    if isinstance(text, str) and text.strip().endswith("%"):
        try:
            value = float(text.strip()[:-1]) / 100
        except ValueError:
            return None
        return value if 0 < value < 1 else None
    return None
