"""Who holds an outbox row that is being sent, and whether that holder still runs: the claim
identity every leased piece of background work shares (nurture enrolments too), kept in
leadflow.core (see its _holders.py for how a holder is named and judged gone)."""
from __future__ import annotations

from leadflow.core import Claimer, holder_gone

__all__ = ["Claimer", "holder_gone"]
