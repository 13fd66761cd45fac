"""Running compiled rules: the one place that imports durable_rules, and the rule tests that run on it."""
from ._durable import Decision, Engine
from ._ruletests import run_tests

__all__ = ["Decision", "Engine", "run_tests"]
