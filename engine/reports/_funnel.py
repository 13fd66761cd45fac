"""The lead-based figures of one group of leads (everyone, or one `--by` slice): stages entered, stage
cohorts, conversion and time between any two stages, wins and revenue, per owner too. `_stats.py`
holds the definitions; this module holds the arithmetic, added lead by lead so nothing grows with
leads but the time lists of the reported pairs."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

STAGES = ("new", "mql", "sql", "accepted", "rejected", "recycled", "won", "lost", "disqualified")
FUNNEL = ("new", "mql", "sql", "accepted", "won")  # the steps drawn, in order
PAIRS = (("mql", "sql"), ("sql", "accepted"), ("sql", "won"), ("mql", "won"))  # reported by default
DAY = 86400.0


def pair_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]}_to_{pair[1]}"


def within(at: float | None, since: float | None, until: float | None) -> bool:
    return at is not None and (since is None or at >= since) and (until is None or at < until)


def finite(value: float) -> float | None:
    """A sum rounded to cents, or None when finite amounts added up past what a float holds."""
    return round(value, 2) if math.isfinite(value) else None


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def quantile(values: list, q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, Excel's PERCENTILE.INC)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 2)


@dataclass
class Group:
    pairs: tuple  # the (from, to) pairs whose conversion and times are reported
    entered: Counter = field(default_factory=Counter)
    cohort: Counter = field(default_factory=Counter)  # stage -> leads whose FIRST entry is in the period
    reached: Counter = field(default_factory=Counter)  # (from, to) -> of cohort[from], first `to` at/after
    seconds: dict = field(default_factory=lambda: defaultdict(list))  # (from, to) -> first from -> first to
    won: int = 0
    revenue: float = 0.0
    owners: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))  # owner -> [won, revenue]
    targets: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # from -> the stages its conversion is counted to: every later funnel step (the dashboard draws
        # the steps a period has, with the conversion between neighbours) and the reported pairs
        self.targets = {s: set(FUNNEL[i + 1:]) for i, s in enumerate(FUNNEL)}
        for a, b in self.pairs:
            self.targets.setdefault(a, set()).add(b)

    def add(self, firsts: dict, entries: list, since: float | None, until: float | None, amount: float,
            owner: str | None) -> None:
        active = amount > 0
        for stage, at in entries:
            if within(at, since, until):
                self.entered[stage] += 1
                active = True
        for stage, goals in self.targets.items():
            start = firsts.get(stage)
            if not within(start, since, until):
                continue
            self.cohort[stage] += 1
            for goal in goals:
                end = firsts.get(goal)
                if end is not None and end >= start:
                    self.reached[(stage, goal)] += 1
                    if (stage, goal) in self.pairs:
                        self.seconds[(stage, goal)].append(end - start)
        won = within(firsts.get("won"), since, until)
        self.won += won
        self.revenue += amount
        if active:
            mine = self.owners["(none)" if owner is None else owner]
            mine[0] += won
            mine[1] += amount

    def merge(self, other: "Group") -> None:
        for name in ("entered", "cohort", "reached"):
            getattr(self, name).update(getattr(other, name))
        for pair, values in other.seconds.items():
            self.seconds[pair] += values
        self.won += other.won
        self.revenue += other.revenue
        for owner, (won, revenue) in other.owners.items():
            self.owners[owner][0] += won
            self.owners[owner][1] += revenue

    def _time(self, q: float, unit: float) -> dict:
        return {pair_name(p): quantile([s / unit for s in self.seconds[p]], q) for p in self.pairs}

    def funnel(self) -> list[dict]:
        """The funnel steps the period has (a step nobody entered is left out), each with the cohort
        conversion to the next step shown."""
        shown = [s for s in FUNNEL if self.entered[s] or self.cohort[s]]
        return [{"stage": s, "entered": self.entered[s], "cohort": self.cohort[s],
                 "to_next": rate(self.reached[(s, shown[i + 1])], self.cohort[s]) if i + 1 < len(shown) else None}
                for i, s in enumerate(shown)]

    def result(self) -> dict:
        cohorts = {"mql": self.cohort["mql"], "sql": self.cohort["sql"]}
        cohorts.update({a: self.cohort[a] for a, _ in self.pairs})
        owners = sorted(self.owners.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return {"stages": {s: self.entered[s] for s in STAGES if self.entered[s]},
                "cohorts": cohorts,
                "conversion": {pair_name(p): rate(self.reached[p], self.cohort[p[0]]) for p in self.pairs},
                "median_hours": self._time(0.5, 3600.0), "p90_hours": self._time(0.9, 3600.0),
                "median_days": self._time(0.5, DAY), "p90_days": self._time(0.9, DAY),
                "funnel": self.funnel(),
                "won": self.won, "revenue": finite(self.revenue),
                "owners": [{"owner": o, "won": w, "revenue": finite(r)} for o, (w, r) in owners]}
