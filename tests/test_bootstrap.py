"""utils/bootstrap.py on cases computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from utils.bootstrap import mean_interval, ratio_interval, settings
from utils.errors import UsageError


def test_all_equal_values_give_a_zero_width_interval():
    assert mean_interval([0.25] * 7) == [0.25, 0.25]
    assert ratio_interval([1, 2, 3], [2, 4, 6]) == [0.5, 0.5]  # every prompt has ratio 1/2, so every resample too


def test_interval_contains_the_mean_and_is_deterministic_by_seed():
    values = np.random.default_rng(3).normal(size=40)
    lo, hi = mean_interval(values, seed=7)
    assert lo < values.mean() < hi
    assert mean_interval(values, seed=7) == [lo, hi]
    assert mean_interval(values, seed=8) != [lo, hi]


def test_two_prompts_by_hand():
    # Two prompts 0 and 1: a resample of two is {0,0}, {0,1}, {1,0} or {1,1} -> means 0, .5, .5, 1.
    # With 1000 resamples the 2.5% and 97.5% percentiles are 0 and 1.
    assert mean_interval([0.0, 1.0]) == [0.0, 1.0]
    # A ratio whose denominator can be 0: prompt A (1 of 1 reversed) and prompt B (no source images).
    # Resamples without A are left out; every kept one has ratio 1.
    assert ratio_interval([1, 0], [1, 0]) == [1.0, 1.0]
    assert ratio_interval([0, 0], [0, 0]) is None
    assert mean_interval([]) is None


def test_the_interval_matches_a_plain_loop():
    values = np.arange(10, dtype=float) ** 2
    rng = np.random.Generator(np.random.PCG64(0))
    means = values[rng.integers(0, 10, size=(1000, 10))].mean(axis=1)
    assert mean_interval(values) == pytest.approx(list(np.percentile(means, [2.5, 97.5])))
    assert settings()["resamples"] == 1000 and settings()["seed"] == 0


def test_bad_input_is_one_sentence():
    with pytest.raises(UsageError, match="numerators but"):
        ratio_interval([1, 2], [1])
    with pytest.raises(UsageError, match="finite"):
        mean_interval([1.0, float("nan")])
    with pytest.raises(UsageError, match="level"):
        mean_interval([1.0], level=1.5)
