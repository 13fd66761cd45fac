"""Stage histories written straight into a real database (a SQLite file or PostgreSQL), as an import of
CRM history leaves them: leads with an owner and attributes, stage entries with their dates, deal_won
events with amounts. The tests compute their expected figures from the same `Lead` records, in plain
Python, never through leadflow's code (leadflow only creates the empty schema; the rows go in as plain
INSERTs through the store's `sql`)."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from leadflow.store import Store
from tests.postgres import database_for

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


def database(request: pytest.FixtureRequest, directory: Path) -> str:
    """A new database for a fixture parametrised by backend ("sqlite" or "postgresql"), of any scope:
    a file in `directory`, or a PostgreSQL database dropped when the fixture ends."""
    return database_for(request, directory, "crm.db")


def write(db: Path | str, leads: list[Lead]) -> None:
    store = Store(str(db))  # the schema, as leadflow declares it
    try:
        with store.transaction():
            _insert(store, "leads", ("id", "stage", "score", "fit", "engagement", "owner", "created_at", "updated_at",
                                     "state"),
                    [(x.id, max(x.stages, key=x.stages.get), 0, 0, 0, x.owner, min(x.stages.values()),
                      max(x.stages.values()), json.dumps({"attrs": x.attrs})) for x in leads])
            history = []
            for x in leads:
                previous = None
                for stage, at in sorted(list(x.stages.items()) + x.extra, key=lambda e: e[1]):
                    history.append((x.id, previous, stage, at, "imported", "v1"))
                    previous = stage
            _insert(store, "stage_history", ("lead", "from_stage", "to_stage", "at", "reason", "rules_version"),
                    history)
            _insert(store, "events", ("id", "lead", "type", "at", "at_text", "data", "source", "received_at"),
                    [(f"{x.id}:won", x.id, "deal_won", x.stages["won"], "", json.dumps({"amount": x.amount}), "import",
                      0) for x in leads if "won" in x.stages])
    finally:
        store.close()


def _insert(store: Store, table: str, columns: tuple[str, ...], rows: list[tuple], chunk: int = 500) -> None:
    """Plain multi-row INSERTs (a round trip per `chunk` rows, not per row)."""
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        marks = ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * len(part))
        store.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {marks}", [v for row in part for v in row])


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
