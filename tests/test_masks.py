"""Skilled masks and their union against slow, obvious implementations of the paper's rule."""
from __future__ import annotations

import pytest
import torch

from utils.skilled import skilled_mask, union_mask


def slow_skilled_mask(weight, norm_base, norm_target, ratio):
    """Row by row: the k columns of largest |W| * n_t, kept where |W| * n_t > |W| * n_b."""
    rows, cols = weight.shape
    k = int(ratio * cols)
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    for r in range(rows):
        scores = [(abs(float(weight[r, j])) * float(norm_target[j]), j) for j in range(cols)]
        for score, j in sorted(scores, reverse=True)[:k]:
            if score > abs(float(weight[r, j])) * float(norm_base[j]):
                mask[r, j] = True
    return mask


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.1, 0.3])
def test_skilled_mask_equals_slow_rule(ratio):
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(12, 200, generator=gen)
    weight[0, :50] = 0.0  # zero weights can never be skilled
    n_b, n_t = torch.rand(200, generator=gen), torch.rand(200, generator=gen)
    expected = slow_skilled_mask(weight, n_b, n_t, ratio)
    got = skilled_mask(weight, n_b, n_t, ratio)
    assert torch.equal(got, expected)
    assert int(got.sum(1).max()) <= int(ratio * 200)


def test_skilled_mask_is_empty_below_one_column_and_when_base_wins():
    weight = torch.randn(4, 50)
    assert not skilled_mask(weight, torch.zeros(50), torch.ones(50), 0.01).any()  # k = 0
    assert not skilled_mask(weight, torch.ones(50) * 2, torch.ones(50), 0.5).any()  # base beats target
    full = skilled_mask(weight, torch.zeros(50), torch.ones(50), 0.5)
    assert torch.equal(full.sum(1), torch.full((4,), 25))


@pytest.mark.parametrize("select_ratio", [0.0, 0.3, 0.6])
def test_union_counts_steps_above_select_ratio(select_ratio):
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(8, 100, generator=gen)
    norms = torch.rand(2, 6, 100, generator=gen)
    tau = 5
    count = sum(slow_skilled_mask(weight, norms[0, t], norms[1, t], 0.1).int() for t in range(tau))
    expected = count > select_ratio * tau
    assert torch.equal(union_mask(weight, norms, 0.1, tau, select_ratio), expected)
    if select_ratio == 0.0:
        plain = torch.zeros_like(expected)
        for t in range(tau):
            plain |= slow_skilled_mask(weight, norms[0, t], norms[1, t], 0.1)
        assert torch.equal(expected, plain)
    # steps at or after tau never count
    changed = norms.clone()
    changed[1, tau:] = 100.0
    assert torch.equal(union_mask(weight, changed, 0.1, tau, select_ratio), expected)


def test_union_needs_enough_steps():
    with pytest.raises(ValueError, match="fewer than timesteps"):
        union_mask(torch.randn(2, 10), torch.rand(2, 3, 10), 0.1, 4)


def test_saved_files_are_atomic_and_readable_by_others(tmp_path):
    import stat

    import torch

    from utils.storage import load_tensors, save_image, save_tensors, write_text

    save_tensors(tmp_path / "t.safetensors", {"w": torch.ones(2, 3)}, {"config": {"skill_ratio": 0.01}})
    write_text(tmp_path / "c.yaml", "a: 1\n")
    from PIL import Image

    save_image(tmp_path / "i.png", Image.new("RGB", (4, 4)))
    tensors, meta = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(tensors["w"], torch.ones(2, 3)) and meta == {"config": {"skill_ratio": 0.01}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "i.png", "t.safetensors"]  # no temp file left
    for name in ("t.safetensors", "c.yaml", "i.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
