"""Labelled leads for eval and tune: from a CSV with a mapping, or from the event log's feedback
(`sql_accepted` / `sql_rejected`) and outcomes (`deal_won` / `deal_lost`)."""
from __future__ import annotations

import json

from leadflow.intake import LabelledLead, labelled_leads, load_mapping, read_rows, readable
from leadflow.store import Store

LABEL_TYPES = {"sql_accepted", "sql_rejected", "sql_reassigned", "deal_won", "deal_lost", "lead_disqualified",
               "lead_recycled", "lead_reopened", "decay_tick"}


def leads_from_csv(data_path: str, mapping_path: str) -> list[LabelledLead]:
    header, rows = read_rows(data_path)
    return readable(labelled_leads(load_mapping(mapping_path, header), rows))


def leads_from_store(db: Store | str) -> list[LabelledLead]:
    """From an open store (a running service's: no second connection pool), or a database's address."""
    store = db if isinstance(db, Store) else Store(db)
    out: dict[str, LabelledLead] = {}
    for lead, etype, at_text, data in store.event_log():
        item = out.setdefault(lead, LabelledLead(lead, []))
        if etype in ("deal_won", "deal_lost"):
            item.outcome = int(etype == "deal_won")
        elif etype in ("sql_accepted", "sql_rejected"):
            item.verdict = "accept" if etype == "sql_accepted" else "reject"
            item.reason = json.loads(data).get("reason")
        elif etype not in LABEL_TYPES:
            item.events.append({"id": f"{lead}:{len(item.events)}", "lead": lead, "type": etype, "at": at_text,
                                "data": json.loads(data)})
    return [x for x in out.values() if x.events]
