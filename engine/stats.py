"""Pipeline metrics, each defined once here (DESIGN.md section 1; the stats issue extends them).

Definitions:
- stages: how many leads ENTERED each stage in the period (a lead can count in several stages).
- conversion.mql_to_sql: of the leads that became MQL in the period (a cohort), the share that became
  SQL afterwards (at any time up to now); sql_to_accepted and sql_to_won likewise for SQL cohorts.
- median_hours.mql_to_sql: median time from a cohort lead's first MQL entry to its first SQL entry.
- reps: per rep, assignments made in the period: accepted / rejected / pending / expired / reassigned,
  the acceptance rate (accepted / decided) and the median hours to a decision.
- reject_reasons: rejections in the period by reason, most frequent first.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from .store import Store


def _in(at: float, since: float | None, until: float | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def compute(store: Store, since: float | None = None, until: float | None = None, by: str | None = None,
            rep: str | None = None) -> dict[str, Any]:
    firsts: dict = defaultdict(dict)  # lead -> stage -> first entry time
    entered: Counter = Counter()
    owners = store.lead_fields("owner") if rep else None
    for lead, stage, at, _version in store.stage_entries():
        if owners is not None and owners.get(lead) != rep:
            continue  # a rep's numbers cover the leads they own
        firsts[lead].setdefault(stage, at)
        if _in(at, since, until):
            entered[stage] += 1
    result = {"period": {"since": since, "until": until}, "stages": dict(entered)}
    result.update(_funnel(firsts, since, until))
    result["reps"] = _reps(store, since, until, rep)
    reasons = Counter(f["reason"] for f in store.feedback_rows()
                      if f["verdict"] == "reject" and _in(f["at"], since, until) and (rep is None or f["rep"] == rep))
    result["reject_reasons"] = [{"reason": r, "count": n} for r, n in reasons.most_common()]
    if by:
        values = store.lead_fields(by)
        groups: dict = defaultdict(dict)
        for lead, stages in firsts.items():
            groups[str(values.get(lead)) if values.get(lead) is not None else "(none)"][lead] = stages
        result["by"] = [{"value": value, **_group(leads, since, until)} for value, leads in sorted(groups.items())]
    else:
        result["by"] = []
    return result


def _funnel(firsts: dict, since: float | None, until: float | None) -> dict:
    mql = [s for s in firsts.values() if "mql" in s and _in(s["mql"], since, until)]
    sql = [s for s in firsts.values() if "sql" in s and _in(s["sql"], since, until)]
    to_sql = [s for s in mql if "sql" in s and s["sql"] >= s["mql"]]
    hours = [(s["sql"] - s["mql"]) / 3600 for s in to_sql]
    return {
        "conversion": {"mql_to_sql": _rate(len(to_sql), len(mql)),
                       "sql_to_accepted": _rate(sum(1 for s in sql if "accepted" in s), len(sql)),
                       "sql_to_won": _rate(sum(1 for s in sql if "won" in s), len(sql))},
        "median_hours": {"mql_to_sql": round(statistics.median(hours), 2) if hours else None},
        "cohorts": {"mql": len(mql), "sql": len(sql)},
    }


def _group(leads: dict, since: float | None, until: float | None) -> dict:
    entered: Counter = Counter()
    for stages in leads.values():
        for stage, at in stages.items():
            if _in(at, since, until):
                entered[stage] += 1
    return {"stages": dict(entered), **_funnel(leads, since, until)}


def _reps(store: Store, since: float | None, until: float | None, only: str | None) -> list[dict]:
    per: dict = defaultdict(Counter)
    waits: dict = defaultdict(list)
    for a in store.assignments():
        if not a["rep"] or not _in(a["assigned_at"], since, until) or (only and a["rep"] != only):
            continue
        per[a["rep"]][a["status"]] += 1
        if a["decided_at"] and a["status"] in ("accepted", "rejected"):
            waits[a["rep"]].append((a["decided_at"] - a["assigned_at"]) / 3600)
    out = []
    for rep, c in sorted(per.items()):
        decided = c["accepted"] + c["rejected"]
        out.append({"rep": rep, "assigned": sum(c.values()), "accepted": c["accepted"], "rejected": c["rejected"],
                    "pending": c["pending"], "expired": c["expired"], "reassigned": c["reassigned"],
                    "acceptance_rate": _rate(c["accepted"], decided),
                    "median_hours_to_decision": round(statistics.median(waits[rep]), 2) if waits[rep] else None})
    return out
