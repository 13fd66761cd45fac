"""Imported history and the rules' decisions, combined. The contract (README, "Importing CRM history"):

1. An imported stage entry (a `stage_imported` event: HubSpot's "Became a ... Date", a stage + date
   pair; or, in a history import, a `deal_won` / `deal_lost` at its own date) is a row of the lead's
   stage history at its own time, with rule `imported` and the file and column it came from as its
   reason. It is recorded, not decided: the rules are not asked. The same stage at the same time
   already in the history (a contacts file's customer date and a deals file's close date) adds nothing.
2. The lead's current stage is the stage of its newest entry by time: an imported entry older than the
   lead's current stage is history only (it counts for stats at its own time; the lead stays where it
   is), a newer one moves the lead, whatever the stage (the CRM said so). Each row's `from_stage` is
   the entry before it in time, so importing files in either order gives the same history.
3. In a history import (a CSV whose mapping names stage dates or the outcome's date), the rules do not
   move stages on the imported rows (no gate fires, nobody is routed, no card is sent): attributes and
   scores are updated, the stages are the CRM's. A lead's `new` entry is at its earliest imported time.
   Nor does history enrol anyone in a nurture track or set a decay timer: that starts with the lead's
   next live event.
4. From then on the rules take over: a new event (webhook, JSONL, a CSV without stage dates) is
   decided from the lead's current stage, and gates move it on as usual (an imported MQL can become
   SQL and be routed). The only rule that moves a lead backwards, decay demotion (`demote_below`),
   never demotes a stage that was imported: the CRM's MQL stays MQL until an event moves it on.
5. `owner_imported` sets the lead's owner to the rep whose id, e-mail or name (case-insensitive) is
   the value; a value that matches no rep is rejected (a dead letter naming the column), and the rest
   of the row stands.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from leadflow.core import EngineError
from leadflow.intake import STAGES, Intake
from leadflow.rules import LeadState, RuleSet
from leadflow.store import Store

IMPORTED = "imported"  # the `rule` of an imported stage entry


@dataclass
class Before:
    """The lead as it was before the event: to undo the rules' stage moves on history, and to tell a late event."""

    stage: str
    stage_at: float | None
    clock: float | None
    disqualified: str | None

    @classmethod
    def of(cls, state: LeadState) -> Before:
        return cls(state.stage, state.stage_at, state.clock, state.disqualified)

    def late(self, at: float) -> bool:
        """The event is older than what the lead had already seen."""
        return self.clock is not None and at < self.clock


@dataclass
class Entry:
    """An imported stage entry waiting for the event's row to be written."""

    lead: str
    from_stage: str | None
    stage: str
    at: float
    reason: str
    event_id: str
    late: bool


def settle(store: Store, rules: RuleSet, state: LeadState, event: dict, at: float, transitions: list,
           intake: Intake, source: str, before: Before) -> Entry | None:
    """After the engine decided: undo what the rules may not do here, apply what the event imports.
    `transitions` is the decision's list (edited in place)."""
    if intake.history or (any(t.get("rule") == "demote" for t in transitions)
                          and store.current_stage_imported(state.id)):
        transitions.clear()
        state.stage, state.stage_at, state.disqualified = before.stage, before.stage_at, before.disqualified
    data = event.get("data") or {}
    etype = event["type"]
    if etype == "owner_imported":
        state.owner = _rep(rules, data)
        return None
    if etype == "stage_imported":
        stage = data.get("stage")
        if stage not in STAGES:
            raise EngineError("BAD_STAGE", f"stage_imported needs data.stage, one of {', '.join(STAGES)}; got {stage!r}")
    elif intake.history and etype in ("deal_won", "deal_lost"):
        stage = "won" if etype == "deal_won" else "lost"
    else:
        return None
    if store.has_stage_entry(state.id, stage, at):
        return None
    newest = before.stage_at is None or at >= before.stage_at
    entry = Entry(state.id, before.stage if newest else None, stage, at, _reason(source, etype, data), event["id"],
                  not newest)
    if newest:
        state.stage, state.stage_at = stage, at
        if stage == "disqualified":
            state.disqualified = state.disqualified or "imported"
    return entry


def finish(store: Store, lead: str, entry: Entry | None, at: float, created: bool, intake: Intake,
           version: str) -> None:
    """After the event's row is written: the imported entry, its place in time, an earlier `new`."""
    if intake.history and not created:
        store.backdate_lead(lead, at)
    if entry is None:
        return
    store.add_stage_entry(entry.lead, entry.from_stage, entry.stage, entry.at, entry.reason, IMPORTED, version,
                          entry.event_id)
    if entry.late:
        store.rechain_stages(entry.lead)


def _reason(source: str, etype: str, data: dict) -> str:
    where = os.path.basename(source) if source and source != "-" else "an import"
    column = data.get("column")
    return f"imported from {where}" + (f", column '{column}'" if isinstance(column, str) else f" ({etype})")


def _rep(rules: RuleSet, data: dict) -> str:
    """The id of the rep the imported owner names (by id, e-mail or name, case-insensitive)."""
    raw = data.get("owner")
    column = data.get("column") or "owner"
    reps = [r for r in rules.section("reps", []) or [] if isinstance(r, dict)]
    if isinstance(raw, str) and raw.strip():
        wanted = raw.strip().casefold()
        for rep in reps:
            if wanted in {str(rep.get(k, "")).strip().casefold() for k in ("id", "email", "name") if rep.get(k)}:
                return str(rep["id"])
    known = ", ".join(str(r.get("id")) for r in reps[:10]) or "none"
    raise EngineError("UNKNOWN_OWNER", f"column '{column}': owner {raw!r} is no rep of the rule files' reps: "
                                       f"(matched by id, e-mail or name; reps: {known})",
                      "add the rep to reps: in routing.yaml, or fix the export's owner")
