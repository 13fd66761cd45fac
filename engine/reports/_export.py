"""Leads out, in the columns a HubSpot-style import reads: `leadflow export`.

One row per lead: the id as `Record ID`, the current stage as `Lifecycle Stage`, the owner, when the
lead was created and when it entered each stage (HubSpot's "Became a ... Date" names where HubSpot
has one), score, fit, engagement, the four BANT criteria and the rule version that decided them.
Where a lead entered a stage more than once, the column holds the LATEST entry, so the stages read
back in date order end at the lead's current stage. `rules/examples/leadflow-export.mapping.yaml`
reads the file back with `leadflow ingest --mapping` (stages and owner as imported history).
Times are ISO 8601 in UTC.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from leadflow.core import format_time
from leadflow.store import Store

# leadflow stage -> the column holding when the lead (last) entered it
STAGE_COLUMNS = {
    "mql": "Became a Marketing Qualified Lead Date",
    "sql": "Became a Sales Qualified Lead Date",
    "accepted": "Sales Accepted Date",
    "rejected": "Sales Rejected Date",
    "recycled": "Recycled Date",
    "won": "Became a Customer Date",
    "lost": "Closed Lost Date",
    "disqualified": "Disqualified Date",
}
COLUMNS = ("Record ID", "Email", "Lifecycle Stage", "Contact owner", "Create Date", *STAGE_COLUMNS.values(),
           "Lead Score", "Fit Score", "Engagement Score", "BANT Budget", "BANT Authority", "BANT Need",
           "BANT Timeline", "Disqualified Reason", "Rules Version")


@dataclass
class ExportedLead:
    """One lead as exported: `columns` in COLUMNS order (values as text, empty when unknown)."""

    columns: dict

    def to_json(self) -> dict:
        return dict(self.columns)


def export_leads(store: Store, stage: str | None = None) -> Iterator[ExportedLead]:
    """Every lead (or those in `stage`), best score first."""
    for row in store.list_leads(stage):
        state = store.load_state(row["id"])
        if state is None:
            continue
        entered: dict[str, float] = {}
        created = None
        for h in store.history(row["id"]):
            if h["from_stage"] is None and created is None:
                created = h["at"]
            entered[h["to_stage"]] = h["at"]  # in recorded order: the last entry wins
        email = state.attrs.get("email")
        values = {"Record ID": state.id, "Email": email if isinstance(email, str) else "",
                  "Lifecycle Stage": state.stage, "Contact owner": state.owner or "",
                  "Create Date": format_time(created) if created is not None else "",
                  **{column: format_time(entered[s]) if s in entered else "" for s, column in STAGE_COLUMNS.items()},
                  "Lead Score": _number(state.score), "Fit Score": _number(state.fit),
                  "Engagement Score": _number(state.engagement),
                  **{f"BANT {name.capitalize()}": "true" if state.bant.get(name) else "false"
                     for name in ("budget", "authority", "need", "timeline")},
                  "Disqualified Reason": state.disqualified or "", "Rules Version": state.rules_version or ""}
        yield ExportedLead({c: values[c] for c in COLUMNS})


def _number(value: float) -> str:
    return f"{value:g}" if value == value else ""
