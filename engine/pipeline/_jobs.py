"""`leadflow ingest --jobs N`: the rules evaluated in N processes, each lead's lines in one of them, in order.

While events are applied, leads are independent of one another but for one thing: an event id is
one event whatever its lead, so the first line to use an id takes it, and a later line with that id
(of any lead) is a duplicate or a conflict. So the lines are split by lead (core's `lead_share`: crc32
of the lead id as stored, so all of a lead's lines go to one process, in file order; a line whose lead
cannot be read goes to the first, which keeps it as a dead letter with its line number), and the
leads that could meet another lead's event are kept back ("deferred") and applied by this process
itself, in file order, once the others are done:
- every lead one of whose event ids another lead's line also uses (the whole group of such leads);
- on SQLite, every lead already in the database, and every lead one of whose event ids the log
  already holds (the processes write scratch files and do not see the database).
Applying a deferred lead after the others gives what one process would have: it shares no event id
with them, and nothing else one lead's events do depends on another lead.

PostgreSQL: each process is a normal Pipeline on the database itself, in its usual durable batches;
per-lead advisory locks keep them (and any live instance) apart.

SQLite (one writer): each process runs a normal Pipeline into a scratch file of its own, and this
process then merges every file into the database in ONE transaction (store.merge_parts: ATTACH and
INSERT ... SELECT, ids moved past the database's own), then applies the deferred leads through the
normal pipeline. The database is untouched until that transaction commits: a process that fails
fails the whole command with its error, and leaves nothing.

The counts (applied, duplicates, rejected, conflicts, late, and the first 100 rejections with their
line numbers) add up to what one process reports for the same lines.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field

from leadflow.core import LeadflowError, Location, Problem, lead_share
from leadflow.intake import OUTSIDE, Intake, Unreadable, check_id, from_segment, parse_line
from leadflow.rules import load_compiled
from leadflow.store import (
    MERGE_MAX_PARTS,
    PartStore,
    Store,
    existing_event_ids,
    existing_leads,
    merge_parts,
    scratch_database,
)

from ._pipeline import Counts, Pipeline

CHUNK = 2000  # lines per message to a process
POLL = 1.0  # seconds between looks at the processes while waiting for their reports


@dataclass
class Plan:
    """The lines of one ingest, split for the processes."""

    shares: list[list[tuple[int, object]]]  # (line number, raw) per process, in file order
    deferred: list[tuple[int, object]] = field(default_factory=list)  # applied here afterwards, in file order
    deferred_leads: set[str] = field(default_factory=set)


def _keys(raw: object) -> tuple[str | None, str | None]:
    """The lead and event id a line will be stored under (None: unreadable; the line is then rejected)."""
    if isinstance(raw, Unreadable):
        return None, None
    obj = parse_line(raw)
    if not isinstance(obj, dict):
        return None, None
    obj = from_segment(obj)
    lead, eid = check_id("lead", obj.get("lead")), check_id("id", obj.get("id"))
    return (lead if isinstance(lead, str) else None), (eid if isinstance(eid, str) else None)


def plan(lines: Iterable[tuple[int, object]], jobs: int, store: Store | None = None) -> Plan:
    """Split `lines` by lead for `jobs` processes; `store`: the SQLite database the processes do not see
    (its leads, and the leads of ids it holds, are deferred)."""
    rows: list[tuple[int, object, str | None]] = []
    first_lead: dict[str, str] = {}  # event id -> the first lead seen with it
    deferred: set[str] = set()
    for number, raw in lines:
        lead, eid = _keys(raw)
        rows.append((number, raw, lead))
        if lead is not None and eid is not None:
            first = first_lead.setdefault(eid, lead)
            if first != lead:
                deferred.update((first, lead))
    if store is not None:
        deferred |= existing_leads(store, {lead for _, _, lead in rows if lead is not None})
        deferred |= {first_lead[eid] for eid in existing_event_ids(store, first_lead)}
    result = Plan([[] for _ in range(jobs)], deferred_leads=deferred)
    for number, raw, lead in rows:
        if lead is not None and lead in deferred:
            result.deferred.append((number, raw))
        else:
            result.shares[0 if lead is None else lead_share(lead, jobs)].append((number, raw))
    return result


def apply_in_jobs(pipeline: Pipeline, rules_dir: str, lines: Iterable[tuple[int, object]], source: str, jobs: int,
                  progress: Callable[[int], None] | None = None, intake: Intake = OUTSIDE) -> Counts:
    """`pipeline.apply_lines(lines, source, progress, intake)` with the rules evaluated in `jobs`
    processes (see the module docstring); jobs 1 is exactly that call. `rules_dir` is where
    `pipeline`'s rules came from: each process loads them again."""
    if jobs <= 1:
        return pipeline.apply_lines(lines, source, progress, intake)
    store = pipeline.store
    sqlite = store.dialect == "sqlite"
    if sqlite and jobs > MERGE_MAX_PARTS:
        raise LeadflowError([Problem("TOO_MANY_JOBS", f"--jobs {jobs}: on SQLite at most {MERGE_MAX_PARTS} processes "
                                                      "(their files are merged at once)", Location(store.where),
                                     "use --jobs 2 to 4 on this machine's cores")])
    with ExitStack() as stack:
        urls = [stack.enter_context(scratch_database(None, f"ingest_part{k}")) for k in range(jobs)] if sqlite \
            else [store.url] * jobs
        crew = Crew(rules_dir, urls, source, intake, pipeline.version, parts=sqlite)
        stack.callback(crew.stop)  # whatever happens, no process outlives the command
        split = plan(lines, jobs, store if sqlite else None)
        crew.send(split.shares)
        parts = crew.wait(progress)
        if sqlite:
            merge_parts(store, urls)
        parts.append(pipeline.apply_lines(split.deferred, source, progress, intake))
    return merged(parts)


def merged(parts: list[Counts]) -> Counts:
    """The counts of several processes as one process reports them: totals added, and the first 100
    rejections and conflicts in line order (each process kept its own first 100)."""
    total = Counts()
    for counts in parts:
        total.merge(counts)
    total.rejections = sorted(total.rejections, key=_line)[:100]
    total.conflicted = sorted(total.conflicted, key=_line)[:100]
    return total


def _line(rejection: tuple) -> int:
    return rejection[1] or 0


class Crew:
    """The ingest processes: started at once (they load the rules while the lines are split), fed
    their shares, and waited for. `spawn`, so nothing of this process (threads, connections) is
    inherited."""

    def __init__(self, rules_dir: str, urls: list[str], source: str, intake: Intake, version: str, parts: bool):
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in urls]
        self.source = source
        self.procs = [ctx.Process(target=_work, args=(k, rules_dir, url, parts, version, source, intake, inbox,
                                                      self.results, os.getpid()), daemon=True)
                      for k, (url, inbox) in enumerate(zip(urls, self.inboxes))]
        for proc in self.procs:
            proc.start()

    def send(self, shares: list[list[tuple[int, object]]]) -> None:
        for inbox, share in zip(self.inboxes, shares):
            for i in range(0, len(share), CHUNK):
                inbox.put(share[i:i + CHUNK])
            inbox.put(None)

    def wait(self, progress: Callable[[int], None] | None) -> list[Counts]:
        """Every process's counts, in process order; the first failure raises (the others are stopped
        by `stop`), and so does a process that died without a word (killed, out of memory)."""
        done: dict[int, Counts] = {}
        while len(done) < len(self.procs):
            try:
                kind, k, value = self.results.get(timeout=POLL)
            except queue.Empty:
                dead = [k for k, p in enumerate(self.procs) if k not in done and p.exitcode is not None]
                if not dead:
                    continue
                try:  # its last report may still be on its way
                    kind, k, value = self.results.get(timeout=2 * POLL)
                except queue.Empty:
                    self._failed(dead[0], f"the process stopped (exit code {self.procs[dead[0]].exitcode})")
            if kind == "progress":
                if progress is not None:
                    progress(value)
            elif kind == "done":
                done[k] = value
            else:
                self._failed(k, value)
        return [done[k] for k in range(len(self.procs))]

    def _failed(self, k: int, why: str) -> None:
        raise LeadflowError([Problem("INGEST_JOB_FAILED", f"ingest process {k + 1} of {len(self.procs)} failed: {why}",
                                     Location(self.source),
                                     "on SQLite nothing of this ingest was written; on PostgreSQL the events applied "
                                     "stay, and running the ingest again applies the rest")])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(10)
        for q in (*self.inboxes, self.results):
            q.cancel_join_thread()
            q.close()


def _work(k: int, rules_dir: str, url: str, part: bool, version: str, source: str, intake: Intake, inbox, results,
          parent: int) -> None:
    """One ingest process: a normal Pipeline on `url` (the database, or with `part` its scratch file)
    applying the lines it is sent, reporting progress and then its counts (or its error)."""
    try:
        pipeline = Pipeline(PartStore(url) if part else Store(url), load_compiled(rules_dir))
        if pipeline.version != version:
            raise RuntimeError(f"the rules changed while the ingest started ({version} became {pipeline.version})")

        def lines():
            while True:
                try:
                    chunk = inbox.get(timeout=5)
                except queue.Empty:
                    _orphaned(parent)
                    continue
                if chunk is None:
                    return
                yield from chunk

        def report(n: int) -> None:
            _orphaned(parent)
            results.put(("progress", k, n))

        counts = pipeline.apply_lines(lines(), source, report, intake)
        pipeline.store.close()
        results.put(("done", k, counts))
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent must hear of it
        results.put(("failed", k, f"{type(exc).__name__}: {exc}"))


def _orphaned(parent: int) -> None:
    """The command was stopped (Ctrl-C leaves with os._exit): this process stops too."""
    if os.getppid() != parent:
        os._exit(1)
