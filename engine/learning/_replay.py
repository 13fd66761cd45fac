"""Replaying the event log through two rule sets in memory, and the tally of what changed (the work of
`leadflow rules backtest`, in one process or in each of several: see _backtest.py)."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from leadflow.core import parse_time
from leadflow.rules import Compiled, LeadState
from leadflow.runtime import Engine
from leadflow.store import LoggedEvent

MAX_LISTED = 100  # changed leads listed by name; the count covers them all
TICK_EVERY = 1000  # events between two progress reports
VERDICTS = ("sql_accepted", "sql_rejected")


class Changed(NamedTuple):
    """A lead the candidate would leave in another stage; sorts by lead id."""

    lead: str
    current: str
    candidate: str


@dataclass
class Tally:
    """What one replay found: the sums a backtest reports, and its first changed leads by id. Tallies of
    disjoint sets of leads add up to the tally of their union (`merge`), whatever the split."""

    events: int = 0
    leads: int = 0
    stages: dict[str, Counter] = field(default_factory=lambda: {"current": Counter(), "candidate": Counter()})
    changed: int = 0
    changed_leads: list[Changed] = field(default_factory=list)
    feedback: Counter = field(default_factory=Counter)

    def note_changed(self, change: Changed) -> None:
        self.changed += 1
        self.changed_leads.append(change)
        if len(self.changed_leads) > 4 * MAX_LISTED:  # bounded memory: only the first MAX_LISTED can be listed
            self._trim()

    def merge(self, other: Tally) -> None:
        self.events += other.events
        self.leads += other.leads
        for name, counts in other.stages.items():
            self.stages[name].update(counts)
        self.changed += other.changed
        self.changed_leads += other.changed_leads
        self._trim()
        self.feedback.update(other.feedback)

    def _trim(self) -> None:
        self.changed_leads = sorted(self.changed_leads)[:MAX_LISTED]


def replay(log: Iterable[LoggedEvent], current: Compiled, candidate: Compiled, engine: Engine,
           tick: Callable[[int], None] | None = None) -> Tally:
    """Replay an event log (grouped by lead, in order) through both rule sets in memory; `tick(events)`
    every TICK_EVERY events. Each event is parsed once and given to both rule sets."""
    tally = Tally()
    evaluate = engine.evaluate
    n = 0
    for lead, rows in groupby(log, key=itemgetter(0)):
        now, then = LeadState(lead), LeadState(lead)
        reached = False  # whether the candidate made this lead SQL before its rep's verdict (or ever)
        verdict = None
        for _, etype, at_text, data in rows:
            n += 1
            event = {"id": f"bt{n}", "lead": lead, "type": etype, "at": at_text, "data": json.loads(data)}
            at = parse_time(at_text)
            if etype in VERDICTS:
                verdict = etype
                reached = reached or then.stage == "sql"
            evaluate(current, now, event, at)
            if not reached:
                reached = any(t["to"] == "sql" for t in evaluate(candidate, then, event, at).transitions)
            else:
                evaluate(candidate, then, event, at)
            if tick and n % TICK_EVERY == 0:
                tick(n)
        tally.leads += 1
        tally.stages["current"][now.stage] += 1
        tally.stages["candidate"][then.stage] += 1
        if now.stage != then.stage:
            tally.note_changed(Changed(lead, now.stage, then.stage))
        if verdict == "sql_accepted":
            tally.feedback["accepted"] += 1
            tally.feedback["accepted_lost"] += not reached
        elif verdict == "sql_rejected":
            tally.feedback["rejected"] += 1
            tally.feedback["rejected_filtered"] += not reached
    tally.events = n
    if tick:
        tick(n)
    return tally
