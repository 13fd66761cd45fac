"""Learning from outcomes: eval (AUC), backtest, tune, and tuning proposals a person approves."""
from ._backtest import backtest
from ._evaluate import metrics, replay
from ._labelled import leads_from_csv, leads_from_store
from ._proposals import apply_proposal, dismiss_proposal, schedule_proposal
from ._tune import tune

__all__ = [
    "apply_proposal", "backtest", "dismiss_proposal", "leads_from_csv", "leads_from_store", "metrics",
    "replay", "schedule_proposal", "tune",
]
