"""The main path: a validated event, the engine's decision, one transaction in the store; files of
events and the webhook's group commit feed it."""
from ._files import ingest_file
from ._groupcommit import GroupCommit
from ._jobs import apply_in_jobs
from ._pipeline import Counts, Outcome, Pipeline
from ._webhooks import WEBHOOK_KIND, delivery_id, queue_webhook

__all__ = ["Counts", "GroupCommit", "Outcome", "Pipeline", "WEBHOOK_KIND", "apply_in_jobs", "delivery_id",
           "ingest_file", "queue_webhook"]
