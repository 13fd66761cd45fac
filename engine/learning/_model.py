"""What `rules tune` proposes: candidate rules found in the labelled data, and the proposal itself.

In a module of their own so that writing a proposal into rule files (_tune_yaml) and fitting it
(_fit, _tune) all import them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ._atoms import term_condition, term_text


@dataclass
class Candidate:
    """A new rule: a conjunction of up to three attribute tests (a fit rule), or an event type that no
    rule counts yet (an engagement rule), with the evidence for it."""

    id: str
    term: tuple = ()  # ((Atom, positive), ...): the `when:` of a fit rule
    event: str | None = None  # the `on:` of an engagement rule
    n: int = 0  # labelled leads it fires on
    rate: float = 0.0  # positive rate among them
    base: float = 0.0  # positive rate among all labelled leads
    gain: float | None = None  # cross-validated AUC gain: held-out AUC with the rule minus without it

    @property
    def condition(self) -> dict | None:
        return term_condition(self.term) if self.term else None

    def evidence(self) -> str:
        what = term_text(self.term) if self.term else f"event {self.event}"
        text = f"{what}: {self.n} leads, {self.rate:.0%} positive vs {self.base:.0%} overall"
        if self.gain is not None:
            text += f", cross-validated AUC gain {self.gain:+.4f}"
        return text


@dataclass
class Proposal:
    points: dict  # rule id -> new points
    old: dict  # rule id -> old points
    candidates: list  # (Candidate, points)
    thresholds: dict  # "mql" / "sql" -> new score threshold
    stats: dict = field(default_factory=dict)  # rule id -> (fired, positive rate when fired)
    notes: dict = field(default_factory=dict)  # rule id -> why a reviewer should look
    intercept: float = 0.0  # log-odds at score 0, in points (see _rulefit.POINTS_PER_LOGIT)
    from_outcomes: dict = field(default_factory=dict)  # rule id -> points from outcomes alone (feedback left out)
    labels: dict = field(default_factory=dict)  # label source -> rows and total weight the fit used
    calibration: list = field(default_factory=list)  # [(score, probability)], ascending: calibration.yaml
