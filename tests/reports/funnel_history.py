"""Stage histories written straight into a real SQLite file, as an import of CRM history leaves them:
leads with an owner and attributes, stage entries with their dates, deal_won events with amounts. The
tests compute their expected figures from the same `Lead` records, in plain Python, never through
leadflow's code (leadflow only creates the empty schema)."""
from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from leadflow.store import Store

DAY = 86400.0
ORDER = ("new", "mql", "sql", "won")


@dataclass
class Lead:
    id: str
    owner: str | None
    attrs: dict
    stages: dict  # stage -> time of its (first) entry
    amount: float | None = None  # with a "won" stage: the deal_won amount
    extra: list = field(default_factory=list)  # (stage, at) entries after the first ones (re-entries)


def write(db: Path, leads: list[Lead]) -> None:
    Store(str(db)).close()  # the schema, as leadflow declares it
    with closing(sqlite3.connect(db)) as conn:
        for lead in leads:
            last = max(lead.stages.values())
            conn.execute("INSERT INTO leads (id, stage, score, fit, engagement, owner, created_at, updated_at, state)"
                         " VALUES (?, ?, 0, 0, 0, ?, ?, ?, ?)",
                         (lead.id, max(lead.stages, key=lead.stages.get), lead.owner, min(lead.stages.values()), last,
                          json.dumps({"attrs": lead.attrs})))
            entries = sorted(list(lead.stages.items()) + lead.extra, key=lambda e: e[1])
            previous = None
            for stage, at in entries:
                conn.execute("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rules_version)"
                             " VALUES (?, ?, ?, ?, 'imported', 'v1')", (lead.id, previous, stage, at))
                previous = stage
            if "won" in lead.stages:
                conn.execute("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at) VALUES"
                             " (?, ?, 'deal_won', ?, '', ?, 'import', 0)",
                             (f"{lead.id}:won", lead.id, lead.stages["won"], json.dumps({"amount": lead.amount})))
        conn.commit()


SOURCES = {"Google": 31, "Direct Traffic": 27, "Olark Chat": 19, "Organic Search": 12, "Reference": 6,
           "Welingak Website": 2, "Referral Sites": 1}  # X Education's Lead Source mix, in percent
SDRS = ("ana.silva", "bruno.costa", "carla.mendes", "diego.rocha", "elisa.prado", "fabio.lima")


def realistic(start: float, days: int = 420, n: int = 5000, seed: int = 7) -> list[Lead]:
    """A CRM's history: `n` leads created over `days`, about half becoming MQL within days, a third
    of those SQL within weeks, a third of SQLs won months later by one of six SDRs, with amounts."""
    rng = random.Random(seed)
    names, weights = list(SOURCES), list(SOURCES.values())
    leads = []
    for i in range(n):
        created = start + rng.uniform(0, days) * DAY
        source = rng.choices(names, weights)[0]
        stages = {"new": created}
        owner, amount = None, None
        if rng.random() < (0.7 if source == "Reference" else 0.5):
            stages["mql"] = created + rng.expovariate(1 / 3) * DAY
            if rng.random() < 0.35:
                stages["sql"] = stages["mql"] + rng.lognormvariate(2, 0.8) * DAY
                owner = rng.choice(SDRS)
                if rng.random() < (0.5 if source == "Reference" else 0.3):
                    stages["won"] = stages["sql"] + rng.lognormvariate(3.5, 0.6) * DAY
                    amount = round(rng.lognormvariate(8, 0.7), 2)
        stages = {s: at for s, at in stages.items() if at < start + days * DAY}  # nothing after the export
        if "won" not in stages:
            amount = None
        leads.append(Lead(f"L{i:05d}", owner, {"source": source}, stages, amount))
    return leads
