"""Nurture tracks and decay over time: the durable scheduler the worker runs."""
from ._scheduler import LEASE, Scheduler, on_event, reopen_event

__all__ = ["LEASE", "Scheduler", "on_event", "reopen_event"]
