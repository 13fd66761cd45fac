"""The typed rule set the compiler and runtime work from (built by `load_rules`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._calibration import Calibration
from ._conditions import Condition
from ._crm import RecordUrl

DEFAULT_WEIGHTS = {"outcome": 1.0, "accept": 0.5, "reject": 0.5}  # feedback.weights when not given


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
    label_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))  # feedback.weights, for rules tune
    nurture: list = field(default_factory=list)  # nurture.Track
    template_dir: str = ""
    warnings: list = field(default_factory=list)  # Problems of severity "warning" (see _lint.py)
    crm: RecordUrl | None = None  # the `crm: { record_url }` template, checked (see _crm.py)
    webhooks: list = field(default_factory=list)  # Subscriptions (see _webhooks.py)
    calibration: Calibration | None = None  # score -> probability of buying (calibration.yaml, see _calibration.py)

    def likelihood(self, score: float) -> float | None:
        """How likely a lead with this score is to buy (0 to 1), or None when the rules have no calibration."""
        return self.calibration.probability(score) if self.calibration else None

    def rule(self, rule_id: str) -> ScoringRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def describe(self, rule_id: str) -> str:
        """What a scoring rule or stage gate (`stages.sql`) means in its author's words, on one line;
        its id when it has no `description`."""
        rule = self.rule(rule_id)
        text = rule.description if rule else ""
        if not rule and rule_id.startswith("stages."):
            gate = (self.section("stages") or {}).get(rule_id[len("stages."):])
            text = gate.get("description", "") if isinstance(gate, dict) else ""
        return " ".join(str(text).split()) or rule_id

    def record_url(self, lead_id: str, attributes: dict) -> str | None:
        """The lead's CRM record link, if the rules have a `crm` template and the lead has what it needs.
        `{lead}` in the template is the lead's id (a CRM import keys leads by the CRM's record id)."""
        return self.crm.url({**attributes, "lead": lead_id}) if self.crm else None

    @property
    def rule_ids(self) -> list:
        return [r.id for r in self.rules]

    def section(self, name: str, default: Any = None) -> Any:
        return self.sections.get(name, default)
