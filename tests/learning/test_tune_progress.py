"""Tuning reports its progress as (done, total) lead replays, and the total it announces is the
work it does: a bar that stops short or overflows would tell the user a wrong time left."""
from __future__ import annotations

import pytest

from leadflow.learning import leads_from_csv, tune
from tests.datasets import EXAMPLE, write_labelled_csv


@pytest.mark.parametrize("capacity", [None, 0.3], ids=["points only", "with thresholds"])
def test_tune_counts_every_replay_up_to_the_total_it_announced(tmp_path, capacity):
    data = tmp_path / "leads.csv"
    write_labelled_csv(data, 120, seed=3)
    leads = leads_from_csv(str(data), str(EXAMPLE / "mapping.yaml"))
    seen: list[tuple[int, int]] = []
    report = tune(str(EXAMPLE / "start"), leads, str(tmp_path / "out"), capacity=capacity,
                  progress=lambda done, total: seen.append((done, total)))
    totals = {total for _, total in seen}
    assert len(totals) == 1 and report["leads"] == 120
    total = totals.pop()
    assert total == 120 * 12  # 5 folds (training leads twice, held-out leads twice), then the final fit twice
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})
