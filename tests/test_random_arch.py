"""utils.random_arch: the published shapes of SD 1.5, SDXL, SD3.5-medium, PixArt-Sigma and FLUX.1-dev with random
weights. Everything here is built on the meta device (no memory, no download): real-shape models are several GB
to 48 GB, so no real weights are allocated on the CPU; the meta forward passes still check that each
pipeline's prompt encoders feed its denoiser and that the denoiser maps latents to latents."""
from __future__ import annotations

import re

import pytest
import torch
import transformers

from utils import random_arch
from utils.random_arch import ARCHITECTURES, build_random_denoiser, build_random_pipeline, denoiser_parameter_count

META = torch.device("meta")

# Denoiser parameters (buffers not counted), from building each published config on the meta device.
EXPECTED_PARAMETERS = {
    "sd15": 859_520_964,  # published: "860M UNet"
    "sdxl": 2_567_463_684,  # published: "2.6B UNet" (SDXL report)
    # published: "2.5 billion parameters"; the transformer's parameters are 2.24 B, and its 384 x 384 x 1536
    # position-embedding buffer (226,492,416 values, stored in the checkpoint) brings it to 2.47 B.
    "sd3.5-medium": 2_243_171_520,
    "pixart-sigma": 610_856_096,  # published: 0.6 B
    "flux-dev": 11_901_408_320,  # published: "12 billion parameter rectified flow transformer"
}
SD35_POSITION_BUFFER = 384 * 384 * 1536

# FFN output layers: (".ff.net.2", ".ff_context.net.2", Flux "single_transformer_blocks.N.proj_out").
EXPECTED_FFNS = {
    "sd15": (16, 0, 0),
    "sdxl": (70, 0, 0),  # transformer depths 2 x 1 + 2 x 2 ... : 4 + 20 down, 10 mid, 30 + 6 up
    "sd3.5-medium": (24, 23, 0),  # the last joint block is context_pre_only: no ff_context
    "pixart-sigma": (28, 0, 0),
    "flux-dev": (19, 19, 38),
}
# Scored weights: in x out of every FFN's second Linear; for a Flux single block only the MLP columns of
# proj_out (out_features x mlp_hidden_dim = 3072 x 12288; its other 3072 columns take the attention output).
EXPECTED_SCORED_WEIGHTS = {
    "sd15": 49_561_600,
    "sdxl": 409_600_000,
    "sd3.5-medium": 443_547_648,  # 47 x 6144 x 1536
    "pixart-sigma": 148_635_648,  # 28 x 4608 x 1152
    "flux-dev": 2_868_903_936,  # (19 + 19 + 38) x 12288 x 3072
}

CLIP_L = 123_060_480  # CLIPTextModel, ViT-L/14 text tower (published 123 M)
CLIP_L_PROJ = 123_650_304  # CLIPTextModelWithProjection (+ 768 x 768)
CLIP_BIGG_PROJ = 694_659_840  # OpenCLIP bigG text tower with projection (published 695 M)
T5_XXL_ENCODER = 4_762_310_656  # T5-v1.1-XXL encoder (published 4.7 B of the 11 B encoder-decoder)
VAE_4 = 83_653_863  # SD / SDXL VAE (published 84 M)
VAE_16 = 83_819_683  # SD3 / Flux 16-channel VAE without quant convs

EXPECTED_COMPONENTS = {
    "sd15": ("StableDiffusionPipeline", {
        "unet": ("UNet2DConditionModel", 859_520_964), "vae": ("AutoencoderKL", VAE_4),
        "text_encoder": ("CLIPTextModel", CLIP_L), "tokenizer": ("CLIPTokenizer", None), "scheduler": ("PNDMScheduler", None),
    }),
    "sdxl": ("StableDiffusionXLPipeline", {
        "unet": ("UNet2DConditionModel", 2_567_463_684), "vae": ("AutoencoderKL", VAE_4),
        "text_encoder": ("CLIPTextModel", CLIP_L), "text_encoder_2": ("CLIPTextModelWithProjection", CLIP_BIGG_PROJ),
        "tokenizer": ("CLIPTokenizer", None), "tokenizer_2": ("CLIPTokenizer", None), "scheduler": ("EulerDiscreteScheduler", None),
    }),
    "sd3.5-medium": ("StableDiffusion3Pipeline", {
        "transformer": ("SD3Transformer2DModel", 2_243_171_520), "vae": ("AutoencoderKL", VAE_16),
        "text_encoder": ("CLIPTextModelWithProjection", CLIP_L_PROJ), "text_encoder_2": ("CLIPTextModelWithProjection", CLIP_BIGG_PROJ),
        "text_encoder_3": ("T5EncoderModel", T5_XXL_ENCODER), "tokenizer": ("CLIPTokenizer", None), "tokenizer_2": ("CLIPTokenizer", None),
        "tokenizer_3": ("T5TokenizerFast", None), "scheduler": ("FlowMatchEulerDiscreteScheduler", None),
    }),
    "pixart-sigma": ("PixArtSigmaPipeline", {
        "transformer": ("PixArtTransformer2DModel", 610_856_096), "vae": ("AutoencoderKL", VAE_4),
        "text_encoder": ("T5EncoderModel", T5_XXL_ENCODER), "tokenizer": ("T5TokenizerFast", None),
        "scheduler": ("DPMSolverMultistepScheduler", None),
    }),
    "flux-dev": ("FluxPipeline", {
        "transformer": ("FluxTransformer2DModel", 11_901_408_320), "vae": ("AutoencoderKL", VAE_16),
        "text_encoder": ("CLIPTextModel", CLIP_L), "text_encoder_2": ("T5EncoderModel", T5_XXL_ENCODER),
        "tokenizer": ("CLIPTokenizer", None), "tokenizer_2": ("T5TokenizerFast", None), "scheduler": ("FlowMatchEulerDiscreteScheduler", None),
    }),
}

_PIPES: dict = {}


def meta_pipe(arch):
    """The bfloat16 meta pipeline of ``arch``, built once per session."""
    if arch not in _PIPES:
        _PIPES[arch] = build_random_pipeline(arch, "meta", torch.bfloat16)
    return _PIPES[arch]


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def ffn_layers(model):
    """(ff, ff_context, flux single proj_out) module lists of a denoiser."""
    modules = dict(model.named_modules())
    ff = [m for n, m in modules.items() if n.endswith(".ff.net.2")]
    ff_context = [m for n, m in modules.items() if n.endswith(".ff_context.net.2")]
    single = [(m, modules[n.rsplit(".", 1)[0]]) for n, m in modules.items() if re.fullmatch(r"single_transformer_blocks\.\d+\.proj_out", n)]
    return ff, ff_context, single


def test_architectures_are_the_five_names():
    assert ARCHITECTURES == ("sd15", "sdxl", "sd3.5-medium", "pixart-sigma", "flux-dev")
    assert set(random_arch.DENOISERS) == set(random_arch.PIPELINE_CLASSES) == set(random_arch.SCHEDULERS) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_denoiser_has_the_published_size_and_ffns(arch):
    model = build_random_denoiser(arch)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert _count(model) == EXPECTED_PARAMETERS[arch] == denoiser_parameter_count(arch)

    ff, ff_context, single = ffn_layers(model)
    assert (len(ff), len(ff_context), len(single)) == EXPECTED_FFNS[arch]
    scored = sum(m.in_features * m.out_features for m in ff + ff_context)
    scored += sum(proj_out.out_features * block.mlp_hidden_dim for proj_out, block in single)
    assert scored == EXPECTED_SCORED_WEIGHTS[arch]
    for proj_out, block in single:  # proj_out reads [attention output, MLP hidden]
        assert proj_out.in_features == proj_out.out_features + block.mlp_hidden_dim == 3072 + 12288


def test_denoiser_configs_hold_the_published_values():
    sd3 = build_random_denoiser("sd3.5-medium")
    assert sd3.config.dual_attention_layers == tuple(range(13)) and sd3.config.qk_norm == "rms_norm"
    assert sd3.pos_embed.pos_embed.numel() == SD35_POSITION_BUFFER
    assert sd3.transformer_blocks[-1].context_pre_only and sd3.transformer_blocks[-1].ff_context is None
    assert build_random_denoiser("pixart-sigma").use_additional_conditions is False
    flux = build_random_denoiser("flux-dev")
    assert flux.config.guidance_embeds and (len(flux.transformer_blocks), len(flux.single_transformer_blocks)) == (19, 38)


def test_denoiser_dtype_and_unknown_arch():
    model = build_random_denoiser("pixart-sigma", dtype=torch.float16)
    assert {p.dtype for p in model.parameters()} == {torch.float16}
    assert model.pos_embed.pos_embed.dtype == torch.float16  # a float32 buffer follows the dtype, as when loaded
    assert torch.get_default_dtype() == torch.float32
    with pytest.raises(ValueError, match="unknown architecture 'sd4'"):
        build_random_denoiser("sd4")
    with pytest.raises(ValueError, match="unknown architecture"):
        build_random_pipeline("flux", "meta", torch.float32)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_pipeline_classes_components_and_token_ids(arch):
    pipe = meta_pipe(arch)
    pipeline_class, components = EXPECTED_COMPONENTS[arch]
    assert type(pipe).__name__ == pipeline_class
    present = {name: value for name, value in pipe.components.items() if value is not None}
    assert set(present) == set(components)
    for name, (class_name, parameters) in components.items():
        component = present[name]
        if class_name == "T5TokenizerFast":  # in transformers 5 T5TokenizerFast is T5Tokenizer (tokenizers-backed)
            assert isinstance(component, transformers.T5TokenizerFast), name
        else:
            assert type(component).__name__ == class_name, name
        if parameters is not None:
            assert _count(component) == parameters, name
            assert {(p.device.type, p.dtype) for p in component.parameters()} == {("meta", torch.bfloat16)}, name
    assert pipe.vae.config.latent_channels == (16 if arch in ("sd3.5-medium", "flux-dev") else 4)
    if arch in ("sd3.5-medium", "flux-dev"):
        assert (pipe.vae.config.scaling_factor, pipe.vae.config.shift_factor) == ((1.5305, 0.0609) if arch == "sd3.5-medium" else (0.3611, 0.1159))

    # every tokenizer's ids (a prompt's, the special ones, the whole vocabulary) fit its encoder's vocabulary
    pairs = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"), ("tokenizer_3", "text_encoder_3")]
    for tokenizer_name, encoder_name in pairs:
        if tokenizer_name in present:
            tokenizer, encoder = present[tokenizer_name], present[encoder_name]
            ids = tokenizer("a photo of Van Gogh's cat, 1889!").input_ids
            assert max(ids + [len(tokenizer) - 1]) < encoder.config.vocab_size, tokenizer_name
    schedule = pipe.scheduler.betas if hasattr(pipe.scheduler, "betas") else pipe.scheduler.sigmas
    assert schedule.device.type == "cpu" and schedule.dtype == torch.float32  # not built on the device, in dtype


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_meta_forward_wires_prompt_to_denoiser(arch):
    """Shape propagation on the meta device: the prompt embeddings fit the denoiser, latents map to latents."""
    pipe, dtype = meta_pipe(arch), torch.bfloat16
    prompt = "a photo of a cat"
    t = torch.tensor([500.0], device=META, dtype=dtype)
    with torch.no_grad():
        if arch in ("sd15", "sdxl"):
            latents = torch.randn(1, 4, 8, 8, device=META, dtype=dtype)
            if arch == "sd15":
                embeds, _ = pipe.encode_prompt(prompt, META, 1, False)
                extra = {}
            else:
                embeds, _, pooled, _ = pipe.encode_prompt(prompt, device=META, num_images_per_prompt=1, do_classifier_free_guidance=False)
                extra = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": torch.zeros(1, 6, device=META, dtype=dtype)}}
            assert embeds.shape == (1, 77, 768 if arch == "sd15" else 2048)
            out = pipe.unet(latents, t, encoder_hidden_states=embeds, **extra).sample
        elif arch == "sd3.5-medium":
            latents = torch.randn(1, 16, 8, 8, device=META, dtype=dtype)
            embeds, _, pooled, _ = pipe.encode_prompt(prompt, None, None, device=META, do_classifier_free_guidance=False)
            assert embeds.shape == (1, 77 + 256, 4096) and pooled.shape == (1, 2048)
            out = pipe.transformer(hidden_states=latents, timestep=t, encoder_hidden_states=embeds, pooled_projections=pooled).sample
        elif arch == "pixart-sigma":
            # pipe.encode_prompt passes T5 an attention mask, which T5 inspects with .all() (no meta kernel)
            latents = torch.randn(1, 4, 8, 8, device=META, dtype=dtype)
            ids = pipe.tokenizer(prompt, padding="max_length", max_length=300, return_tensors="pt")
            embeds = pipe.text_encoder(ids.input_ids.to(META))[0]
            assert embeds.shape == (1, 300, 4096)
            out = pipe.transformer(
                latents, encoder_hidden_states=embeds, encoder_attention_mask=ids.attention_mask.to(META), timestep=t,
                added_cond_kwargs={"resolution": None, "aspect_ratio": None},
            ).sample
            latents = torch.cat([latents, latents], dim=1)  # learned sigma: 8 output channels
        else:  # flux-dev: 8x8 latents packed into 4x4 tokens of 64 channels
            latents = torch.randn(1, 16, 64, device=META, dtype=dtype)
            embeds, pooled, text_ids = pipe.encode_prompt(prompt, None, device=META)
            assert embeds.shape == (1, 512, 4096) and pooled.shape == (1, 768)
            image_ids = pipe._prepare_latent_image_ids(1, 4, 4, META, dtype)
            out = pipe.transformer(
                hidden_states=latents, timestep=t / 1000, guidance=torch.tensor([3.5], device=META, dtype=dtype),
                pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=image_ids,
            ).sample
    assert out.shape == latents.shape and out.device.type == "meta"


def test_text_layers_caps_every_text_encoder():
    pipe = build_random_pipeline("sd3.5-medium", "meta", torch.float32, text_layers=2)
    assert pipe.text_encoder.config.num_hidden_layers == pipe.text_encoder_2.config.num_hidden_layers == 2
    assert pipe.text_encoder_3.config.num_layers == 2 and len(pipe.text_encoder_3.encoder.block) == 2
    assert _count(pipe.text_encoder_3) < T5_XXL_ENCODER and _count(pipe.transformer) == EXPECTED_PARAMETERS["sd3.5-medium"]
    assert build_random_pipeline("pixart-sigma", "meta", torch.float32, text_layers=100).text_encoder.config.num_layers == 24
    with pytest.raises(ValueError, match="text_layers must be at least 1"):
        build_random_pipeline("sdxl", "meta", torch.float32, text_layers=0)


def test_float16_keeps_t5_wo_in_float32_like_from_pretrained():
    pipe = build_random_pipeline("flux-dev", "meta", torch.float16, text_layers=1)
    dtypes = {name.rsplit(".", 2)[-2]: p.dtype for name, p in pipe.text_encoder_2.named_parameters() if name.endswith(".weight")}
    assert dtypes["wo"] == torch.float32 and dtypes["wi_0"] == torch.float16
    assert {p.dtype for p in pipe.transformer.parameters()} == {torch.float16}
    assert torch.get_default_dtype() == torch.float32


def test_build_random_sd15_is_unchanged():
    old = random_arch.build_random_sd15(META, torch.float16)
    new = meta_pipe("sd15")
    assert type(old) is type(new)
    for name in ("unet", "vae", "text_encoder"):
        assert _count(getattr(old, name)) == _count(getattr(new, name))
    assert dict(old.scheduler.config) == dict(new.scheduler.config)
    with torch.device("meta"):
        assert dict(random_arch.sd15_unet().config) == dict(build_random_denoiser("sd15").config)


# A real (non-meta) generation is not run here: even SD 1.5's real shapes are 4.3 GB in float32 on the CPU.
