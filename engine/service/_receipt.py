"""What the webhook tells a sender about one item: a small value that crosses a process boundary."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadflow.pipeline import Outcome


@dataclass(frozen=True)
class Receipt:
    """One item's answer, made from its `Outcome` once the transaction holding it is committed.
    The outcome itself carries the whole decision (traces, scores); the writer process sends back
    only what the answer shows and what the serving process acts on (a new stage wakes its worker)."""

    status: str  # applied | duplicate | conflict | rejected
    event_id: Any = None
    reason: str = ""
    field: str = ""
    stage: str | None = None  # the stage this item's event moved its lead to, if it moved it

    @classmethod
    def of(cls, outcome: Outcome) -> "Receipt":
        transitions = outcome.decision.transitions if outcome.decision else []
        return cls(outcome.status, outcome.event_id, outcome.reason, outcome.field,
                   transitions[-1]["to"] if transitions else None)
