"""What a tuning proposal would do to the reps' queue: SQLs per week, and their precision and recall,
under the live rules and under the proposal, from a backtest of the stored event log.

A manager approving new points or thresholds wants the effect in the reps' terms ("15 SQLs a week
instead of 12, and more of them good"), not only cross-validated AUC. Both rule sets replay the whole
log in memory (as `rules backtest` does; the database is only read). A lead counts as an SQL when the
replay moved it to `sql` at any event. A lead is labelled positive when the log holds a rep's
`sql_accepted` or a `deal_won` for it, negative when it holds only `sql_rejected` or `deal_lost`;
precision counts the labelled SQLs only, recall is over the positive leads. The weeks are the log's
span, first event to last, and never less than one (a day of history is not 7 SQLs a week).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import groupby
from operator import itemgetter

from leadflow.core import parse_time
from leadflow.rules import Compiled, LeadState, load_compiled
from leadflow.runtime import Engine
from leadflow.store import LoggedEvent, Store

WEEK = 7 * 24 * 3600
POSITIVE = ("sql_accepted", "deal_won")
NEGATIVE = ("sql_rejected", "deal_lost")


def queue_effect(store: Store, rules_dir: str, candidate_dir: str) -> dict | None:
    """SQLs per week, precision and recall of the rules in `rules_dir` ("current") and `candidate_dir`
    ("proposed") over the stored log; None when the store holds no events."""
    return replay_queue(store.event_log(), load_compiled(rules_dir), load_compiled(candidate_dir))


def replay_queue(log: Iterable[LoggedEvent], current: Compiled, proposed: Compiled) -> dict | None:
    """`queue_effect` on a log (grouped by lead, in order) and two compiled rule sets."""
    engine = Engine()
    engine.load(current)
    engine.load(proposed)
    evaluate = engine.evaluate
    first = last = None
    sqls = {"current": set(), "proposed": set()}
    labels: dict[str, int] = {}
    n = 0
    for lead, rows in groupby(log, key=itemgetter(0)):
        states = {"current": (current, LeadState(lead)), "proposed": (proposed, LeadState(lead))}
        for _, etype, at_text, data in rows:
            n += 1
            at = parse_time(at_text)
            first = at if first is None else min(first, at)
            last = at if last is None else max(last, at)
            if etype in POSITIVE:
                labels[lead] = 1
            elif etype in NEGATIVE:
                labels.setdefault(lead, 0)
            event = {"id": f"q{n}", "lead": lead, "type": etype, "at": at_text, "data": json.loads(data)}
            for name, (compiled, state) in states.items():
                if any(t["to"] == "sql" for t in evaluate(compiled, state, event, at).transitions):
                    sqls[name].add(lead)
    if first is None:
        return None
    weeks = max((last - first) / WEEK, 1.0)
    positives = {lead for lead, label in labels.items() if label == 1}
    out: dict = {"weeks": round(weeks, 2)}
    for name, made in sqls.items():
        labelled = [lead for lead in made if lead in labels]
        out[name] = {"sqls_per_week": round(len(made) / weeks, 2),
                     "precision": _share(sum(labels[lead] for lead in labelled), len(labelled)),
                     "recall": _share(len(made & positives), len(positives))}
    return out


def queue_line(queue: dict) -> str:
    """The effect in one line, as `rules tune` prints it and the proposal's Slack card shows it."""
    c, p = queue["current"], queue["proposed"]
    return (f"reps' queue: {c['sqls_per_week']:.1f} -> {p['sqls_per_week']:.1f} SQLs/week, precision "
            f"{_figure(c['precision'])} -> {_figure(p['precision'])}, recall {_figure(c['recall'])} -> "
            f"{_figure(p['recall'])} (backtest of {queue['weeks']:g} weeks)")


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
