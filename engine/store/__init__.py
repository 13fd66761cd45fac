"""The store: every SQL statement of leadflow lives in this package."""
from ._outbox import plain_text
from ._store import Store

__all__ = ["Store", "plain_text"]
