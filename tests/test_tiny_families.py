"""utils.tiny_families: every family builds offline, saves, loads back into its class, generates at the tiny size,
batches like one-at-a-time, names its FFN modules as the real models do, and is seeded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.tiny_families import (
    CALL_KWARGS,
    FAMILIES,
    PIPELINE_CLASSES,
    build_tiny_family,
    save_tiny_family,
    t5_tokenizer,
)

PROMPTS = ["a photo of a cat", "a dog in the style of stripes"]
GUIDANCE = 5.0  # > 1: classifier-free guidance on (Flux embeds it instead: FLUX.1-dev has no unconditional pass)
TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


def _components(pipe) -> dict:
    """Every torch module of a pipeline, by component name."""
    return {name: module for name, module in pipe.components.items() if isinstance(module, torch.nn.Module)}


def _generate(pipe, family, prompts, seeds, output_type):
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe(
        prompt=prompts,
        generator=generators,
        num_inference_steps=2,
        guidance_scale=GUIDANCE,
        output_type=output_type,
        **CALL_KWARGS[family],
    ).images


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run fastest on one thread


@pytest.fixture(scope="module", params=FAMILIES)
def saved(request, tmp_path_factory):
    """(family, folder) of each family saved once with seed 0."""
    family = request.param
    return family, save_tiny_family(tmp_path_factory.mktemp("families") / family, family, seed=0)


@pytest.fixture(scope="module")
def loaded(saved):
    """(family, pipeline) loaded back from the saved folder through DiffusionPipeline, offline."""
    from diffusers import DiffusionPipeline

    family, folder = saved
    pipe = DiffusionPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return family, pipe


def test_saved_folder_loads_into_its_class_with_the_same_weights(saved, loaded):
    family, folder = saved
    _, pipe = loaded
    assert (folder / "model_index.json").is_file()
    assert type(pipe).__name__ == PIPELINE_CLASSES[family]
    assert pipe.dtype == torch.float32 and pipe.device.type == "cpu"
    assert getattr(pipe, "safety_checker", None) is None
    built = _components(build_tiny_family(family, seed=0))
    got = _components(pipe)
    assert sorted(got) == sorted(built)
    for name, module in built.items():
        want, have = module.state_dict(), got[name].state_dict()
        assert sorted(want) == sorted(have), name
        assert all(torch.equal(want[k], have[k]) for k in want), name


def test_generates_two_tiny_images(loaded):
    family, pipe = loaded
    images = _generate(pipe, family, PROMPTS, [0, 1], "pil")
    assert len(images) == 2
    for image in images:
        assert image.size == (32, 32)
        pixels = np.asarray(image)
        assert (pixels != pixels.reshape(-1, pixels.shape[-1])[0]).any(), "an image of one colour"


def test_batch_equals_one_at_a_time(loaded):
    family, pipe = loaded
    batch = _generate(pipe, family, PROMPTS, [0, 1], "latent")
    alone = torch.cat([_generate(pipe, family, [p], [s], "latent") for p, s in zip(PROMPTS, [0, 1])])
    assert batch.shape == alone.shape and batch.shape[0] == 2
    # atol 1e-4 at the latents' scale. PixArt's latents reach ~850 (DPMSolver++ at t=999 divides the random
    # transformer's noise estimate by sqrt(alpha_bar) ~ 0.0064), so float rounding of the batched matmuls
    # (~5e-7) grows to ~4e-4 there; every other family meets a plain atol of 1e-4.
    scale = max(1.0, float(alone.abs().max()))
    assert torch.allclose(batch, alone, atol=1e-4 * scale, rtol=0), float((batch - alone).abs().max())


def test_ffn_modules_have_the_real_names(loaded):
    family, pipe = loaded
    denoiser = "unet" if family in ("sd2", "sdxl") else "transformer"
    other = "transformer" if denoiser == "unet" else "unet"
    assert isinstance(getattr(pipe, denoiser), torch.nn.Module)
    assert getattr(pipe, other, None) is None
    encoders = [getattr(pipe, n) for n in TEXT_ENCODERS if getattr(pipe, n, None) is not None]
    assert encoders
    for encoder in encoders:
        names = dict(encoder.named_modules())
        if encoder.config.model_type.startswith("clip"):
            fc2 = [n for n in names if n.endswith("mlp.fc2")]
            assert len(fc2) == encoder.config.num_hidden_layers
            assert isinstance(names[fc2[0]], torch.nn.Linear)
        else:
            assert encoder.config.model_type == "t5" and encoder.config.is_gated_act
            wo = [n for n in names if n.endswith("DenseReluDense.wo")]
            assert len(wo) == encoder.config.num_layers
            assert isinstance(names[wo[0]], torch.nn.Linear)
    modules = dict(getattr(pipe, denoiser).named_modules())
    ffns = [n for n in modules if n.endswith(".ff") or n.endswith(".ff_context")]
    if family == "sdxl":
        assert "down_blocks.1.attentions.0.transformer_blocks.1.ff" in modules  # 2 transformer layers in a block
    if family == "sd3":
        last = len(pipe.transformer.transformer_blocks) - 1
        assert f"transformer_blocks.{last}.ff" in modules
        assert f"transformer_blocks.{last}.ff_context" not in modules  # context_pre_only
        assert "transformer_blocks.0.attn2" in modules  # dual attention (SD 3.5)
    if family == "flux":
        assert len(pipe.transformer.transformer_blocks) == 2 and len(pipe.transformer.single_transformer_blocks) == 2
        assert "single_transformer_blocks.0.proj_mlp" in modules
        assert pipe.transformer.config.guidance_embeds
    assert ffns, "the denoiser has no FeedForward"


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_weights(family):
    first, second = _components(build_tiny_family(family, seed=3)), _components(build_tiny_family(family, seed=3))
    for name, module in first.items():
        a, b = module.state_dict(), second[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    other = build_tiny_family(family, seed=4)
    denoiser = "unet" if family in ("sd2", "sdxl") else "transformer"
    a, b = first[denoiser].state_dict(), getattr(other, denoiser).state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_t5_tokenizer_round_trip(tmp_path):
    from transformers import T5TokenizerFast

    tokenizer = t5_tokenizer()
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    tokenizer.save_pretrained(str(tmp_path / "t5"))
    again = T5TokenizerFast.from_pretrained(str(tmp_path / "t5"))
    ids = again("a photo of a cat").input_ids
    assert ids == tokenizer("a photo of a cat").input_ids
    assert ids[-1] == again.eos_token_id and again.unk_token_id not in ids
    assert again.decode(ids, skip_special_tokens=True) == "a photo of a cat"
    odd = again("Ünïcode ☃ stripes, 42!").input_ids
    assert again.unk_token_id in odd and odd[-1] == again.eos_token_id
    padded = again(PROMPTS, padding="max_length", max_length=16, truncation=True).input_ids
    assert all(len(row) == 16 and row[-1] == again.pad_token_id for row in padded)


def test_t5_tokenizer_in_work_dir_is_kept(tmp_path):
    tokenizer = t5_tokenizer(tmp_path)
    assert (tmp_path / "t5-tokenizer" / "tokenizer.json").is_file()
    assert tokenizer("a dog").input_ids[-1] == tokenizer.eos_token_id


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown family"):
        build_tiny_family("sd4")
