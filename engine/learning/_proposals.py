"""Scheduled rule tuning proposals: tune on the stored feedback and outcomes, keep the proposal as a
directory (see `proposals_dir`), and apply it over the live rules only when a person says so (the
approval is recorded with who and when).

One proposal per period across every instance on the database: the period is claimed by
compare-and-set on the `schedule` row before tuning starts (a claimed row rather than an advisory
lock: the claim outlives the transaction, so a second instance arriving after the first finished
sees the period taken, and it works the same on SQLite). Tuning takes seconds and runs outside any
transaction, so a crash while tuning loses that period's proposal, never makes two.

These functions get what they need (the store, the rules directory, the time, and a callable that
switches the running service to the rules just written), never the service itself: learning sits
below the service, which calls them."""
from __future__ import annotations

import json
import os
from typing import Callable

from leadflow.core import LeadflowError, Location, Problem, parse_duration
from leadflow.rules import STALE, RuleSet, dir_version, load_rules, overlay_rule_files
from leadflow.store import Store

from ._labelled import leads_from_store
from ._queue import queue_effect


def proposals_dir(store: Store, rules_dir: str) -> str:
    """Where scheduled proposals go unless told: `proposals/` beside a SQLite database file, or beside
    the rules directory when the database is a server (PostgreSQL), whose address is no place."""
    if store.dialect == "sqlite":
        return os.path.join(os.path.dirname(os.path.abspath(store.path)), "proposals")
    return os.path.join(os.path.dirname(os.path.abspath(rules_dir)), "proposals")


def schedule_proposal(store: Store, rules: RuleSet, rules_dir: str, now: float, out_dir: str | None = None) -> int:
    """Make a proposal when the live rules' `tuning:` section says one is due (the files in
    `rules_dir` are what is tuned), in `out_dir` (default: `proposals_dir`); returns 1 when it did."""
    settings = rules.section("tuning")
    if not settings:
        return 0
    every = parse_duration(settings.get("every", "7d"))
    last = store.last_run("tuning")
    if last is not None and now - last < every:
        return 0
    with store.transaction():
        if not store.claim_run("tuning", now, every):
            return 0  # another instance has this period
    leads = [x for x in leads_from_store(store) if x.label is not None]
    if len(leads) < int(settings.get("min_labels", 50)) or len({x.label for x in leads}) < 2:
        return 0
    from ._tune import tune

    base = out = os.path.join(out_dir or proposals_dir(store, rules_dir), f"{int(now)}")
    n = 1
    while os.path.exists(out):  # a second proposal within the same second (after a stale one) gets its own
        n += 1
        out = f"{base}-{n}"
    report = tune(rules_dir, leads, out, settings.get("target_precision"), settings.get("capacity"))
    # the effect on the reps' queue, stored with the report so the Slack card shows what `rules tune` prints
    report["queue"] = queue_effect(store, rules_dir, out)
    with store.transaction():
        pid = store.add_proposal(out, now, report)
        store.add_outbox(f"proposal:{pid}", "proposal", "", {"proposal": pid, "channel": settings["channel"]})
    return 1


def apply_proposal(store: Store, rules_dir: str, proposal_id: int, by: str, now: float,
                   reload: Callable[[], str]) -> tuple[str, str]:
    """(status, message). Only a valid proposal made from the live rule version is applied, and
    only its changed rule files are written into `rules_dir`; then `reload` switches the running
    service to them and returns the version now live. A proposal made from older rules is refused
    and closed as "stale" (writing its snapshot would revert every edit made since), and the next
    tuning run is made due at once, so a fresh proposal follows."""
    row = store.proposal(proposal_id)
    if row is None:
        return "unknown", f"there is no proposal {proposal_id}"
    if row["status"] != "open":
        return "already", f"proposal {proposal_id} was already {row['status']} by {row['decided_by']}"
    load_rules(row["dir"])  # raises LeadflowError: a broken proposal never reaches the live rules
    base = json.loads(row["report"] or "{}").get("rules_version")  # absent in proposals made before versions
    if base is None or dir_version(rules_dir) != base:
        with store.transaction():
            if not store.decide_proposal(proposal_id, "stale", by, now):
                return "already", f"proposal {proposal_id} was decided meanwhile"
            store.mark_run("tuning", 0.0)  # due at once: the next worker pass tunes the current rules
        return "stale", STALE
    with store.transaction():
        if not store.decide_proposal(proposal_id, "applied", by, now):
            return "already", f"proposal {proposal_id} was decided meanwhile"
        # inside the transaction: when the files cannot be written, the proposal stays open
        status, _ = overlay_rule_files(row["dir"], rules_dir, base)
        if status == "stale":  # an edit landed between the check above and the write: nothing written
            raise LeadflowError([Problem("STALE_PROPOSAL", STALE, Location(rules_dir))])
    return "done", f"applied proposal {proposal_id}; rules {reload()} are live"


def dismiss_proposal(store: Store, proposal_id: int, by: str, now: float) -> tuple[str, str]:
    with store.transaction():
        if not store.decide_proposal(proposal_id, "dismissed", by, now):
            return "already", f"proposal {proposal_id} was already decided"
    return "done", f"dismissed proposal {proposal_id}"
