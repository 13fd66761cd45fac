"""The typed rule set the compiler and runtime work from (built by `load_rules`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._conditions import Condition


@dataclass
class ScoringRule:
    id: str
    group: str  # fit | engagement | negative
    points: float = 0.0
    when: Condition | None = None  # attribute rules
    on: str | None = None  # event rules
    where: Condition | None = None
    disqualify: str | None = None
    repeat: str = "every_time"  # every_time | once | once_every
    repeat_every: float = 0.0  # seconds, for once_every
    max_points: float | None = None
    description: str = ""
    location: str = ""


@dataclass
class RuleSet:
    version: str
    files: list
    rules: list = field(default_factory=list)
    caps: dict = field(default_factory=dict)  # fit / engagement / total -> number
    half_life: float | None = None
    bant: dict = field(default_factory=dict)  # criterion -> Condition
    mql: Condition | None = None
    demote_below: float | None = None
    sql: Condition | None = None
    events: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)  # raw validated sections, for routing/nurture/feedback
    nurture: list = field(default_factory=list)  # nurture.Track
    template_dir: str = ""
    warnings: list = field(default_factory=list)  # Problems of severity "warning" (see _lint.py)
    webhooks: list = field(default_factory=list)  # Subscriptions (see _webhooks.py)

    def rule(self, rule_id: str) -> ScoringRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def rule_ids(self) -> list:
        return [r.id for r in self.rules]

    def section(self, name: str, default: Any = None) -> Any:
        return self.sections.get(name, default)
