"""The long-lived service: the pipeline, the sales desk, the scheduler and the delivery loop, held
together and reloaded as one."""
from ._presence import Presence
from ._service import LeadService, ManualClock
from ._view import Card, DeliveryView, Route

__all__ = ["Card", "DeliveryView", "LeadService", "ManualClock", "Presence", "Route"]
