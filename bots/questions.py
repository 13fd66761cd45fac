"""Plain-words questions to the bot: "pipeline this month", "stats by rep", "why was lead-42 an SQL"."""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .mrkdwn import escape


@dataclass
class Question:
    kind: str  # stats | why | help
    since: float | None = None
    until: float | None = None
    period: str = "all time"
    by: str | None = None
    rep: str | None = None
    lead: str | None = None
    problem: str | None = None  # why the question could not be answered as asked (kind is then help)


# "last N <unit>s" reaches back at most ten years: further back is no sales question, and a date
# before year 1 (timedelta(days=999999999)) would overflow and crash the listener.
_UNITS = {"day": 3650, "week": 521, "month": 120, "quarter": 40, "year": 10}
_LAST_N = re.compile(r"\blast\s+(\d+)\s+(day|week|month|quarter|year)s?\b")
_WHY = re.compile(r"\bwhy\s+(?:was|is)\s+([\w.:@-]+)", re.IGNORECASE)


def _month_start(d: datetime) -> datetime:
    return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _months_back(d: datetime, months: int) -> datetime:
    """The same day `months` calendar months earlier (the 31st becomes the month's last day)."""
    year, month = divmod(d.year * 12 + d.month - 1 - months, 12)
    return d.replace(year=year, month=month + 1, day=min(d.day, calendar.monthrange(year, month + 1)[1]))


def period_of(text: str, now: float) -> tuple[float | None, float | None, str]:
    """The time window a question names. ValueError (a message for the asker) when it reaches too far."""
    today = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    t = text.lower()
    m = _LAST_N.search(t)
    if m:
        unit, limit = m.group(2), _UNITS[m.group(2)]
        n = int(m.group(1)) if len(m.group(1)) <= 6 else limit + 1  # int() of 4,301 digits raises
        if not 1 <= n <= limit:
            raise ValueError(f"I can look back 1 to {limit} {unit}s (ten years at most), not {m.group(1)[:12]}.")
        if unit in ("day", "week"):
            start = today - timedelta(days=n * (7 if unit == "week" else 1))
        else:
            start = _months_back(today, n * {"month": 1, "quarter": 3, "year": 12}[unit])
        return start.timestamp(), None, f"last {n} {unit}{'s' if n > 1 else ''}"
    if "today" in t:
        return today.timestamp(), None, "today"
    if "this week" in t:
        start = today - timedelta(days=today.weekday())
        return start.timestamp(), None, "this week"
    if "last week" in t:
        start = today - timedelta(days=today.weekday() + 7)
        return start.timestamp(), (start + timedelta(days=7)).timestamp(), "last week"
    if "this month" in t:
        return _month_start(today).timestamp(), None, "this month"
    if "last month" in t:
        end = _month_start(today)
        return _month_start(end - timedelta(days=1)).timestamp(), end.timestamp(), "last month"
    if "quarter" in t:
        q_start = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
        if "last" in t:
            prev_end = q_start
            prev = (q_start - timedelta(days=1)).replace(day=1)
            prev = prev.replace(month=3 * ((prev.month - 1) // 3) + 1)
            return prev.timestamp(), prev_end.timestamp(), "last quarter"
        return q_start.timestamp(), None, "this quarter"
    return None, None, "all time"


def kind_of(text: str) -> Question:
    """What is asked, before anything is computed: `why` (with the lead id as written), `help`, or
    `stats` (whose period and grouping `parse` reads). Cheap, so the asker can be checked first."""
    t = re.sub(r"<@[A-Z0-9]+>", "", text or "").strip()
    m = _WHY.search(t)  # on the text as sent: lowercasing can change its length ("İ" becomes two)
    if m:
        return Question("why", lead=m.group(1))
    if not t or t.lower() in ("help", "?"):
        return Question("help")
    return Question("stats")


def parse(text: str, now: float, rep_ids: list[str]) -> Question:
    question = kind_of(text)
    if question.kind != "stats":
        return question
    low = re.sub(r"<@[A-Z0-9]+>", "", text or "").strip().lower()
    try:
        since, until, label = period_of(low, now)
    except ValueError as exc:
        return Question("help", problem=str(exc))
    q = Question("stats", since, until, label)
    m = re.search(r"\bby (\w+)", low)
    if m:
        q.by = {"rep": "owner", "reps": "owner", "owner": "owner"}.get(m.group(1), m.group(1))
    m = re.search(r"\bfor (\w+)", low)
    if m and m.group(1) in rep_ids:
        q.rep = m.group(1)
    return q


def render_stats(data: dict, question: Question) -> list[str]:
    """Stats as mrkdwn lines; attribute values, reps and reasons are escaped (they come from lead data)."""
    s, c, h = data["stages"], data["conversion"], data["median_hours"]

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x * 100:.0f}%"

    lines = ["*Funnel* (leads entering each stage): " + " → ".join(f"{k.upper()} {s.get(k, 0)}"
                                                                  for k in ("new", "mql", "sql", "accepted", "won")),
             f"*MQL→SQL* {pct(c['mql_to_sql'])} of {data['cohorts']['mql']} MQLs · *SQL accepted* "
             f"{pct(c['sql_to_accepted'])} · *SQL→won* {pct(c['sql_to_won'])}",
             f"*Median time MQL→SQL* {'—' if h['mql_to_sql'] is None else str(h['mql_to_sql']) + ' h'}"]
    if data["reps"]:
        lines.append("*By rep* (accepted / rejected / pending):")
        lines += [f"• {escape(r['rep'])}: {r['accepted']} / {r['rejected']} / {r['pending']}"
                  f" (acceptance {pct(r['acceptance_rate'])})" for r in data["reps"]]
    if data["reject_reasons"]:
        lines.append("*Top reject reasons*: " + ", ".join(f"{escape(r['reason'])} ({r['count']})"
                                                          for r in data["reject_reasons"][:5]))
    for group in data.get("by", [])[:15]:
        gs = group["stages"]
        lines.append(f"• {escape(question.by)} = {escape(group['value'])}: MQL {gs.get('mql', 0)}, SQL {gs.get('sql', 0)}, "
                     f"MQL→SQL {pct(group['conversion']['mql_to_sql'])}")
    return lines


HELP = ("Ask me: `pipeline this month`, `stats last quarter by source`, `stats last 90 days`, `stats for alice`, "
        "`why was lead-42 an SQL`. Managers see the whole team; reps see their own leads.")
