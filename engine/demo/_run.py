"""`leadflow demo`: generated leads through the whole path, in a fresh SQLite file, then a report."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from leadflow.core import LeadflowError, Location, Problem, format_time, parse_time
from leadflow.desk import SalesDesk
from leadflow.intake import parse_line
from leadflow.nurture import Scheduler
from leadflow.pipeline import Counts, Pipeline
from leadflow.reports import story
from leadflow.store import Store, is_postgres_url

from ._synthetic import demo_leads

if TYPE_CHECKING:
    from leadflow.rules import Compiled


@dataclass
class DemoReport:
    db: str
    rules_version: str
    applied: int
    duplicates: int
    rejected: int
    stages: dict
    sqls: list = field(default_factory=list)  # (lead, persona, reason)
    disqualified: list = field(default_factory=list)
    demoted: list = field(default_factory=list)
    rejections: list = field(default_factory=list)
    fired: dict = field(default_factory=dict)
    routed: list = field(default_factory=list)  # (lead, rep or channel, status, why)
    nurture: list = field(default_factory=list)  # (lead, track, op, at, detail)
    sends: list = field(default_factory=list)  # outbox payloads of nurture messages
    example: str = ""

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("example", "sends")}

    def text(self) -> str:
        out = [f"leadflow demo: {self.applied} events applied, {self.duplicates} duplicates ignored, "
               f"{self.rejected} rejected (rules {self.rules_version}, database {self.db})", "",
               "Leads by stage: " + ", ".join(f"{k} {v}" for k, v in sorted(self.stages.items())), ""]
        out.append(f"New SQLs ({len(self.sqls)}):")
        out += [f"  {lead} ({persona}): {reason.rsplit(' (', 1)[-1].rstrip(')')}" for lead, persona, reason in self.sqls[:10]]
        if len(self.sqls) > 10:
            out.append(f"  ... and {len(self.sqls) - 10} more")
        out.append(f"Routing and the reps' answers ({len(self.routed)} assignments):")
        out += [f"  {lead} -> {who}: {status} ({why})" for lead, who, status, why in self.routed[:12]]
        if len(self.routed) > 12:
            out.append(f"  ... and {len(self.routed) - 12} more")
        enrolled = [n for n in self.nurture if n[2] == "enroll"]
        out.append(f"Nurture over the following weeks: {len(enrolled)} enrolments, "
                   f"{sum(1 for n in self.nurture if n[2] == 'send')} messages queued "
                   f"({', '.join(f'{k} {v}' for k, v in sorted(_count(s['channel'] for s in self.sends).items()))}), "
                   f"{sum(1 for n in self.nurture if n[2] == 'done')} tracks finished, "
                   f"{sum(1 for n in self.nurture if n[2] == 'exited')} left on reaching their goal")
        if enrolled:
            lead = enrolled[0][0]
            out += [f"  {format_time(at)[:10]}  {lead}  {track:<14} {op:<10} {detail}"
                    for who, track, op, at, detail in self.nurture if who == lead][:9]
        out.append(f"Disqualified ({len(self.disqualified)}):")
        out += [f"  {lead}: {reason}" for lead, reason in self.disqualified[:5]]
        out.append(f"Demoted back to new after their interest faded ({len(self.demoted)}):")
        out += [f"  {lead}: {reason}" for lead, reason in self.demoted[:5]]
        out.append("Rejected input (kept as dead letters):")
        out += [f"  line {line}: {fld + ': ' if fld else ''}{reason}" for _, line, fld, reason in self.rejections]
        never = [r for r, n in self.fired.items() if n == 0]
        out.append(f"Rules that fired: {sum(1 for n in self.fired.values() if n)} of {len(self.fired)}"
                   + (f" (never: {', '.join(never)})" if never else ""))
        out += ["", "One SQL explained (leadflow leads explain):", self.example, "",
                f"Try: leadflow --db {self.db} leads list --stage sql"]
        return "\n".join(out)


def _catch_up(scheduler: Scheduler, store: Store, until: float) -> None:
    while True:
        nxt = store.next_due(assignments=False)
        if nxt is None or nxt > until:
            return
        if not any(scheduler.run_due(nxt).values()):
            return  # nothing due could run: do not spin


def _count(items) -> dict:  # noqa: ANN001
    out: dict = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def run_demo(db_path: str, rules_dir: str, n_leads: int = 60, seed: int = 7) -> DemoReport:
    """Run the demo into a fresh database at `db_path` (a previous one there is replaced).

    The rules are compiled first and the database is built beside `db_path` under a temporary name,
    moved into place only when the whole run succeeded: a failing demo leaves no stray file behind and
    the previous demo database as it was."""
    compiled = _compiled(rules_dir)
    if is_postgres_url(db_path):
        return _demo_in_postgres(db_path, compiled, n_leads, seed)
    folder, name = os.path.split(os.path.abspath(db_path))
    building = os.path.join(folder, f".{name}.{os.getpid()}.building")  # SQLite creates it, with the usual mode
    _remove(building)
    store = Store(building)
    try:
        report = _play(Pipeline(store, compiled), n_leads, seed)
    except BaseException:
        store.close()
        _remove(building)
        raise
    store.close()  # the last connection: SQLite checkpoints the WAL into the file and removes it
    for suffix in ("-wal", "-shm"):  # an old WAL beside the new file would be replayed into it
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    os.replace(building, db_path)
    _remove(building, main=False)
    report.db = db_path
    return report


def _demo_in_postgres(url: str, compiled: "Compiled", n_leads: int, seed: int) -> DemoReport:
    """A PostgreSQL database is not a file to build aside and swap in: the demo fills an empty one and
    refuses one that holds events (it never mixes generated leads into real ones)."""
    store = Store(url)
    try:
        if store.count("events"):
            raise LeadflowError([Problem("DEMO_DB_NOT_EMPTY", f"the database holds {store.count('events')} events;"
                                         " the demo fills only an empty database", Location(store.where),
                                         "create one for it (createdb leadflow_demo) and pass its URL with --db")])
        report = _play(Pipeline(store, compiled), n_leads, seed)
    finally:
        store.close()
    report.db = store.where
    return report


def _remove(path: str, main: bool = True) -> None:
    for suffix in ("", "-wal", "-shm") if main else ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _play(pipeline: Pipeline, n_leads: int, seed: int) -> DemoReport:
    leads = demo_leads(n_leads, seed)
    persona = {lead: p for lead, p, _ in leads}
    events = sorted((e for _, _, evs in leads for e in evs), key=lambda e: e["at"])
    lines = [json.dumps(e) for e in events]
    # What real feeds send too: a retried delivery and two broken events.
    lines.insert(5, lines[3])
    lines.append('{"id": "bad-1", "lead": "lead-0001", "type": "page_view", "at": "yesterday"}')
    lines.append('{"id": "bad-2", "type": "page_view", "at": "2026-11-02T09:00:00Z"')
    # Events arrive in time order, and the scheduler keeps up with them: nurture steps and decay
    # ticks due before an event run before it, as they would in a running service.
    scheduler = Scheduler(pipeline.store, pipeline.compiled.rules, pipeline.apply_internal)
    counts = Counts()
    for number, raw in enumerate(lines, 1):
        parsed = parse_line(raw)
        if isinstance(parsed, dict) and isinstance(parsed.get("at"), str):
            try:
                _catch_up(scheduler, pipeline.store, parse_time(parsed["at"]))
            except ValueError:
                pass
        counts.add(pipeline.apply(parsed, raw=raw, source="demo", line=number), "demo", number)
    # Route every new SQL to a rep, then let the reps answer: most accept, some reject with a reason
    # whose consequence runs (disqualify, recycle into nurture, pass on to the next rep).
    store = pipeline.store
    desk = SalesDesk(pipeline, clock=lambda: parse_time("2026-12-21T15:00:00Z"))  # a Monday afternoon in Europe
    desk.route_pending()
    answers = ["accept", "accept", "accept", "no_budget", "accept", "not_now", "accept", "wrong_rep", "student"]
    for i, a in enumerate(store.assignments(status="pending")):
        verdict = answers[i % len(answers)]
        if verdict == "accept":
            desk.decide(a["id"], "accept", f"demo:{a['rep']}", a["rep"], a["rep"] is None)
        else:
            desk.decide(a["id"], "reject", f"demo:{a['rep']}", a["rep"], a["rep"] is None, verdict, "demo answer")
    won = [a["lead"] for a in store.assignments(status="accepted")][:1]
    more = pipeline.apply_lines(enumerate((json.dumps({"id": f"{lead}-won", "lead": lead, "type": "deal_won",
                                                       "at": "2026-12-28T10:00:00Z", "data": {"amount": 24000}})
                                           for lead in won), 1), source="demo-outcomes")
    routed = [(a["lead"], a["rep"] or a["channel"], a["status"], a["why"]) for a in store.assignments()]
    # Weeks pass: nurture tracks run their steps and fading MQLs are re-checked by decay ticks.
    _catch_up(scheduler, store, parse_time("2027-03-01T00:00:00Z"))
    nurture = [(r["lead"], r["track"], r["op"], r["at"], r["detail"]) for r in store.nurture_log()]
    sends = [json.loads(o["payload"]) for o in store.outbox() if o["kind"] in ("email", "webhook", "slack_owner")]
    report = DemoReport(store.path, pipeline.version, counts.applied + more.applied, counts.duplicates,
                        counts.rejected, store.stage_counts(), rejections=counts.rejections, routed=routed,
                        nurture=nurture, sends=sends)
    for change in store.stage_changes():
        if change.to_stage == "sql":
            report.sqls.append((change.lead, persona.get(change.lead, "?"), change.reason))
        elif change.to_stage == "disqualified":
            report.disqualified.append((change.lead, change.reason))
        elif (change.from_stage, change.to_stage) == ("mql", "new"):
            report.demoted.append((change.lead, change.reason))
    fired = {rid: 0 for rid in pipeline.compiled.rules.rule_ids}
    for trace in store.decision_traces():
        for rid in trace["fired"]:
            if rid in fired:
                fired[rid] += 1
    report.fired = fired
    if report.sqls:
        accepted = [lead for lead, _, status, _ in routed if status == "accepted"] or [report.sqls[0][0]]
        report.example = story(store, pipeline.compiled.rules, accepted[-1]) or ""
    return report


def _compiled(rules_dir: str):
    from leadflow.rules import load_compiled

    return load_compiled(rules_dir)
