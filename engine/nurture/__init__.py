"""Nurture tracks and decay over time: the durable scheduler the worker runs."""
from ._scheduler import Scheduler, on_event, reopen_event

__all__ = ["Scheduler", "on_event", "reopen_event"]
