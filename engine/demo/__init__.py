"""Generated leads for the demo and the benchmark, and the two runs that use them."""
from ._bench import run_bench, run_scheduler_bench
from ._run import run_demo

__all__ = ["run_bench", "run_demo", "run_scheduler_bench"]
