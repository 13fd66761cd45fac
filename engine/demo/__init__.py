"""Generated leads for the demo and the benchmark, the two runs that use them, and the starter project
`leadflow init` writes from the bundled rules."""
from ._bench import run_bench, run_scheduler_bench
from ._parallel import parallel_bench
from ._run import run_demo
from ._starter import bundled_rules_dir, init_project
from ._webhook_bench import webhook_bench

__all__ = ["bundled_rules_dir", "init_project", "parallel_bench", "run_bench", "run_demo", "run_scheduler_bench",
           "webhook_bench"]
