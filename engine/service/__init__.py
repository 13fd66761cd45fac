"""The long-lived service: the pipeline, the sales desk, the scheduler and the delivery loop, held
together and reloaded as one."""
from ._presence import Presence
from ._receipt import Receipt
from ._service import LeadService, ManualClock
from ._view import Card, DeliveryView, Route
from ._writer import EventWriter, StoreFailed, ThreadWriter, WriterProcess, WriterUnavailable

__all__ = ["Card", "DeliveryView", "EventWriter", "LeadService", "ManualClock", "Presence", "Receipt", "Route",
           "StoreFailed", "ThreadWriter", "WriterProcess", "WriterUnavailable"]
