"""`python -m leadflow`: the same command as the `leadflow` console script."""
from leadflow.cli import main

main()
