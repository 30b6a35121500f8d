"""Loading the edited models of baselines: each checkpoint format changes exactly its weights, bad input is refused."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from utils.baselines import METHODS, apply_partial_state_dict, load_edited_pipeline, load_state_dict_file
from utils.errors import UsageError
from utils.pruning import save_prune_mask

CPU = torch.device("cpu")
LDM_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


@pytest.fixture(scope="module")
def base(tiny_sd_dir):
    """The unedited tiny model's unet and text_encoder state dicts (cloned)."""
    pipe, _ = load_edited_pipeline("sd", None, str(tiny_sd_dir), CPU, torch.float32)
    return {name: {k: v.clone() for k, v in getattr(pipe, name).state_dict().items()} for name in ("unet", "text_encoder")}


def plus_one(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` whose name contains ``part``, with 1.0 added."""
    out = {k: v + 1.0 for k, v in state.items() if part in k}
    assert out, part
    return out


def assert_weights(pipe, base, changes: dict[str, dict[str, torch.Tensor]]) -> None:
    """Every tensor of unet/text_encoder equals ``changes`` where given, else the base model's."""
    for name in ("unet", "text_encoder"):
        expected = changes.get(name, {})
        for key, value in getattr(pipe, name).state_dict().items():
            assert torch.equal(value, expected.get(key, base[name][key])), (name, key)


def load(method, ckpt, model_dir):
    return load_edited_pipeline(method, None if ckpt is None else str(ckpt), str(model_dir), CPU, torch.float32)


def test_sd_is_the_base_model(tiny_sd_dir, base):
    pipe, info = load("sd", None, tiny_sd_dir)
    assert_weights(pipe, base, {})
    assert info == {"method": "sd", "ckpt": None, "model_id": str(tiny_sd_dir), "dtype": "float32", "changed": {}}


def test_uce_partial_safetensors(tiny_sd_dir, base, tmp_path):
    edits = plus_one(base["unet"], "attn2.to_k")
    save_file(edits, str(tmp_path / "uce.safetensors"))
    pipe, info = load("uce", tmp_path / "uce.safetensors", tiny_sd_dir)
    assert_weights(pipe, base, {"unet": edits})
    assert info["changed"] == {"unet": {"tensors": len(edits), "values": sum(v.numel() for v in edits.values())}}
    assert info["ckpt"] == str(tmp_path / "uce.safetensors")


def test_esd_full_pt_with_unet_prefix(tiny_sd_dir, base, tmp_path):
    edits = plus_one(base["unet"], "attn2.to_k")
    full = {f"unet.{k}": edits.get(k, v) for k, v in base["unet"].items()}
    torch.save(full, tmp_path / "esd.pt")
    pipe, info = load("esd", tmp_path / "esd.pt", tiny_sd_dir)
    assert_weights(pipe, base, {"unet": edits})
    assert info["changed"]["unet"]["tensors"] == len(base["unet"])


def test_values_are_cast_to_the_pipeline_dtype(tiny_sd_dir, base, tmp_path):
    edits = {k: v.half() for k, v in plus_one(base["unet"], "attn2.to_v").items()}
    save_file(edits, str(tmp_path / "half.safetensors"))
    pipe, _ = load("uce", tmp_path / "half.safetensors", tiny_sd_dir)
    assert_weights(pipe, base, {"unet": {k: v.float() for k, v in edits.items()}})


def test_concept_ablation_delta_with_unet_and_text_encoder(tiny_sd_dir, base, tmp_path):
    unet_edits = plus_one(base["unet"], "attn2.to_v")
    text_edits = plus_one(base["text_encoder"], "mlp.fc2")
    legacy_names = {f"text_model.{k}": v for k, v in text_edits.items()}  # as transformers 4 saved them
    torch.save({"unet": unet_edits, "text_encoder": legacy_names, "modifier_token": {}}, tmp_path / "delta.bin")
    pipe, info = load("concept-ablation", tmp_path / "delta.bin", tiny_sd_dir)
    assert_weights(pipe, base, {"unet": unet_edits, "text_encoder": text_edits})
    assert info["changed"]["unet"]["tensors"] == len(unet_edits)
    assert info["changed"]["text_encoder"]["tensors"] == len(text_edits)


def _edited_unet(tiny_sd_dir):
    """The tiny UNet with 1.0 added to its attn2.to_k weights, and those edits."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(Path(tiny_sd_dir) / "unet"))
    edits = plus_one(unet.state_dict(), "attn2.to_k")
    apply_partial_state_dict(unet, edits, "unet")
    return unet, edits


def test_fmn_pipeline_folder(tiny_sd_dir, base, tmp_path):
    folder = tmp_path / "fmn-pipe"
    shutil.copytree(tiny_sd_dir, folder)
    unet, edits = _edited_unet(tiny_sd_dir)
    shutil.rmtree(folder / "unet")
    unet.save_pretrained(str(folder / "unet"))
    pipe, info = load("fmn", folder, tiny_sd_dir)
    assert_weights(pipe, base, {"unet": edits})
    assert info["source"] == "pipeline folder" and info["model_id"] == str(folder)
    assert info["base_model_id"] == str(tiny_sd_dir)


def test_fmn_unet_folder(tiny_sd_dir, base, tmp_path):
    unet, edits = _edited_unet(tiny_sd_dir)
    unet.save_pretrained(str(tmp_path / "fmn-unet"))
    pipe, info = load("fmn", tmp_path / "fmn-unet", tiny_sd_dir)
    assert_weights(pipe, base, {"unet": edits})
    assert info["source"] == "unet folder" and info["changed"]["unet"]["tensors"] == len(base["unet"])


def _prune_mask(tmp_path, base, tiny_sd_dir, model_id):
    """A prune mask (made for ``model_id``) zeroing every 7th weight of each ff.net.2; returns (path, expected unet edits, count)."""
    from diffusers import UNet2DConditionModel

    keys = [k for k in base["unet"] if k.endswith("ff.net.2.weight")]
    masks = {}
    for k in keys:
        m = torch.zeros(base["unet"][k].numel(), dtype=torch.bool)
        m[::7] = True
        masks[k.removesuffix(".weight")] = m.view_as(base["unet"][k])
    unet = UNet2DConditionModel.from_pretrained(str(Path(tiny_sd_dir) / "unet"))
    path = tmp_path / "prune_mask.safetensors"
    save_prune_mask(path, masks, unet, {"model_id": str(model_id), "component": "unet"})
    edits = {f"{layer}.weight": base["unet"][f"{layer}.weight"].masked_fill(m, 0) for layer, m in masks.items()}
    return path, edits, sum(int(m.sum()) for m in masks.values())


def test_concept_prune_mask(tiny_sd_dir, base, tmp_path):
    path, edits, count = _prune_mask(tmp_path, base, tiny_sd_dir, tiny_sd_dir)
    pipe, info = load("concept-prune", path, tiny_sd_dir)
    assert_weights(pipe, base, {"unet": edits})
    assert info["changed"]["unet"]["pruned_weights"] == count
    assert info["mask_model_id"] == str(tiny_sd_dir)


def test_concept_prune_warns_about_another_model(tiny_sd_dir, base, tmp_path, caplog):
    path, _, _ = _prune_mask(tmp_path, base, tiny_sd_dir, "CompVis/stable-diffusion-v1-4")
    logger = logging.getLogger("utils.baselines")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="utils.baselines"):
            load("concept-prune", path, tiny_sd_dir)
    finally:
        logger.removeHandler(caplog.handler)
    assert any("CompVis/stable-diffusion-v1-4" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def unet(tiny_sd_dir):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(str(Path(tiny_sd_dir) / "unet"))


def test_unknown_key_changes_nothing(unet):
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    good = plus_one(before, "attn2.to_k")
    with pytest.raises(UsageError, match="down_blocks.0.bogus.weight"):
        apply_partial_state_dict(unet, {**good, "down_blocks.0.bogus.weight": torch.zeros(1)}, "unet")
    assert all(torch.equal(v, before[k]) for k, v in unet.state_dict().items())


def test_wrong_shape(unet):
    key = next(k for k in unet.state_dict() if "attn2.to_k" in k)
    with pytest.raises(UsageError, match="shape"):
        apply_partial_state_dict(unet, {key: torch.zeros(3, 3)}, "unet")


def test_ldm_named_keys(unet):
    with pytest.raises(UsageError, match="convert the checkpoint to diffusers format"):
        apply_partial_state_dict(unet, {LDM_KEY: torch.zeros(3)}, "unet")


def test_unknown_key_through_the_loader(tiny_sd_dir, tmp_path):
    save_file({"not.a.key": torch.zeros(2)}, str(tmp_path / "uce.safetensors"))
    with pytest.raises(UsageError, match="not.a.key"):
        load("uce", tmp_path / "uce.safetensors", tiny_sd_dir)


def test_missing_file(tiny_sd_dir, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load("esd", tmp_path / "nope.pt", tiny_sd_dir)
    with pytest.raises(UsageError, match="does not exist"):
        load_state_dict_file(tmp_path / "nope.safetensors")
    with pytest.raises(UsageError, match="does not exist"):
        load("fmn", tmp_path / "nope", tiny_sd_dir)


def test_unknown_method_lists_methods(tiny_sd_dir):
    with pytest.raises(UsageError, match="concept-ablation") as err:
        load("rome", None, tiny_sd_dir)
    assert all(name in str(err.value) for name in METHODS)


def test_checkpoint_required_or_refused(tiny_sd_dir, tmp_path):
    with pytest.raises(UsageError, match="--ckpt"):
        load("uce", None, tiny_sd_dir)
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(UsageError, match="takes no checkpoint"):
        load("sd", tmp_path / "x.pt", tiny_sd_dir)


def test_delta_with_unknown_or_unsupported_part(tiny_sd_dir, base, tmp_path):
    torch.save({"unet": plus_one(base["unet"], "attn2.to_k"), "vae": {}}, tmp_path / "delta.bin")
    with pytest.raises(UsageError, match="vae"):
        load("concept-ablation", tmp_path / "delta.bin", tiny_sd_dir)
    torch.save({"unet": {}, "modifier_token": {"<new1>": torch.zeros(32)}}, tmp_path / "delta2.bin")
    with pytest.raises(UsageError, match="modifier_token .*not supported"):
        load("concept-ablation", tmp_path / "delta2.bin", tiny_sd_dir)


def test_unknown_suffix_or_unreadable_file(tmp_path):
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(UsageError, match="suffix"):
        load_state_dict_file(tmp_path / "w.ckpt")
    for name in ("w.pt", "w.safetensors"):
        (tmp_path / name).write_bytes(b"garbage")
        with pytest.raises(UsageError, match="check the file"):
            load_state_dict_file(tmp_path / name)


def _ran(path):
    """Would be called by unpickling the object below: it writes a file."""
    Path(path).write_text("code ran")
    return {}


class Payload:
    """A pickled object whose unpickling would run ``_ran``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_ran, (str(self.path),))


def test_pickled_code_is_refused_not_run(tiny_sd_dir, tmp_path):
    marker = tmp_path / "marker.txt"
    torch.save({"weight": torch.zeros(1), "evil": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UsageError, match="weights_only"):
        load_state_dict_file(tmp_path / "evil.pt")
    torch.save(Payload(marker), tmp_path / "delta.bin")
    with pytest.raises(UsageError, match="weights_only"):
        load("concept-ablation", tmp_path / "delta.bin", tiny_sd_dir)
    assert not marker.exists()


# ---------------------------------------------------------------- checking before loading (issue 21, item 5)


def _fmn_unet_of_another_shape(tmp_path):
    """A UNet folder whose cross-attention width differs from the tiny model's."""
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(str(tmp_path / "model" / "unet"))
    unet = UNet2DConditionModel.from_config({**config, "cross_attention_dim": config["cross_attention_dim"] * 2})
    unet.save_pretrained(str(tmp_path / "fmn-wide"))
    return tmp_path / "fmn-wide"


def test_the_check_before_loading_accepts_what_the_loader_accepts(tiny_sd_dir, base, tmp_path):
    from utils.baselines import check_edit, check_edit_fits

    save_file(plus_one(base["unet"], "attn2.to_k"), str(tmp_path / "uce.safetensors"))
    torch.save({f"unet.{k}": v for k, v in base["unet"].items()}, tmp_path / "esd.pt")
    text = {f"text_model.{k}": v for k, v in plus_one(base["text_encoder"], "mlp.fc2").items()}
    torch.save({"unet": plus_one(base["unet"], "attn2.to_v"), "text_encoder": text}, tmp_path / "delta.bin")
    unet, _ = _edited_unet(tiny_sd_dir)
    unet.save_pretrained(str(tmp_path / "fmn-unet"))
    mask, _, _ = _prune_mask(tmp_path, base, tiny_sd_dir, tiny_sd_dir)
    for method, ckpt in [("sd", None), ("uce", "uce.safetensors"), ("esd", "esd.pt"), ("concept-ablation", "delta.bin"), ("fmn", "fmn-unet"), ("concept-prune", mask)]:
        check = check_edit(method, None if ckpt is None else str(tmp_path / ckpt))
        check_edit_fits(check, str(tiny_sd_dir))
        assert check.method == method and (method == "sd" or check.shapes)


def test_the_check_before_loading_refuses_what_the_loader_refuses(tiny_sd_dir, base, tmp_path):
    from utils.baselines import check_edit, check_edit_fits

    shutil.copytree(tiny_sd_dir, tmp_path / "model")
    text_key = next(k for k in base["text_encoder"] if k.endswith("mlp.fc2.weight"))
    torch.save({"text_encoder": {text_key: torch.zeros(3, 3)}}, tmp_path / "delta.bin")
    save_file({"no.such.layer": torch.zeros(2)}, str(tmp_path / "uce.safetensors"))
    whole = tmp_path / "whole.safetensors"
    save_file(base["unet"], str(whole))
    (tmp_path / "cut.safetensors").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    cases = [
        ("concept-ablation", tmp_path / "delta.bin", r"has shape \(3, 3\)"),
        ("uce", tmp_path / "uce.safetensors", "does not exist in the unet"),
        ("esd", tmp_path / "cut.safetensors", "is not a readable safetensors file"),
        ("fmn", _fmn_unet_of_another_shape(tmp_path), "use a checkpoint made for this model"),
    ]
    for method, ckpt, message in cases:
        with pytest.raises(UsageError, match=message):
            check_edit_fits(check_edit(method, str(ckpt)), str(tiny_sd_dir))
        with pytest.raises(UsageError, match=message):  # the loader says the same
            load(method, ckpt, tiny_sd_dir)
    with pytest.raises(UsageError, match="has no text_encoder component"):
        (tmp_path / "model" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
        check_edit_fits(check_edit("concept-ablation", str(tmp_path / "delta.bin")), str(tmp_path / "model"))
