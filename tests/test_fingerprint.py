"""Stored norms are reused only for the same model byte for byte (utils.fingerprint) and only when the
file holds every layer in its shape (utils.norms_store)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import run_script
from utils.fingerprint import DigestCache, pipeline_content
from utils.storage import load_tensors, read_metadata, save_tensors


@pytest.fixture
def model_copy(mini_sd_dir, tmp_path):
    return shutil.copytree(mini_sd_dir, tmp_path / "mini-sd")


def run_wanda(model, res, capsys) -> str:
    """Step 1 of a one-pair custom concept ``parachute``; returns what it logged."""
    prompts = res.parent / "prompts"
    prompts.mkdir(exist_ok=True)
    (prompts / "base.txt").write_text("a room\n")
    (prompts / "target.txt").write_text("a parachute in a room\n")
    run_script("wanda", ["--model_id", str(model), "--num_inference_steps", "2", "--res_path", str(res), "--target", "parachute",
                         "--base_prompts", str(prompts / "base.txt"), "--target_prompts", str(prompts / "target.txt"), "--num_preview", "0"])
    return capsys.readouterr().err


def test_norms_are_recorded_again_when_any_component_changed(model_copy, tmp_path, capsys):
    res = tmp_path / "results"
    assert "no norms recorded yet" in run_wanda(model_copy, res, capsys)
    assert "stored norms match" in run_wanda(model_copy, res, capsys)
    # the text encoder's weights scaled: the UNet's files are untouched
    weights = model_copy / "text_encoder" / "model.safetensors"
    save_file({k: v * 1.5 for k, v in load_file(weights).items()}, weights)
    assert "different model_content.text_encoder" in run_wanda(model_copy, res, capsys)
    assert "stored norms match" in run_wanda(model_copy, res, capsys)
    # the scheduler's config edited (its class unchanged)
    config_file = model_copy / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config["beta_end"] = config["beta_end"] * 0.5
    config_file.write_text(json.dumps(config))
    assert "different model_content.scheduler" in run_wanda(model_copy, res, capsys)


def test_file_digests_are_cached_by_path_size_and_mtime(model_copy, tmp_path, monkeypatch):
    from utils.model_loading import load_pipeline

    pipe = load_pipeline(str(model_copy), torch.device("cpu"), torch.float32)
    first = pipeline_content(pipe, str(model_copy), tmp_path)
    assert set(first) == {"model_index", "unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    cache = json.loads((tmp_path / ".cache" / "file_digests.json").read_text())
    assert len(cache) == sum(1 for p in model_copy.rglob("*") if p.is_file())
    hashed = []
    original = DigestCache.digest

    def counting(self, file):
        before = len(self.entries)
        digest = original(self, file)
        hashed.extend([file] if len(self.entries) > before else [])
        return digest

    monkeypatch.setattr(DigestCache, "digest", counting)
    assert pipeline_content(pipe, str(model_copy), tmp_path) == first and hashed == []  # all from the cache
    # a model with no folder on disk is hashed from memory, and a change to its weights shows
    in_memory = pipeline_content(pipe, "no/such-model", None)
    with torch.no_grad():
        pipe.text_encoder.get_input_embeddings().weight.mul_(2)
    changed = pipeline_content(pipe, "no/such-model", None)
    assert changed["text_encoder"] != in_memory["text_encoder"] and changed["unet"] == in_memory["unet"]


def test_a_damaged_norms_file_is_recorded_again_not_half_used(model_copy, tmp_path, capsys):
    res = tmp_path / "results"
    run_wanda(model_copy, res, capsys)
    path = res / "mini-sd" / "parachute" / "activation_norms.safetensors"
    for damage in ("drop_layer", "wrong_shape", "layer_list"):
        tensors, meta = load_tensors(path)
        first, layers = meta["layers"][0], len(meta["layers"])
        if damage == "drop_layer":
            del tensors[first]
        elif damage == "wrong_shape":
            tensors[first] = tensors[first][:, :1]
        else:
            meta["layers"] = "everything"
        save_tensors(path, tensors, meta)
        err = run_wanda(model_copy, res, capsys)
        assert "recording activation norms" in err and "Traceback" not in err, damage
        assert len(load_tensors(path)[0]) == len(read_metadata(path)["layers"]) == layers


def test_hidden_files_and_folders_of_a_model_folder_are_not_the_model(model_copy, tmp_path):
    from utils.fingerprint import folder_digest

    cache = DigestCache(None)
    before = folder_digest(model_copy / "unet", cache)
    (model_copy / "unet" / ".cache" / "huggingface").mkdir(parents=True)  # as huggingface-cli download --local-dir leaves
    (model_copy / "unet" / ".cache" / "huggingface" / "download.metadata").write_text("etag 1")
    (model_copy / "unet" / ".DS_Store").write_text("x")
    assert folder_digest(model_copy / "unet", cache) == before
    (model_copy / "unet" / "config.json").write_text((model_copy / "unet" / "config.json").read_text() + " ")
    assert folder_digest(model_copy / "unet", cache) != before
