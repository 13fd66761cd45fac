"""The store: every SQL statement of leadflow lives in this package."""
from ._instances import Instance
from ._copy import CopyReport, copy_database, open_store
from ._leads import Evaluation, StageChange, StoredEvent
from ._merge import MAX_PARTS as MERGE_MAX_PARTS
from ._merge import MergeReport, PartStore, existing_event_ids, existing_leads, merge_parts
from ._metrics import CampaignCost, FunnelRow, LoggedEvent, StageEntry, WonDeal
from ._outbox import plain_text
from ._schedule import Timer
from ._migrations import Migration, SchemaStatus
from ._postgres import is_postgres_url, masked
from ._scratch import scratch_database
from ._store import Store, sqlite_path

__all__ = ["MERGE_MAX_PARTS", "CampaignCost", "CopyReport", "Evaluation", "FunnelRow", "Instance", "LoggedEvent",
           "MergeReport", "Migration", "PartStore", "SchemaStatus", "StageChange", "StageEntry", "Store", "StoredEvent", "Timer",
           "WonDeal", "copy_database", "existing_event_ids", "existing_leads", "is_postgres_url", "masked",
           "merge_parts", "open_store", "plain_text", "scratch_database", "sqlite_path"]
