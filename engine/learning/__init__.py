"""Learning from outcomes: eval (AUC, calibration), backtest, tune, and tuning proposals a person approves,
with their effect on the reps' queue."""
from ._backtest import backtest
from ._evaluate import metrics, replay
from ._labelled import leads_from_csv, leads_from_store
from ._proposals import apply_proposal, dismiss_proposal, schedule_proposal
from ._queue import queue_effect, queue_line
from ._tune import tune

__all__ = [
    "apply_proposal", "backtest", "dismiss_proposal", "leads_from_csv", "leads_from_store", "metrics",
    "queue_effect", "queue_line", "replay", "schedule_proposal", "tune",
]
