"""The store: every SQL statement of leadflow lives in this package."""
from ._leads import Evaluation, StageChange, StoredEvent
from ._metrics import CampaignCost, FunnelRow, LoggedEvent, StageEntry, WonDeal
from ._outbox import plain_text
from ._schedule import Timer
from ._migrations import Migration, SchemaStatus
from ._postgres import is_postgres_url, masked
from ._store import Store, sqlite_path

__all__ = ["CampaignCost", "Evaluation", "FunnelRow", "LoggedEvent", "Migration", "SchemaStatus", "StageChange",
           "StageEntry", "Store", "StoredEvent", "Timer", "WonDeal", "is_postgres_url", "masked", "plain_text",
           "sqlite_path"]
