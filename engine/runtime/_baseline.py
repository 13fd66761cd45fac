"""The benchmark's denominator: durable_rules alone on the compiled conditions, with empty actions.

`leadflow bench` divides the full path's rate by this one to show what the work around the engine
costs. The ratio is only as steady as its denominator: one timing of a second or two at the end of a
ten-minute run moved by a quarter from run to run on a shared machine (other work, the CPU's clock),
more than the differences the ratio is meant to show. So the baseline can be timed in short slices
spread through the run (`Baseline.run`), which see the same machine the full path saw, and its rate
is all the facts asserted over all the time they took.

It runs on hosts of its own, so no Engine ever carries the baseline's ruleset. A host is replaced
after each pass over the facts (host set-up is not timed), and each pass gives the ids a suffix of
its own, so a long run never asserts one fact twice on one host and times what a real run asserts:
a new fact each time.
"""
from __future__ import annotations

import time

from leadflow.rules import Compiled

from ._durable import _QuietHost


class Baseline:
    def __init__(self, compiled: Compiled, facts: list[dict]):
        """facts: input facts as the full path asserts them (the run's own mix of events per lead)."""
        if not facts:
            raise ValueError("the baseline needs at least one fact")
        self._compiled = compiled
        self._name = f"baseline_{compiled.name}"
        self._facts = facts
        self._next = len(facts)  # a new host on the first call
        self._passes = 0
        self._host: _QuietHost | None = None
        self.asserted = 0
        self.seconds = 0.0
        self.slices: list[float] = []  # the rate of each slice, to show how much it moved

    def run(self, n: int) -> float:
        """Assert the next `n` facts (round and round the list); returns the seconds it took, all of
        them spent in durable_rules (host set-up is not counted)."""
        spent = 0.0
        done = 0
        while done < n:
            if self._next == len(self._facts):
                self._new_host()
            chunk = self._facts[self._next:self._next + (n - done)]
            host, name, suffix = self._host, self._name, f"~{self._passes}"
            assert host is not None
            facts = [{**fact, "id": fact["id"] + suffix} for fact in chunk]
            start = time.perf_counter()
            for fact in facts:
                host.assert_fact(name, fact)
            spent += time.perf_counter() - start
            self._next += len(chunk)
            done += len(chunk)
        self.asserted += done
        self.seconds += spent
        if done:
            self.slices.append(done / max(spent, 1e-9))
        return spent

    @property
    def rate(self) -> float:
        """Facts per second over every slice so far."""
        return self.asserted / self.seconds if self.seconds else 0.0

    def _new_host(self) -> None:
        self._host = _QuietHost()
        # a fresh definition each time: durable_rules takes the actions out of the one it is given
        definition = {name: {**rule, "run": _retract if name == "collect" else _nothing}
                      for name, rule in self._compiled.definition.items()}
        self._host.register_rulesets({self._name: definition})
        self._next = 0
        self._passes += 1


def _retract(c: object) -> None:
    c.retract_fact(c.m)  # type: ignore[attr-defined]  # durable_rules' closure


def _nothing(c: object) -> None:
    return None


def durable_rules_rate(compiled: Compiled, facts: list[dict]) -> float:
    """Facts per second of one pass over `facts` on a fresh host."""
    baseline = Baseline(compiled, facts)
    baseline.run(len(facts))
    return baseline.rate
