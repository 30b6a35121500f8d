"""The data-free revival attack and the pruned-position detectors against planted cases and slow, obvious rules."""
from __future__ import annotations

import math

import pytest
import torch

import utils.revival as revival
from utils.revival import (
    DETECTORS,
    best_detector,
    detector_scores,
    locate_zeros,
    locating_auc,
    locating_aucs,
    revive,
    revive_weight,
    soft_impute,
)


def random_weight(rows, cols, seed):
    """Gaussian weights pushed away from 0 (|w| >= 1e-3), so the only exact zeros are the ones we write."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen)
    return torch.where(w.abs() < 1e-3, torch.full_like(w, 1e-3), w), gen


def test_locate_zeros_finds_exactly_the_zeroed_positions():
    w, gen = random_weight(30, 70, seed=0)
    mask = torch.rand(30, 70, generator=gen) < 0.1
    pruned = w.masked_fill(mask, 0.0)
    assert torch.equal(locate_zeros(pruned), mask)
    assert not locate_zeros(w).any()


def planted(seed, rows=60, cols=80, rank=3, hidden=0.2):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, rank, generator=gen) @ torch.randn(rank, cols, generator=gen)
    return a, torch.rand(rows, cols, generator=gen) < hidden


@pytest.mark.parametrize("rank", [None, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_soft_impute_recovers_a_planted_low_rank_matrix(seed, rank):
    # Soft-thresholding shrinks each kept singular value by lambda = 0.01 sigma_max, so the hidden entries are
    # biased by about lambda / sigma_3 (~1.5% here); 0.05 leaves a 3x margin.
    a, hidden = planted(seed)
    completed = soft_impute(a, ~hidden, rank=rank)
    error = (completed - a)[hidden].norm() / a[hidden].norm()
    assert error < 0.05
    assert torch.equal(completed[~hidden], a[~hidden])  # observed entries are returned exactly


def test_soft_impute_keeps_dtype_and_observed_entries_of_half_weights():
    a, hidden = planted(2)
    half = a.to(torch.bfloat16)
    completed = soft_impute(half, ~hidden, max_iters=20)
    assert completed.dtype == torch.bfloat16
    assert torch.equal(completed[~hidden], half[~hidden])


def test_soft_impute_stops_at_tolerance_and_is_deterministic():
    a, hidden = planted(3, rows=40, cols=200, rank=4)
    first = soft_impute(a, ~hidden, rank=8, max_iters=50)
    assert torch.equal(first, soft_impute(a, ~hidden, rank=8, max_iters=50))
    assert not torch.equal(first, soft_impute(a, ~hidden, rank=8, max_iters=50, tol=1e-1))


def pruned_layer(seed, rows=24, cols=60, fraction=0.3):
    """A zero-pruned layer with low-rank structure; row 0 has nothing pruned."""
    w, gen = random_weight(rows, cols, seed)
    w = w * 0.1 + torch.randn(rows, 2, generator=gen) @ torch.randn(2, cols, generator=gen)
    mask = torch.rand(rows, cols, generator=gen) < fraction
    mask[0] = False
    return w.masked_fill(mask, 0.0), mask


@pytest.mark.parametrize("sign_ratio", [0.6, 0.3, 1.0])
def test_revive_weight_follows_the_rule(sign_ratio):
    weight, located = pruned_layer(4)
    before = weight.clone()
    margin = 0.05
    out = revive_weight(weight, located, sign_ratio=sign_ratio, margin=margin)
    completed = soft_impute(weight, ~located)
    assert torch.equal(weight, before)
    assert torch.equal(out != weight, located)  # the located entries change, and only those
    ceiling = (1 + margin) * torch.where(located, torch.zeros_like(weight), weight.abs()).amax(dim=1)
    for r in range(weight.shape[0]):
        cols = located[r].nonzero().flatten()
        kept = cols[out[r, cols].abs() == ceiling[r]]
        rest = cols[out[r, cols].abs() != ceiling[r]]
        assert len(kept) == (math.ceil(round(sign_ratio * len(cols), 9)) if len(cols) else 0)
        assert torch.equal(torch.sign(out[r, kept]), torch.where(completed[r, kept] >= 0, 1.0, -1.0))
        assert torch.equal(out[r, rest], completed[r, rest])
        if len(kept) and len(rest):
            assert completed[r, kept].abs().min() >= completed[r, rest].abs().max()


def test_revive_weight_rest_keep_and_validation():
    weight, located = pruned_layer(5)
    out = revive_weight(weight, located, rest="keep")
    changed = out != weight
    assert (changed <= located).all()
    assert int(changed.sum()) == int(sum(math.ceil(round(0.6 * int(n), 9)) for n in located.sum(dim=1) if n))
    with pytest.raises(ValueError):
        revive_weight(weight, located, rest="zero")
    with pytest.raises(ValueError):
        revive_weight(weight, located, sign_ratio=0.0)


def test_revive_every_layer_and_a_fully_pruned_row():
    weight, located = pruned_layer(6)
    located[1] = True
    weight = weight.masked_fill(located, 0.0)
    clean, _ = random_weight(8, 20, seed=7)
    out = revive({"a": weight, "b": clean}, {"a": located, "b": torch.zeros(8, 20, dtype=torch.bool)}, rank=4, max_iters=20)
    assert list(out) == ["a", "b"]
    assert torch.equal(out["b"], clean) and out["b"] is not clean
    layer_ceiling = 1.05 * weight.abs().max()
    assert torch.allclose(out["a"][1].abs().max(), layer_ceiling)  # a row with no survivor uses the layer's largest


def slow_auc(scores, truth):
    pos = [float(s) for s, t in zip(scores.flatten(), truth.flatten()) if t]
    neg = [float(s) for s, t in zip(scores.flatten(), truth.flatten()) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_locating_auc_equals_pairwise_counting_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (7, 9), generator=gen).float()
    truth = torch.rand(7, 9, generator=gen) < 0.3
    assert locating_auc(scores, truth) == pytest.approx(slow_auc(scores, truth), abs=1e-12)


def test_locating_auc_extremes_and_subsample(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(50, 40, generator=gen) < 0.2
    scores = truth.float() + 0.01 * torch.rand(50, 40, generator=gen)
    assert locating_auc(scores, truth) == 1.0
    assert locating_auc(-scores, truth) == 0.0
    assert locating_auc(torch.ones(50, 40), truth) == 0.5
    assert locating_auc(scores, torch.zeros_like(truth)) == 0.5
    noisy = truth.float() + torch.randn(50, 40, generator=gen)
    full = locating_auc(noisy, truth)
    monkeypatch.setattr(revival, "MAX_AUC_ENTRIES", 1000)
    sub = locating_auc(noisy, truth)
    assert sub == locating_auc(noisy, truth) and abs(sub - full) < 0.05


def test_detectors_locate_a_zero_fill_and_a_wide_noise_fill():
    weights, masks = {}, {}
    for i, shape in enumerate([(16, 40), (32, 80)]):
        w, gen = random_weight(*shape, seed=10 + i)
        masks[f"l{i}"] = torch.rand(*shape, generator=gen) < 0.05
        weights[f"l{i}"] = w.masked_fill(masks[f"l{i}"], 0.0)
    aucs = locating_aucs(weights, masks)
    assert set(aucs) == set(DETECTORS) | {f"{k}_per_layer" for k in DETECTORS}
    assert aucs["zero"] == 1.0 and aucs["zero_per_layer"] == 1.0
    assert aucs["magnitude"] > 0.99 and aucs["magnitude_per_layer"] > 0.99
    assert best_detector(aucs)[1] == 1.0

    w, gen = random_weight(32, 80, seed=12)
    mask = torch.rand(32, 80, generator=gen) < 0.05
    wide = torch.where(mask, 10 * torch.randn(32, 80, generator=gen), w)
    aucs = locating_aucs({"l": wide}, {"l": mask}, kinds=("row_z", "magnitude"))
    assert aucs["row_z"] > 0.95
    assert aucs["magnitude"] < 0.1
    flipped = {"-row_z": 1 - aucs["row_z"], "-magnitude": 1 - aucs["magnitude"]}
    candidates = {"row_z": aucs["row_z"], "magnitude": aucs["magnitude"], **flipped}
    best = max(candidates, key=candidates.get)
    assert best_detector(aucs, per_layer=False) == (best, candidates[best])
    assert best_detector(aucs, per_layer=False, signed=False) == ("row_z", aucs["row_z"])
    assert torch.equal(detector_scores(wide, "-row_z"), -detector_scores(wide, "row_z"))
    assert detector_scores(wide, "residual", rank=8).shape == wide.shape
    with pytest.raises(ValueError):
        detector_scores(wide, "entropy")
