"""Seeded percentile bootstrap intervals over prompts, for every headline number of a benchmark.

A headline number is a ratio of sums over prompts: a mean is ``sum(value) / sum(1)``, a rate such as
the gender reversal rate is ``sum(reversed) / sum(source images)``, a paired change is
``sum(edited - original) / sum(1)``. ``ratio_interval`` resamples the prompts (clusters: all the
images of one prompt go together) with replacement ``resamples`` times, recomputes the ratio on each
resample and returns the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles. Resamples whose
denominator is 0 (no source images drawn) are left out. The generator is numpy's PCG64 seeded with
``seed``, so the same inputs and seed give the same interval on any machine.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from utils.errors import UsageError

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
_CHUNK = 1 << 22  # index entries drawn at a time: memory stays at ~32 MB whatever the number of prompts


def settings(resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """The bootstrap's settings as recorded in metrics.json (method, unit, resamples, seed, level)."""
    return {"method": "percentile bootstrap over prompts", "resamples": resamples, "seed": seed, "level": level}


def ratio_interval(
    numerators: Sequence[float],
    denominators: Sequence[float] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[float] | None:
    """Percentile bootstrap interval ``[lo, hi]`` of ``sum(numerators) / sum(denominators)`` over prompts.

    ``numerators[i]`` and ``denominators[i]`` are prompt i's totals (``denominators`` defaults to all
    ones, giving the interval of the mean). Returns None when no prompt has a positive denominator.
    Raises UsageError for unequal lengths, a non-finite value, fewer than 1 resample or a level
    outside (0, 1).
    """
    num = np.asarray(numerators, dtype=np.float64).reshape(-1)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=np.float64).reshape(-1)
    if num.shape != den.shape:
        raise UsageError(f"the bootstrap got {num.size} numerators but {den.size} denominators; pass one of each per prompt")
    if not (np.isfinite(num).all() and np.isfinite(den).all()):
        raise UsageError("the bootstrap got a value that is not a finite number; score every prompt before summarizing")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise UsageError(f"the bootstrap needs at least 1 resample and a level in (0, 1), got {resamples} and {level}")
    if num.size == 0 or not (den > 0).any():
        return None
    rng = np.random.Generator(np.random.PCG64(seed))
    per_chunk = max(1, _CHUNK // num.size)
    ratios = []
    for start in range(0, resamples, per_chunk):
        index = rng.integers(0, num.size, size=(min(per_chunk, resamples - start), num.size))
        top, bottom = num[index].sum(axis=1), den[index].sum(axis=1)
        ratios.append(top[bottom > 0] / bottom[bottom > 0])
    values = np.concatenate(ratios)
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def mean_interval(values: Sequence[float], **kwargs) -> list[float] | None:
    """Percentile bootstrap interval ``[lo, hi]`` of the mean of per-prompt ``values`` (None for no values)."""
    return ratio_interval(values, None, **kwargs)
