"""Where the shared datasets live (read in place, never copied into the project)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dataset(*parts: str) -> Path:
    candidates = [Path(os.environ["LEADFLOW_DATASETS"])] if os.environ.get("LEADFLOW_DATASETS") else []
    candidates += [ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets")]
    for base in candidates:
        path = base.joinpath(*parts)
        if path.exists():
            return path
    raise FileNotFoundError(f"{'/'.join(parts)} not found under {[str(c) for c in candidates]}; "
                            "set LEADFLOW_DATASETS to the shared datasets directory")
