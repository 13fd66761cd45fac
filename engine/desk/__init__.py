"""The sales desk: choosing a rep for a new SQL, the rep's accept/reject, and SLA deadlines."""
from ._routing import RoutingTable
from ._sales import SalesDesk

__all__ = ["RoutingTable", "SalesDesk"]
