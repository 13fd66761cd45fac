"""`python -m engine.cli`: the engine's commands, without `serve` and `worker`."""
from . import main

main()
