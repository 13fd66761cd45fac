"""What `leads show` and `leads explain` tell: the lead as JSON (stage, scores, BANT, contributions,
history, attributes, rule version, how likely the lead is to buy: the shape `leads show --json` promises)
and as a readable story."""
from __future__ import annotations

import json

from leadflow.core import format_time
from leadflow.rules import LeadState, RuleSet, contributions, percent
from leadflow.store import Store


def lead_json(store: Store, rules: RuleSet, lead_id: str) -> dict | None:
    row = store.lead_row(lead_id)
    if row is None:
        return None
    state = LeadState.from_json(json.loads(row["state"]))
    history = [{"stage": h["to_stage"], "at": format_time(h["at"]), "reason": h["reason"],
                "rule": h["rule"], "rules_version": h["rules_version"]} for h in store.history(lead_id)]
    return {
        "id": state.id,
        "stage": state.stage,
        "score": round(state.score, 2),
        "fit": round(state.fit, 2),
        "engagement": round(state.engagement, 2),
        "bant": dict(state.bant),
        "disqualified": state.disqualified,
        "owner": state.owner,
        "attributes": state.attrs,
        "contributions": [{**c, "description": rules.describe(c["rule"])}
                          for c in contributions(state, rules, state.clock)],
        "history": history,
        "rules_version": row["rules_version"],
        "events": state.events,
        "as_of": format_time(state.clock) if state.clock is not None else None,
        "crm_url": rules.record_url(state.id, state.attrs),
        "likely_to_buy": rules.likelihood(round(state.score, 2)),  # the score shown; None without a calibration
    }


def story(store: Store, rules: RuleSet, lead_id: str) -> str | None:
    """The lead's current stage and why, then what each event did."""
    data = lead_json(store, rules, lead_id)
    if data is None:
        return None
    lines = []
    last = data["history"][-1] if data["history"] else None
    since = f" since {last['at']}" if last else ""
    because = _why(rules, last) if last else "no events yet"
    lines.append(f"{data['id']} is {data['stage'].upper()}{since}, because {because}.")
    if data["disqualified"]:
        lines.append(f"Disqualified: {data['disqualified']}.")
    likely = f", likely to buy: {percent(data['likely_to_buy'])}" if data["likely_to_buy"] is not None else ""
    lines.append(f"Score {data['score']:g} = fit {data['fit']:g} + engagement {data['engagement']:g}{likely}"
                 f" (as of {data['as_of']}; caps {rules.caps or 'none'}).")
    bant = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in data["bant"].items())
    lines.append(f"BANT: {bant}.")
    if data["contributions"]:
        lines.append("Contributions now:")
        for c in data["contributions"]:  # the author's words first, then the id to find the rule by
            rule = rules.rule(c["rule"])
            named = c["rule"] if c["description"] == c["rule"] else f"{c['description']} ({c['rule']})"
            where = f"  [{rule.location}]" if rule else ""
            lines.append(f"  {c['points']:+g}  {named}{where}")
    lines.append("Stage history:")
    for h in data["history"]:
        lines.append(f"  {h['at']}  -> {h['stage']:<12} {_why(rules, h)}  (rules {h['rules_version']})")
    if data["crm_url"]:
        lines.append(f"In the CRM: {data['crm_url']}")
    steps = store.nurture_steps(lead_id)
    if steps:
        lines.append("Nurture:")
        for r in steps:
            lines.append(f"  {format_time(r['at'])}  {r['track']:<16} {r['op']:<10} {r['detail']}")
    lines.append("Events:")
    for d in store.decisions(lead_id):
        trace = json.loads(d["trace"])
        added = ", ".join(f"{r} {p:+g}" for r, p in trace["added"]) or "no points"
        moves = "; ".join(f"{t['from']} -> {t['to']}" for t in trace["transitions"])
        lines.append(f"  {format_time(d['at'])}  {d['type']:<20} {added}; score {trace['score']:g}"
                     + (f"; {moves}" if moves else ""))
    return "\n".join(lines)


def _why(rules: RuleSet, entry: dict) -> str:
    """A stage change's reason, led by its gate's description when the gate has one."""
    rule = entry.get("rule") or ""
    described = rules.describe(rule) if rule else rule
    return entry["reason"] if described == rule else f"{described} ({entry['reason']})"


def recent_activity(store: Store, lead_id: str, n: int = 5) -> list[str]:
    """The lead's last events with what they scored, newest first (for cards and answers)."""
    out = []
    for d in store.decisions(lead_id)[-n:][::-1]:
        trace = json.loads(d["trace"])
        added = ", ".join(f"{r} {p:+g}" for r, p in trace["added"])
        out.append(f"{format_time(d['at'])[:16].replace('T', ' ')}  {d['type']}" + (f" ({added})" if added else ""))
    return out
