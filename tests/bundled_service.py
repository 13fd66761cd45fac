"""The bundled rules (rules/, without its tests and examples) in one LeadService on a manual clock, with
cards, e-mails and webhooks written to a text buffer: the desk, nurture and reports as the worker runs
them, fast-forwarded in-process. Tests get it from the `bundled` fixture (tests/conftest.py)."""
from __future__ import annotations

import io
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from leadflow.bots.notifier import ConsoleNotifier
from leadflow.core import format_time, parse_time
from leadflow.delivery import ChannelSender, ChannelSettings
from leadflow.service import LeadService, ManualClock

ROOT = Path(__file__).resolve().parents[1]
T0 = parse_time("2026-11-02T15:00:00Z")  # a Monday afternoon in Europe, morning in New York
DAY = 86400.0
BUYER = {"email": "ann@acme.example", "title": "VP Sales", "employees": 300, "country": "US", "industry": "saas",
         "name": "Ann"}  # fit enough for an MQL; a pricing inquiry makes the lead an SQL for alice


@dataclass
class Bundled:
    service: LeadService
    clock: ManualClock  # the service's clock: set `clock.now`, or let run_until move it
    out: io.StringIO  # what the console notifier and the e-mail/webhook sender wrote
    rules: Path  # the service's own copy of the bundled rules (tests may change its templates)

    def apply(self, eid: str, lead: str, etype: str, at: float, data: dict | None = None) -> None:
        """Ingest one event dated `at`; it must be applied."""
        out = self.service.pipeline.apply({"id": eid, "lead": lead, "type": etype, "at": format_time(at),
                                           "data": data or {}})
        assert out.status == "applied", out.reason

    def sql(self, lead: str, **attrs: object) -> dict:
        """Make `lead` (BUYER, with `attrs` over it) an SQL by a pricing inquiry at T0 + 60 s, run the
        worker once to route it, and return its assignment."""
        self.apply("a", lead, "lead_updated", T0, {**BUYER, **attrs})
        self.apply("b", lead, "pricing_inquiry", T0 + 60)
        self.service.work_once()
        return self.service.store.assignments(lead=lead)[0]

    def run_until(self, until: float) -> dict:
        """Run the worker (routing, SLA, nurture, delivery) with the clock moving up to `until`."""
        return self.service.run_until(until, self.clock)


@contextmanager
def bundled_service(directory: Path, db: str | None = None) -> Iterator[Bundled]:
    """A Bundled on `db` (a path or a postgresql:// URL; directory/db.sqlite by default), its clock at T0;
    the store is closed after."""
    rules = directory / "rules"
    shutil.copytree(ROOT / "rules", rules,
                    ignore=shutil.ignore_patterns("tests", "examples", "REFERENCE.md", "schema.json"))
    clock, out = ManualClock(T0), io.StringIO()
    service = LeadService(db or str(directory / "db.sqlite"), str(rules), clock=clock)
    service.deliver_through([ConsoleNotifier(out, service.view), ChannelSender(ChannelSettings(), service.store, out)])
    try:
        yield Bundled(service, clock, out, rules)
    finally:
        service.store.close()
