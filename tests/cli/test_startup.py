"""What a command costs before it does anything: heavy libraries load only where they are used.
matplotlib (about 30 MB) only for charts; the store, and sqlite_utils with it, not for `--help`."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.leadflow_cli import ROOT, clean_env

HEAVY = ("matplotlib", "sqlite_utils", "slack_bolt", "starlette", "uvicorn", "psycopg", "psycopg_pool")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return {name.split(".")[0] for name in json.loads(out)} & set(HEAVY)


def test_the_shipped_command_loads_no_heavy_library_before_a_command_runs():
    assert loaded_after("import leadflow.bots.cli") == set()


def test_the_engine_and_the_service_do_not_load_matplotlib_until_a_chart_is_drawn():
    loaded = loaded_after("import leadflow.service, leadflow.demo, leadflow.reports, leadflow.learning")
    assert "matplotlib" not in loaded and "sqlite_utils" in loaded  # the probe does see what it loads
