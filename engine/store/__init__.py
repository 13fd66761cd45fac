"""The store: every SQL statement of leadflow lives in this package."""
from ._leads import Evaluation, StageChange, StoredEvent
from ._metrics import CampaignCost, FunnelRow, LoggedEvent, StageEntry, WonDeal
from ._outbox import plain_text
from ._schedule import Timer
from ._store import Store

__all__ = ["CampaignCost", "Evaluation", "FunnelRow", "LoggedEvent", "StageChange", "StageEntry", "Store",
           "StoredEvent", "Timer", "WonDeal", "plain_text"]
