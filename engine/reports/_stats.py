"""Pipeline metrics. Every figure is defined once, here. The period is [since, until), in UTC.

Two kinds of figure, and which is which matters:
- PERIOD figures count what happened in the period: `stages` (how many leads ENTERED each stage; a
  lead re-entering counts again), `won` (leads whose first win is in the period), `revenue`, `reps`,
  `reject_reasons`, costs and the trend.
- COHORT figures follow the leads that FIRST entered a stage in the period, to wherever they went
  since (up to now, even past `until`): `cohorts.X` is how many leads first entered X in the period;
  `conversion.A_to_B` is, of the A cohort, the share whose first B entry is at or after their first A
  entry (a lead won without ever being an SQL is not in sql_to_won); `median_*`/`p90_*` are the times
  from first A to first B of the cohort leads that made it. An empty cohort gives null, not 0.
- conversion, median/p90 (in `_hours` and `_days`): mql_to_sql, sql_to_accepted, sql_to_won and
  mql_to_won always; `--from A --to B` adds A_to_B for any two stages. p90 interpolates between ranks.
- funnel: the steps new, mql, sql, accepted, won that anyone entered in the period, each with its
  entries, its cohort and `to_next`, the cohort conversion to the next step listed.
- owners: per lead owner (`(none)` for leads without one), among leads with a stage entry or a deal
  won in the period: won and revenue.
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
  rule version under which the lead first became MQL, to compare before/after a rule change). Every
  lead-based figure above (stages to owners) is given per slice; reps and reject reasons stay totals.
  A FIELD no lead has, or a rep nobody is, is a problem (check_scope), not an empty table.
- trend (with the dashboard): MQL, SQL, accepted and won entries per week (spans up to 26 weeks) or
  per month, each period flagged `partial` when the report's window (or now) cuts it.
Leads are streamed lead by lead from the stage history, so the cost grows with rows, not with memory.
"""
from __future__ import annotations

import csv
import difflib
import math
import time
from collections import Counter, defaultdict
from itertools import groupby
from typing import Any

from leadflow.core import LeadflowError, Location, Problem
from leadflow.store import Store

from ._funnel import PAIRS, STAGES, Group, finite, quantile, rate, within
from ._periods import trend

MONDAY = 345600.0  # 1970-01-05, a Monday: weeks run Monday to Sunday (UTC)
_TREND = ("mql", "sql", "accepted", "won")
_in, _finite, _rate, _quantile = within, finite, rate, quantile
__all__ = ["STAGES", "check_scope", "compute", "load_costs"]


def check_scope(store: Store, by: str | None, rep: str | None, costs: dict | None = None) -> None:
    """A `--by` no lead has or a `--rep` nobody is would give an empty table that looks like an answer:
    it is a problem instead (UNKNOWN_FIELD, UNKNOWN_REP), with the names there are. `--by campaign`
    also slices campaign costs (from `--costs` or campaign_cost events), so costs make it meaningful
    even when no lead has a campaign attribute."""
    problems = []
    by_costs = by == "campaign" and bool(costs or store.campaign_costs())
    if by and by not in ("owner", "rules_version") and not by_costs and not store.has_attribute(by):
        names = store.attribute_names()
        close = difflib.get_close_matches(by, names, 1)
        problems.append(Problem("UNKNOWN_FIELD", f"no lead has an attribute {by!r} to slice by", Location("--by"),
                                hint=(f"did you mean {close[0]!r}? " if close else "") + "attributes: " +
                                (", ".join(names[:30]) or "none yet") + "; also owner and rules_version"))
    if rep:
        owners = store.known_owners()
        if rep not in owners:
            close = difflib.get_close_matches(rep, owners, 1)
            problems.append(Problem("UNKNOWN_REP", f"no lead is owned by or was assigned to {rep!r}", Location("--rep"),
                                    hint=(f"did you mean {close[0]!r}? " if close else "") + "owners: " +
                                    (", ".join(owners[:30]) or "none yet")))
    if problems:
        raise LeadflowError(problems)


def compute(store: Store, since: float | None = None, until: float | None = None, by: str | None = None,
            rep: str | None = None, costs: dict | None = None, weekly: bool = False, *,
            pair: tuple[str, str] | None = None, labels: dict | None = None,
            now: float | None = None) -> dict[str, Any]:
    """Every figure of the module docstring for [since, until); `pair` adds one more conversion and time
    (`--from A --to B`), `labels` names the reject reasons, `weekly` adds the trend the dashboard draws."""
    pairs = PAIRS + ((pair,) if pair and pair not in PAIRS else ())
    amounts: dict = defaultdict(float)  # revenue of the deals won in the period, per lead
    ignored = 0  # stored amounts that are not a usable number (kept before ingest checked them)
    for lead_id, at, amount in store.won_deals():
        if _in(at, since, until) and amount is not None:
            if _money(amount) is None:
                ignored += 1
            else:
                amounts[lead_id] += amount
    total, groups = Group(pairs), {}
    days: dict = defaultdict(Counter)
    for lead, rows in groupby(store.funnel_rows(None if by == "rules_version" else by), key=lambda row: row.lead):
        rows = list(rows)
        owner, key = rows[0].owner, rows[0].key
        if rep is not None and owner != rep:
            continue  # a rep's numbers cover the leads they own
        entries, firsts, versions = [], {}, {}
        for row in rows:
            entries.append((row.to_stage, row.at))
            firsts.setdefault(row.to_stage, row.at)
            versions.setdefault(row.to_stage, row.rules_version)
        amount = amounts.get(lead, 0.0)
        if by:  # each lead is added once, to its group; the total is the sum of the groups
            key = versions.get("mql") or versions.get("new") if by == "rules_version" else key
            name = "(none)" if key is None else str(key)
            group = groups.get(name) or groups.setdefault(name, Group(pairs))
            group.add(firsts, entries, since, until, amount, owner)
        else:
            total.add(firsts, entries, since, until, amount, owner)
        if weekly:
            for stage, at in entries:
                if stage in _TREND and _in(at, since, until):
                    days[int(at // 86400)][stage] += 1
    for group in groups.values():
        total.merge(group)
    result = {"period": {"since": since, "until": until}, **total.result()}
    result["reps"] = _reps(store, since, until, rep)
    result["sla_breaches"] = sum(r["expired"] for r in result["reps"])
    reasons = Counter(f["reason"] for f in store.feedback_rows()
                      if f["verdict"] == "reject" and _in(f["at"], since, until) and (rep is None or f["rep"] == rep))
    result["reject_reasons"] = [{"reason": r, "label": (labels or {}).get(r) or r, "count": n}
                                for r, n in reasons.most_common()]
    result["by"] = [{"value": value, **g.result()} for value, g in sorted(groups.items())] if by else []
    if costs is not None:
        _add_costs(result, costs, by)
    ignored_costs = getattr(costs, "ignored", 0)
    if ignored or ignored_costs:  # said only when it happens, so the usual output keeps its shape
        result["ignored"] = {"deal_won_amounts": ignored, "campaign_costs": ignored_costs}
    if weekly:
        weeks: dict = defaultdict(Counter)
        for day, counts in days.items():
            weeks[int((day * 86400 - MONDAY) // 604800)].update(counts)
        result["weekly"] = [{"week_start": MONDAY + w * 604800, **{s: c[s] for s in _TREND}}
                            for w, c in sorted(weeks.items())]
        result["trend"] = trend(days, since, until, time.time() if now is None else now, _TREND)
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
