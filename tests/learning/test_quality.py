"""Brier score and expected calibration error (engine/learning/_quality.py) at their edges: no leads,
a probability of exactly 1 (the last bin, not an eleventh), bin boundaries and a perfect calibration."""
from __future__ import annotations

import pytest

from leadflow.learning._quality import brier, ece


def test_no_leads_gives_none():
    assert brier([], []) is None
    assert ece([], []) is None


def test_a_probability_of_exactly_one_falls_in_the_last_bin():
    # 1.0 and 0.92 share the last bin: mean 0.96 against a rate of 0.5 -> 0.46; were 1.0 in a bin of its
    # own, the gaps would not offset: (|1.0 - 0| + |0.92 - 1|) / 2 = 0.54
    assert ece([0, 1], [1.0, 0.92]) == pytest.approx(0.46)
    assert ece([1], [1.0]) == 0.0 and brier([1], [1.0]) == 0.0


def test_a_probability_of_zero_falls_in_the_first_bin_with_its_neighbours():
    # 0.0 and 0.09 share bin 0: mean 0.045 against a rate of 0.5
    assert ece([1, 0], [0.0, 0.09]) == pytest.approx(abs(0.09 - 1) / 2)
    # a boundary belongs to the bin above: 0.1 is not in bin 0
    assert ece([1, 0], [0.0, 0.1]) == pytest.approx((1.0 + 0.1) / 2)


def test_ece_weighs_each_bin_by_its_share_of_leads():
    labels = [1, 0, 0, 0, 1, 1]
    probs = [0.25, 0.25, 0.25, 0.25, 0.85, 0.85]
    # bin 2: four leads, mean 0.25, rate 0.25 -> 0; bin 8: two leads, mean 0.85, rate 1 -> 0.15 * 2 / 6
    assert ece(labels, probs) == pytest.approx(0.15 * 2 / 6)
    assert ece(labels, probs, bins=1) == pytest.approx(abs(sum(probs) - sum(labels)) / 6)


def test_brier_is_the_mean_squared_gap():
    assert brier([1, 0, 1], [0.8, 0.3, 0.5]) == pytest.approx((0.04 + 0.09 + 0.25) / 3)
    assert brier([0, 1], [1.0, 0.0]) == 1.0  # as wrong as can be
