"""The store: every SQL statement of leadflow lives in this package."""
from ._instances import Instance
from ._copy import CopyReport, copy_database, open_store
from ._leads import Evaluation, StageChange, StoredEvent
from ._metrics import CampaignCost, FunnelRow, LoggedEvent, StageEntry, WonDeal
from ._outbox import plain_text
from ._schedule import Timer
from ._migrations import Migration, SchemaStatus
from ._postgres import is_postgres_url, masked
from ._scratch import scratch_database
from ._store import Store, sqlite_path

__all__ = ["CampaignCost", "CopyReport", "Evaluation", "FunnelRow", "Instance", "LoggedEvent", "Migration", "SchemaStatus",
           "StageChange", "StageEntry", "Store", "StoredEvent", "Timer", "WonDeal", "copy_database", "is_postgres_url", "masked",
           "open_store", "plain_text", "scratch_database", "sqlite_path"]
