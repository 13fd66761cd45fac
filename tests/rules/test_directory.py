"""Writing a proposal over the live rules while another process reads them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from leadflow.rules import dir_version, overlay_rule_files

RULES = "leadflow: 1\nevents: {{ page_view: a page view }}\nscoring:\n  engagement:\n    - {{ id: views, on: page_view, points: {n} }}\n"

READER = """
import pathlib, sys, time
from leadflow.rules import rule_dir_lock
live = pathlib.Path(sys.argv[1])
with rule_dir_lock(str(live)):
    before = (live / "rules.yaml").read_bytes()
    print("reading", flush=True)
    time.sleep(1.0)  # a slow load: long enough for a writer that does not wait to write
    print("same" if (live / "rules.yaml").read_bytes() == before else "changed", flush=True)
"""


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A live rule directory (1 point per view) and a proposal for it (2 points)."""
    live, proposal = tmp_path / "live", tmp_path / "proposal"
    for n, directory in enumerate((live, proposal), start=1):
        directory.mkdir()
        (directory / "rules.yaml").write_text(RULES.format(n=n), encoding="utf-8")
    return live, proposal


def test_a_proposal_is_written_only_when_no_reader_holds_the_directory(tmp_path: Path):
    live, proposal = dirs(tmp_path)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        assert overlay_rule_files(str(proposal), str(live), dir_version(str(live))) == ("done", ["rules.yaml"])
        assert reader.stdout.readline().strip() == "same"
    finally:
        assert reader.wait(timeout=60) == 0
    assert dir_version(str(live)) == dir_version(str(proposal))


def test_a_proposal_made_from_an_older_version_is_stale_and_writes_nothing(tmp_path: Path):
    live, proposal = dirs(tmp_path)
    base = dir_version(str(live))
    (live / "rules.yaml").write_text(RULES.format(n=3), encoding="utf-8")  # an edit after the proposal was made
    assert overlay_rule_files(str(proposal), str(live), base) == ("stale", [])
    assert (live / "rules.yaml").read_text(encoding="utf-8") == RULES.format(n=3)
