"""Fills of the pruned weights (utils/fills.py): zero, noise, shuffle; seeded, reproducible, recorded in the mask file."""
from __future__ import annotations

import pytest
import torch

from conftest import run_script
from utils.fills import FILLS, fill_values, layer_generator
from utils.pruning import fill_masked


def _weight_and_mask(seed=0, rows=6, cols=400, fraction=0.05):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=gen) * 0.3 + 0.1
    mask = torch.rand(rows, cols, generator=gen) < fraction
    return weight, mask


def test_noise_matches_each_rows_surviving_weights_and_is_seeded_per_layer():
    weight, _ = _weight_and_mask()
    mask = torch.zeros_like(weight, dtype=torch.bool)
    mask[:, ::2] = True  # half of every row: enough draws to compare the statistics
    values = fill_values(weight, mask, "noise", layer_generator(7, "a.weight")).reshape(weight.shape[0], -1)
    kept = weight[:, 1::2]
    assert torch.allclose(values.mean(1), kept.mean(1), atol=0.06) and torch.allclose(values.std(1), kept.std(1), rtol=0.15)
    again = fill_values(weight, mask, "noise", layer_generator(7, "a.weight")).reshape(weight.shape[0], -1)
    assert torch.equal(values, again)  # same seed and layer: the same values
    assert not torch.equal(values, fill_values(weight, mask, "noise", layer_generator(8, "a.weight")).reshape(weight.shape[0], -1))
    assert not torch.equal(values, fill_values(weight, mask, "noise", layer_generator(7, "b.weight")).reshape(weight.shape[0], -1))


def test_shuffle_draws_each_value_from_its_rows_unmasked_weights():
    weight, mask = _weight_and_mask(fraction=0.2)
    mask[2] = True  # a row with nothing left gets zeros
    values = fill_values(weight, mask, "shuffle", layer_generator(0, "w"))
    rows = mask.nonzero()[:, 0]
    for value, row in zip(values.tolist(), rows.tolist()):
        if row == 2:
            assert value == 0.0
        else:
            assert any(value == float(w) for w in weight[row][~mask[row]])
    assert (values[rows != 2] != 0).all()


def test_fill_masked_writes_only_the_masked_entries_and_zero_is_the_papers():
    for fill in FILLS:
        weight, mask = _weight_and_mask(seed=3)
        before = weight.clone()
        assert fill_masked({"w": weight}, {"w": mask}, fill, seed=5) == int(mask.sum())
        assert torch.equal(weight[~mask], before[~mask])
        if fill == "zero":
            assert (weight[mask] == 0).all()
        else:
            assert (weight[mask] != 0).all() and not torch.equal(weight[mask], before[mask])
    with pytest.raises(ValueError, match="unknown fill"):
        fill_values(weight, mask, "ones", layer_generator(0, "w"))


def test_a_filled_mask_is_recorded_in_its_file_and_applied_the_same_on_every_load(tiny_sd_dir, prompt_files, tmp_path):
    from utils.pruning import apply_prune_mask, load_prune_mask
    from utils.tiny_pipeline import build_tiny_pipeline

    base, target = prompt_files(["a photo of a cat", "a photo of a house"], ["a cat in the style of stripes", "a house in the style of stripes"])
    export = tmp_path / "export"
    run_script("save_union_over_time", ["--model_id", str(tiny_sd_dir), "--num_inference_steps", "3", "--res_path", str(tmp_path / "r"),
                                        "--target", "stripes", "--base_prompts", base, "--target_prompts", target, "--skill_ratio", "0.1",
                                        "--fill", "noise", "--seed", "11", "--export_diffusers", str(export)])
    (path,) = (tmp_path / "r").glob("tiny-sd/stripes/pruned/*/prune_mask.safetensors")
    assert path.parent.name.endswith("_noise")  # beside, not over, the zero-filled mask of the same setting
    masks, meta = load_prune_mask(path)
    assert (meta["fill"], meta["fill_seed"]) == ("noise", 11)
    unets = []
    for _ in range(2):
        pipe = build_tiny_pipeline("sd1", seed=0)
        apply_prune_mask(pipe, path)
        unets.append(pipe.unet)
    original = build_tiny_pipeline("sd1", seed=0).unet
    for key, mask in masks.items():
        filled = [u.get_parameter(key).detach() for u in unets]
        assert torch.equal(filled[0], filled[1])  # reproducible
        assert (filled[0][mask] != 0).all() and not torch.equal(filled[0][mask], original.get_parameter(key).detach()[mask])
        assert torch.equal(filled[0][~mask], original.get_parameter(key).detach()[~mask])
    from diffusers import UNet2DConditionModel

    exported = UNet2DConditionModel.from_pretrained(str(export))
    assert all(torch.equal(exported.get_parameter(k).detach(), unets[0].get_parameter(k).detach()) for k in masks)


def test_an_unknown_fill_is_one_sentence(tiny_sd_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script("save_union_over_time", ["--model_id", str(tiny_sd_dir), "--res_path", str(tmp_path), "--target", "Van Gogh", "--fill", "ones"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown --fill 'ones'; choose one of zero, noise, shuffle" in err


def test_a_fill_scale_narrows_the_draws_around_the_row_mean_and_is_recorded(tiny_sd_dir, prompt_files, tmp_path, capsys):
    from utils.pruning import load_prune_mask

    weight, _ = _weight_and_mask()
    mask = torch.zeros_like(weight, dtype=torch.bool)
    mask[:, ::2] = True
    full = fill_values(weight, mask, "noise", layer_generator(1, "w"))
    half = fill_values(weight, mask, "noise", layer_generator(1, "w"), scale=0.5)
    mean = weight[:, 1::2].mean(1).repeat_interleave(weight.shape[1] // 2)
    assert torch.allclose(half - mean, 0.5 * (full - mean), atol=1e-6)  # the same draws, half as far from the row mean
    base, target = prompt_files(["a photo of a cat"], ["a cat in the style of stripes"])
    argv = ["--model_id", str(tiny_sd_dir), "--num_inference_steps", "3", "--res_path", str(tmp_path / "r"), "--target", "stripes",
            "--base_prompts", base, "--target_prompts", target, "--skill_ratio", "0.1", "--fill", "shuffle"]
    run_script("save_union_over_time", [*argv, "--fill_scale", "0.5"])
    (path,) = (tmp_path / "r").glob("tiny-sd/stripes/pruned/*_shuffle0.5/prune_mask.safetensors")
    assert load_prune_mask(path)[1]["fill_scale"] == 0.5
    with pytest.raises(SystemExit) as exit_info:
        run_script("save_union_over_time", [*argv, "--fill_scale", "0"])
    assert exit_info.value.code == 2 and "--fill_scale must lie in (0, 1]" in capsys.readouterr().err
