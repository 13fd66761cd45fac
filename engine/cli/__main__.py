"""`python -m engine.cli`: the engine's commands alone (the shipped `leadflow`, with `serve` and
`worker`, is `python -m bots`)."""
from . import leadflow_group

leadflow_group()(prog_name="leadflow")
