"""What an Engine leaves in its durable_rules session: the tests' window on the engine's private host.

The engine keeps a lead's state in the store, never in the engine: every fact and event of a call is
retracted or consumed by its end, even when an action fails. Nothing in production needs to count
them, so the count is taken here, from the outside.
"""
from __future__ import annotations

from leadflow.rules import Compiled
from leadflow.runtime import Engine
from leadflow.runtime._durable import SID


def resident_facts(engine: Engine, compiled: Compiled) -> int:
    """Facts and pending events left in the engine's session for this rule version (0 between calls)."""
    engine.load(compiled)
    host = engine._host  # the engine's private durable_rules host: tests may look, production never does
    return len(host.get_facts(compiled.name, SID)) + len(host.get_pending_events(compiled.name, SID))
