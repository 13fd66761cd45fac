"""`leadflow rules backtest`: what a candidate rule set would have done with the stored event log.

The log is streamed lead by lead (events in arrival order) and replayed in memory through the
current and the candidate rules side by side; the live database is only read. For leads with rep
feedback it counts the accepted SQLs the candidate would never have made SQL (lost) and the
rejected ones it would have kept out (filtered).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from itertools import groupby
from typing import Callable

from leadflow.core import parse_time
from leadflow.rules import Compiled, LeadState
from leadflow.runtime import Engine
from leadflow.store import Store

MAX_LISTED = 100


def backtest(store: Store, current: Compiled, candidate: Compiled, engine: Engine | None = None,
             progress: Callable[[int], None] | None = None) -> dict:
    engine = engine or Engine()
    started = time.perf_counter()
    stages = {"current": Counter(), "candidate": Counter()}
    changed: list = []
    n_changed = events = leads = 0
    feedback = Counter()
    for lead, rows in groupby(store.event_log(), key=lambda r: r[0]):
        leads += 1
        states = {"current": LeadState(lead), "candidate": LeadState(lead)}
        reached = {"current": False, "candidate": False}
        verdict = None
        for _, etype, at_text, data in rows:
            events += 1
            event = {"id": f"bt{events}", "lead": lead, "type": etype, "at": at_text, "data": json.loads(data)}
            at = parse_time(at_text)
            for name, compiled in (("current", current), ("candidate", candidate)):
                if etype in ("sql_accepted", "sql_rejected") and states[name].stage == "sql":
                    reached[name] = True
                d = engine.evaluate(compiled, states[name], event, at)
                reached[name] = reached[name] or any(t["to"] == "sql" for t in d.transitions)
            if etype in ("sql_accepted", "sql_rejected"):
                verdict = etype
        for name in states:
            stages[name][states[name].stage] += 1
        a, b = states["current"].stage, states["candidate"].stage
        if a != b:
            n_changed += 1
            if len(changed) < MAX_LISTED:
                changed.append({"lead": lead, "current": a, "candidate": b})
        if verdict == "sql_accepted":
            feedback["accepted"] += 1
            feedback["accepted_lost"] += not reached["candidate"]
        elif verdict == "sql_rejected":
            feedback["rejected"] += 1
            feedback["rejected_filtered"] += not reached["candidate"]
        if progress and leads % 1000 == 0:
            progress(events)
    seconds = time.perf_counter() - started
    return {"events": events, "leads": leads, "seconds": round(seconds, 1),
            "events_per_s": round(events / seconds) if seconds else None,
            "current_version": current.rules.version, "candidate_version": candidate.rules.version,
            "stages": {"current": dict(stages["current"]), "candidate": dict(stages["candidate"])},
            "changed": n_changed, "changed_leads": changed,
            "feedback": {"accepted": feedback["accepted"], "accepted_lost": feedback["accepted_lost"],
                         "rejected": feedback["rejected"], "rejected_filtered": feedback["rejected_filtered"]}}
