"""Pipeline metrics. Every figure is defined once, here:

- stages: how many leads ENTERED each stage in the period (a lead re-entering counts again).
- conversion.mql_to_sql: of the leads whose first MQL entry falls in the period (the cohort), the
  share that later became SQL (by now). sql_to_accepted and sql_to_won: the same for the SQL cohort.
- median_hours / p90_hours: time from a cohort lead's first MQL to its first SQL entry, and from its
  first SQL entry to acceptance.
- reps: per rep, assignments made in the period: assigned, accepted, rejected, pending, expired
  (SLA breaches), reassigned; acceptance rate = accepted / (accepted + rejected); median hours from
  assignment to a decision.
- reject_reasons: rejections in the period by reason, most frequent first.
- revenue: the sum of `amount` over the `deal_won` events dated in the period, in total and per group.
- costs (given a costs CSV `campaign,cost` or `campaign_cost` events with data {campaign, amount}):
  cost per MQL / SQL / customer = the campaign's cost / its MQL, SQL and won cohorts in the period.
- ignored (only when there are some): stored deal_won amounts and campaign_cost events that are not
  a finite number >= 0 (such as "1,200" or true, kept before ingest checked them) or whose campaign is
  not text; they are left out of revenue and costs instead of failing the report.
- a sum too large for a float (finite amounts adding up past 1.8e308) is null, never Infinity.
- a costs CSV is checked row by row: a cost that is not a finite number >= 0 (such as "1,200" or nan)
  stops the report with an error naming FILE:LINE, before any figure is computed from it.
- by FIELD: any lead attribute (e.g. source, campaign), `owner` (the rep) or `rules_version` (the
  rule version under which the lead first became MQL, to compare before/after a rule change).
Leads are streamed lead by lead from the stage history, so the cost grows with rows, not with memory.
"""
from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from leadflow.core import LeadflowError, Location, Problem
from leadflow.store import Store

MONDAY = 345600.0  # 1970-01-05, a Monday: weeks run Monday to Sunday (UTC)
STAGES = ("new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost", "disqualified")


def _in(at: float | None, since: float | None, until: float | None) -> bool:
    return at is not None and (since is None or at >= since) and (until is None or at < until)


def _finite(value: float) -> float | None:
    """A sum rounded to cents, or None when finite amounts added up past what a float holds."""
    return round(value, 2) if math.isfinite(value) else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _quantile(values: list, q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 2)


@dataclass
class _Group:
    entered: Counter = field(default_factory=Counter)
    mql: int = 0
    mql_to_sql: int = 0
    sql: int = 0
    sql_accepted: int = 0
    sql_won: int = 0
    won: int = 0
    revenue: float = 0.0
    hours_mql_sql: list = field(default_factory=list)
    hours_sql_accept: list = field(default_factory=list)

    def add(self, firsts: dict, entries: list, since: float | None, until: float | None, amount: float) -> None:
        for stage, at in entries:
            if _in(at, since, until):
                self.entered[stage] += 1
        if _in(firsts.get("mql"), since, until):
            self.mql += 1
            if firsts.get("sql", -1) >= firsts["mql"]:
                self.mql_to_sql += 1
                self.hours_mql_sql.append((firsts["sql"] - firsts["mql"]) / 3600)
        if _in(firsts.get("sql"), since, until):
            self.sql += 1
            if "accepted" in firsts:
                self.sql_accepted += 1
                self.hours_sql_accept.append((firsts["accepted"] - firsts["sql"]) / 3600)
            self.sql_won += "won" in firsts
        if _in(firsts.get("won"), since, until):
            self.won += 1
        self.revenue += amount

    def merge(self, other: "_Group") -> None:
        self.entered.update(other.entered)
        for name in ("mql", "mql_to_sql", "sql", "sql_accepted", "sql_won", "won", "revenue"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.hours_mql_sql += other.hours_mql_sql
        self.hours_sql_accept += other.hours_sql_accept

    def result(self) -> dict:
        return {"stages": {s: self.entered[s] for s in STAGES if self.entered[s]},
                "cohorts": {"mql": self.mql, "sql": self.sql},
                "conversion": {"mql_to_sql": _rate(self.mql_to_sql, self.mql),
                               "sql_to_accepted": _rate(self.sql_accepted, self.sql),
                               "sql_to_won": _rate(self.sql_won, self.sql)},
                "median_hours": {"mql_to_sql": _quantile(self.hours_mql_sql, 0.5),
                                 "sql_to_accepted": _quantile(self.hours_sql_accept, 0.5)},
                "p90_hours": {"mql_to_sql": _quantile(self.hours_mql_sql, 0.9),
                              "sql_to_accepted": _quantile(self.hours_sql_accept, 0.9)},
                "won": self.won, "revenue": _finite(self.revenue)}


def compute(store: Store, since: float | None = None, until: float | None = None, by: str | None = None,
            rep: str | None = None, costs: dict | None = None, weekly: bool = False) -> dict[str, Any]:
    owners = store.lead_fields("owner") if rep else None
    keys = None if not by or by == "rules_version" else store.lead_fields(by)
    amounts: dict = defaultdict(float)  # revenue of the deals won in the period, per lead
    ignored = 0  # stored amounts that are not a usable number (kept before ingest checked them)
    for lead_id, at, amount in store.won_deals():
        if _in(at, since, until) and amount is not None:
            if _money(amount) is None:
                ignored += 1
            else:
                amounts[lead_id] += amount
    total, groups = _Group(), defaultdict(_Group)
    weeks: dict = defaultdict(Counter)
    for lead, rows in groupby(store.stage_entries(), key=lambda entry: entry.lead):
        if owners is not None and owners.get(lead) != rep:
            continue  # a rep's numbers cover the leads they own
        entries, firsts, versions = [], {}, {}
        for _, stage, at, version in rows:
            entries.append((stage, at))
            firsts.setdefault(stage, at)
            versions.setdefault(stage, version)
        amount = amounts.get(lead, 0.0)
        if by:  # each lead is added once, to its group; the total is the sum of the groups
            key = versions.get("mql") or versions.get("new") if by == "rules_version" else keys.get(lead)
            groups["(none)" if key is None else str(key)].add(firsts, entries, since, until, amount)
        else:
            total.add(firsts, entries, since, until, amount)
        if weekly:
            for stage, at in entries:
                if stage in ("mql", "sql", "accepted") and _in(at, since, until):
                    weeks[int((at - MONDAY) // 604800)][stage] += 1
    for group in groups.values():
        total.merge(group)
    result = {"period": {"since": since, "until": until}, **total.result()}
    result["reps"] = _reps(store, since, until, rep)
    result["sla_breaches"] = sum(r["expired"] for r in result["reps"])
    reasons = Counter(f["reason"] for f in store.feedback_rows()
                      if f["verdict"] == "reject" and _in(f["at"], since, until) and (rep is None or f["rep"] == rep))
    result["reject_reasons"] = [{"reason": r, "count": n} for r, n in reasons.most_common()]
    result["by"] = [{"value": value, **g.result()} for value, g in sorted(groups.items())] if by else []
    if costs is not None:
        _add_costs(result, costs, by)
    ignored_costs = getattr(costs, "ignored", 0)
    if ignored or ignored_costs:  # said only when it happens, so the usual output keeps its shape
        result["ignored"] = {"deal_won_amounts": ignored, "campaign_costs": ignored_costs}
    if weekly:
        result["weekly"] = [{"week_start": MONDAY + w * 604800, **{s: c[s] for s in ("mql", "sql", "accepted")}}
                            for w, c in sorted(weeks.items())]
    return result


def _add_costs(result: dict, costs: dict, by: str | None) -> None:
    def per(cost: float, n: int) -> float | None:
        return _finite(cost / n) if n else None

    spent = sum(costs.values())
    result["cost"] = {"total": _finite(spent), "per_mql": per(spent, result["cohorts"]["mql"]),
                      "per_sql": per(spent, result["cohorts"]["sql"]), "per_customer": per(spent, result["won"])}
    for group in result["by"]:
        cost = costs.get(group["value"])
        if cost is not None:
            group["cost"] = {"total": _finite(cost), "per_mql": per(cost, group["cohorts"]["mql"]),
                             "per_sql": per(cost, group["cohorts"]["sql"]), "per_customer": per(cost, group["won"])}


class Costs(defaultdict):
    """campaign -> cost; `ignored` counts stored campaign_cost events that were not usable."""

    ignored = 0


def load_costs(path: str | None, store: Store, since: float | None, until: float | None) -> dict | None:
    """Campaign costs from a `campaign,cost` CSV and/or `campaign_cost` events in the period. Stored
    events without a campaign name or a finite amount >= 0 are skipped and counted (`ignored`)."""
    costs = Costs(float)
    if path:
        costs.update(_read_costs(path))
    for at, campaign, amount in store.campaign_costs():
        if _in(at, since, until):
            if not isinstance(campaign, str) or _money(amount) is None:
                costs.ignored += 1
            else:
                costs[campaign] += amount
    return costs if costs or path or costs.ignored else None


def _read_costs(path: str) -> dict:
    """campaign -> cost from a `campaign,cost` CSV; every bad row is reported (FILE:LINE), none is guessed."""
    out: dict = defaultdict(float)
    problems = []
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("campaign", "cost") if c not in (reader.fieldnames or [])]
        if missing:
            raise LeadflowError([Problem("BAD_COSTS", f"the costs CSV has no column '{missing[0]}'",
                                         Location(path, 1, 1), "the first line is: campaign,cost")])
        for row in reader:
            text = (row.get("cost") or "").strip()
            try:
                cost = float(text)
            except ValueError:
                cost = None
            if cost is None or not math.isfinite(cost) or cost < 0:
                problems.append(Problem("BAD_COSTS", f"cost {text!r} is not a finite number >= 0",
                                        Location(path, reader.line_num, 0),
                                        "write costs without thousands separators or currency: 1200.50"))
            else:
                out[row.get("campaign") or ""] += cost
    if problems:
        raise LeadflowError(problems)
    return out


def _money(value: object) -> float | None:
    """A stored amount that can be added: a finite number >= 0 (not a bool, not text such as "1,200")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _reps(store: Store, since: float | None, until: float | None, only: str | None) -> list[dict]:
    per: dict = defaultdict(Counter)
    waits: dict = defaultdict(list)
    for a in store.assignments():
        if not a["rep"] or not _in(a["assigned_at"], since, until) or (only and a["rep"] != only):
            continue
        per[a["rep"]][a["status"]] += 1
        if a["decided_at"] and a["status"] in ("accepted", "rejected", "reassigned"):
            waits[a["rep"]].append((a["decided_at"] - a["assigned_at"]) / 3600)
    out = []
    for rep, c in sorted(per.items()):
        out.append({"rep": rep, "assigned": sum(c.values()), "accepted": c["accepted"], "rejected": c["rejected"],
                    "pending": c["pending"], "expired": c["expired"], "reassigned": c["reassigned"],
                    "acceptance_rate": _rate(c["accepted"], c["accepted"] + c["rejected"]),
                    "median_hours_to_decision": _quantile(waits[rep], 0.5)})
    return out
