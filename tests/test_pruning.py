"""Prune masks: zeroing exactly the masked weights, safetensors round trip, pruned pipeline, export."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from neuron_receivers.hook_variants import HOOK_VARIANTS, select_modules
from utils.errors import UsageError
from utils.model_loading import load_pipeline
from utils.pruning import apply_prune_mask, export_component, load_prune_mask, load_pruned_pipeline, save_prune_mask


def random_masks(unet, density=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    modules = select_modules(unet, HOOK_VARIANTS["unet"])
    return {name: torch.rand(m.weight.shape, generator=gen) < density for name, m in modules.items()}


def test_pruning_zeroes_exactly_the_masked_weights(tiny_sd_dir):
    pipe = load_pipeline(str(tiny_sd_dir), torch.device("cpu"), torch.float32)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    masks = random_masks(pipe.unet)
    zeroed = apply_prune_mask(pipe, {f"{k}.weight": m for k, m in masks.items()})
    assert zeroed == sum(int(m.sum()) for m in masks.values())
    after = pipe.unet.state_dict()
    for key, value in after.items():
        layer = key.removesuffix(".weight")
        if key.endswith(".weight") and layer in masks:
            mask = masks[layer]
            assert (value[mask] == 0).all()
            assert torch.equal(value[~mask], before[key][~mask])
        else:
            assert torch.equal(value, before[key]), key
    text_before = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    assert all(torch.equal(v, text_before[k]) for k, v in pipe.text_encoder.state_dict().items())


def test_mask_file_round_trip_and_pruned_pipeline(tiny_sd_dir, tmp_path):
    pipe = load_pipeline(str(tiny_sd_dir), torch.device("cpu"), torch.float32)
    masks = random_masks(pipe.unet, seed=3)
    path = tmp_path / "prune_mask.safetensors"
    meta = save_prune_mask(path, masks, pipe.unet, {"model_id": str(tiny_sd_dir), "component": "unet", "skill_ratio": 0.01})
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
        raw = handle.metadata()
        assert all(handle.get_tensor(k).dtype == torch.bool for k in keys)
    assert keys == {f"{k}.weight" for k in masks}
    assert "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight" in keys
    assert json.loads(raw["model_id"]) == str(tiny_sd_dir) and json.loads(raw["skill_ratio"]) == 0.01
    assert meta["num_pruned"] == sum(int(m.sum()) for m in masks.values())
    loaded, loaded_meta = load_prune_mask(path)
    assert all(torch.equal(loaded[f"{k}.weight"], m) for k, m in masks.items())
    assert loaded_meta["component"] == "unet"

    pruned = load_pruned_pipeline(path)  # base model from the metadata
    manual = load_pipeline(str(tiny_sd_dir), torch.device("cpu"), torch.float32)
    apply_prune_mask(manual, path)
    for (k, a), b in zip(pruned.unet.state_dict().items(), manual.unet.state_dict().values()):
        assert torch.equal(a, b), k
    out = export_component(pruned, "unet", tmp_path / "unet")
    from diffusers import UNet2DConditionModel

    exported = UNet2DConditionModel.from_pretrained(str(out))
    for (k, a), b in zip(exported.state_dict().items(), pruned.unet.state_dict().values()):
        assert torch.equal(a, b), k
    g = torch.Generator().manual_seed(0)
    image_a = pruned(["a cat"], num_inference_steps=2, generator=g, output_type="np").images
    g = torch.Generator().manual_seed(0)
    image_b = pipe(["a cat"], num_inference_steps=2, generator=g, output_type="np").images
    assert not (image_a == image_b).all()  # pruning changes what the model draws


def test_mask_for_another_model_is_refused(tiny_sd_dir, mini_sd_dir, tmp_path):
    pipe = load_pipeline(str(tiny_sd_dir), torch.device("cpu"), torch.float32)
    path = tmp_path / "m.safetensors"
    save_prune_mask(path, random_masks(pipe.unet), pipe.unet, {"model_id": str(tiny_sd_dir), "component": "unet"})
    mini = load_pipeline(str(mini_sd_dir), torch.device("cpu"), torch.float32)
    with pytest.raises(UsageError, match="model the mask was made for"):
        apply_prune_mask(mini, path)
    with pytest.raises(UsageError, match="does not exist"):
        apply_prune_mask(mini, tmp_path / "missing.safetensors")


def test_masked_weights_zero_inside_the_block_and_restore_after_an_error():
    import pytest
    import torch

    from utils.pruning import masked_weights

    torch.manual_seed(0)
    modules = {"a": torch.nn.Linear(4, 3), "b": torch.nn.Linear(4, 3)}
    before = {k: m.weight.detach().clone() for k, m in modules.items()}
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1, 2] = mask[0, 0] = True
    with pytest.raises(RuntimeError):
        with masked_weights({k: m.weight.detach() for k, m in modules.items()}, {"a": mask}):
            assert torch.equal(modules["a"].weight, before["a"].masked_fill(mask, 0))
            assert torch.equal(modules["b"].weight, before["b"])  # layers without a mask are untouched
            raise RuntimeError("judge failed")
    assert all(torch.equal(modules[k].weight, before[k]) for k in modules)


def test_zero_masked_checks_every_mask_before_writing_and_resets_from_originals():
    from utils.pruning import restore_weights, saved_weights, zero_masked

    weights = {"a": torch.randn(3, 4), "b": torch.randn(2, 2)}
    before = saved_weights(weights)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 1] = mask[2, 3] = True
    for bad, message in ((torch.zeros(2, 2), "the mask of b is float32, not bool"),
                         (torch.zeros(2, 3, dtype=torch.bool), r"the mask of b has shape \(2, 3\), the model's is \(2, 2\)")):
        with pytest.raises(UsageError, match=message):
            zero_masked(weights, {"a": mask, "b": bad})
        assert all(torch.equal(weights[k], before[k]) for k in weights)  # nothing written, not even a's
    assert zero_masked(weights, {"a": mask}) == 2
    assert torch.equal(weights["a"], before["a"].masked_fill(mask, 0)) and torch.equal(weights["b"], before["b"])
    other = ~mask
    zero_masked(weights, {"a": other}, originals=before)  # replaces the first mask instead of adding to it
    assert torch.equal(weights["a"], before["a"].masked_fill(other, 0))
    restore_weights(weights, before)
    assert all(torch.equal(weights[k], before[k]) for k in weights)


def test_a_damaged_or_foreign_mask_file_is_one_sentence(tmp_path):
    from safetensors.torch import save_file

    from utils.storage import save_tensors

    mask = torch.zeros(4, 8, dtype=torch.bool)
    meta = {"format": "concept-prune prune mask v1", "component": "unet"}
    good = tmp_path / "good.safetensors"
    save_tensors(good, {"a.weight": mask}, meta)
    assert torch.equal(load_prune_mask(good)[0]["a.weight"], mask)
    cases = {"float": ({"a.weight": mask.float()}, "holds a.weight as float32, but a prune mask holds bool tensors"),
             "uint8": ({"a.weight": mask.to(torch.uint8)}, "holds a.weight as uint8")}
    for name, (tensors, message) in cases.items():
        save_tensors(tmp_path / f"{name}.safetensors", tensors, meta)
        with pytest.raises(UsageError, match=message):
            load_prune_mask(tmp_path / f"{name}.safetensors")
    save_file({"a.weight": mask}, str(tmp_path / "foreign.safetensors"))
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:-7])
    torch.save({"a.weight": mask}, tmp_path / "pickled.safetensors")
    for name, message in (("foreign", "is not a concept-prune prune mask"), ("truncated", "could not be read as a prune mask"),
                          ("pickled", "could not be read as a prune mask")):
        with pytest.raises(UsageError, match=message):
            load_prune_mask(tmp_path / f"{name}.safetensors")


def test_mask_metadata_holds_the_resolved_settings_not_the_config_tables(mini_sd_dir, tmp_path):
    from conftest import run_script
    from utils.config import REPO_ROOT

    shipped = (REPO_ROOT / "configs" / "wanda_config.yaml").read_text()
    kinds = "".join(f"  kind{i}: {{skill_ratio: 1.0e-02, timesteps: 10}}\n" for i in range(500))  # large, but within the cap
    (tmp_path / "c.yaml").write_text(shipped.replace("concept_defaults:\n", "concept_defaults:\n" + kinds))
    res = tmp_path / "r"
    run_script("save_union_over_time", ["--config", str(tmp_path / "c.yaml"), "--model_id", str(mini_sd_dir), "--num_inference_steps", "2",
                                        "--res_path", str(res), "--target", "Da Vinci", "--timesteps", "1"])
    path = res / "mini-sd" / "da_vinci" / "pruned" / "sr0.01_tau1_sel0" / "prune_mask.safetensors"
    _, meta = load_prune_mask(path)
    assert meta["skill_ratio"] == 0.01 and meta["timesteps"] == 1
    assert "concept_defaults" not in meta["config"] and "model_defaults" not in meta["config"]
    assert len(json.dumps(meta)) < 5_000  # the 500 entries would be 25 kB
    assert "kind7" not in (path.parent / "config.yaml").read_text()
