"""What `rules tune` proposes: candidate rules found in the labelled data, and the proposal itself.

In a module of their own so that writing a proposal into rule files (_tune_yaml) and fitting it
(_tune, which uses _tune_yaml) both import them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Candidate:
    """An attribute value or event type that predicts the label and no rule speaks for yet."""

    id: str
    field: str | None
    value: object
    event: str | None
    n: int
    rate: float
    base: float
    z: float

    def evidence(self) -> str:
        what = f"{self.field} = {self.value}" if self.field else f"event {self.event}"
        return f"{what}: {self.n} leads, {self.rate:.0%} positive vs {self.base:.0%} overall"


@dataclass
class Proposal:
    points: dict  # rule id -> new points
    old: dict  # rule id -> old points
    candidates: list  # (Candidate, points)
    thresholds: dict  # "mql" / "sql" -> new score threshold
    stats: dict = field(default_factory=dict)  # rule id -> (fired, positive rate when fired)
    notes: dict = field(default_factory=dict)  # rule id -> why a reviewer should look
