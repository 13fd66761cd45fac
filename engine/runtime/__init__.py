"""Running compiled rules: the one place that imports durable_rules, the rule tests that run on it, and
durable_rules' plain rate (the benchmark's baseline)."""
from ._baseline import Baseline, durable_rules_rate
from ._durable import Decision, Engine
from ._ruletests import run_tests

__all__ = ["Baseline", "Decision", "Engine", "durable_rules_rate", "run_tests"]
