"""`python -m bots`: the shipped `leadflow` command (the same as the console script)."""
from .cli import main

main(prog_name="leadflow")
