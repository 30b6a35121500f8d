"""Full-size diffusion architectures with random weights (no download), for speed and size benchmarks.

The layer shapes are the published ones, so the models cost exactly what the real ones cost; the weights
are random, so the images mean nothing. Tokenizers are our small offline ones (token ids stay in range).

Architectures (``ARCHITECTURES``), each with its denoiser, every text encoder, VAE and scheduler:

* ``"sd15"``: runwayml/stable-diffusion-v1-5 (UNet 860 M parameters, 16 FFNs; CLIP ViT-L/14 text; the SD VAE).
* ``"sdxl"``: stabilityai/stable-diffusion-xl-base-1.0 (UNet 2.567 B, 70 FFNs; CLIP ViT-L/14 + OpenCLIP bigG).
* ``"sd3.5-medium"``: stabilityai/stable-diffusion-3.5-medium (MMDiT 2.24 B parameters + a 0.23 B position
  buffer; 24 image-stream and 23 text-stream FFNs; CLIP-L + bigG + T5-v1.1-XXL; 16-channel VAE).
* ``"pixart-sigma"``: PixArt-alpha/PixArt-Sigma-XL-2-1024-MS (0.61 B, 28 FFNs; T5-v1.1-XXL; SDXL's VAE).
* ``"flux-dev"``: black-forest-labs/FLUX.1-dev (11.9 B; 19 double blocks with 2 FFNs each, 38 single blocks
  whose ``proj_out`` holds the MLP's output; CLIP-L + T5-v1.1-XXL; 16-channel VAE).

``build_random_denoiser(arch)`` on the meta device costs no memory (parameter counts, module names);
``build_random_pipeline(arch, device, dtype)`` builds everything directly on the device, in the dtype.

Where each config comes from: the denoiser/VAE/scheduler/text-encoder ``config.json`` files of the hub
repositories named above (cited per constant below), cross-checked against diffusers' conversion scripts
(huggingface/diffusers ``scripts/convert_sd3_to_diffusers.py``, ``scripts/convert_flux_to_diffusers.py``,
``scripts/convert_pixart_sigma_to_diffusers.py``) and against the published parameter totals.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

ARCHITECTURES = ("sd15", "sdxl", "sd3.5-medium", "pixart-sigma", "flux-dev")

# ---- denoisers ---------------------------------------------------------------------------------------

# runwayml/stable-diffusion-v1-5: unet/config.json (the other keys are diffusers' defaults).
SD15_UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)

# stabilityai/stable-diffusion-xl-base-1.0: unet/config.json. 2,567,463,684 parameters (the published 2.6 B).
SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    act_fn="silu",
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    attention_head_dim=(5, 10, 20),
    block_out_channels=(320, 640, 1280),
    cross_attention_dim=2048,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    layers_per_block=2,
    mid_block_type="UNetMidBlock2DCrossAttn",
    norm_eps=1e-05,
    norm_num_groups=32,
    projection_class_embeddings_input_dim=2816,
    transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True,
)

# stabilityai/stable-diffusion-3.5-medium: transformer/config.json (SD3Transformer2DModel). diffusers'
# scripts/convert_sd3_to_diffusers.py: "(0, 1, ..., 12) for sd3.5" dual-attention layers, "sd3.5 2b use
# pos_embed_max_size=384", qk norm "rms_norm", heads = layers. 2,243,171,520 parameters; with the
# 384 x 384 x 1536 position-embedding buffer (226,492,416, stored in the checkpoint) 2.47 B, the published "2.5 B".
SD35_MEDIUM_TRANSFORMER = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    out_channels=16,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    pos_embed_max_size=384,
    dual_attention_layers=tuple(range(13)),
    qk_norm="rms_norm",
)

# PixArt-alpha/PixArt-Sigma-XL-2-1024-MS: transformer/config.json; the same XL/2 arguments as diffusers'
# scripts/convert_pixart_sigma_to_diffusers.py (1024 px: sample_size 128, interpolation_scale 2, no
# micro-conditions). use_additional_conditions must be given: diffusers turns it on for sample_size 128.
# 610,856,096 parameters (the published 0.6 B).
PIXART_SIGMA_TRANSFORMER = dict(
    sample_size=128,
    num_layers=28,
    num_attention_heads=16,
    attention_head_dim=72,
    in_channels=4,
    out_channels=8,
    patch_size=2,
    attention_bias=True,
    cross_attention_dim=1152,
    activation_fn="gelu-approximate",
    num_embeds_ada_norm=1000,
    norm_type="ada_norm_single",
    norm_elementwise_affine=False,
    norm_eps=1e-06,
    caption_channels=4096,
    interpolation_scale=2,
    use_additional_conditions=False,
)

# black-forest-labs/FLUX.1-dev: transformer/config.json (FluxTransformer2DModel); diffusers'
# scripts/convert_flux_to_diffusers.py: 19 double / 38 single blocks, inner dim 3072 (24 x 128), mlp_ratio 4.
# 11,901,408,320 parameters (the published 12 B).
FLUX_DEV_TRANSFORMER = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)

# ---- text encoders -----------------------------------------------------------------------------------

# openai/clip-vit-large-patch14 text tower (SD 1.5 text_encoder/config.json, SDXL text_encoder/config.json,
# SD3 text_encoder/config.json, FLUX.1-dev text_encoder/config.json). 123,060,480 parameters
# (CLIPTextModel); 123,650,304 with the 768 x 768 text projection (CLIPTextModelWithProjection, SD3).
VIT_L14_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
VIT_L14_PROJECTION_DIM = 768

# laion/CLIP-ViT-bigG-14-laion2B-39B-b160k text tower with projection (SDXL and SD3 text_encoder_2/config.json).
# 694,659,840 parameters (CLIPTextModelWithProjection).
BIGG14_TEXT = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)

# google/t5-v1_1-xxl encoder (SD3 text_encoder_3, PixArt-Sigma text_encoder, FLUX.1-dev text_encoder_2
# config.json). 4,762,310,656 parameters (T5EncoderModel).
T5_XXL_ENCODER = dict(
    vocab_size=32128,
    d_model=4096,
    d_ff=10240,
    d_kv=64,
    num_layers=24,
    num_heads=64,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    layer_norm_epsilon=1e-06,
    dropout_rate=0.1,
    tie_word_embeddings=False,
)

# ---- VAEs --------------------------------------------------------------------------------------------

# runwayml/stable-diffusion-v1-5: vae/config.json (scaling_factor: diffusers' default 0.18215).
SD_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=512,
)
# stabilityai/stable-diffusion-xl-base-1.0: vae/config.json (also PixArt-Sigma's VAE: PixArt-alpha/
# pixart_sigma_sdxlvae_T5_diffusers vae/, named by scripts/convert_pixart_sigma_to_diffusers.py).
SDXL_VAE = dict(SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
# stabilityai/stable-diffusion-3.5-medium: vae/config.json; the same values in scripts/convert_sd3_to_diffusers.py.
SD3_VAE = dict(SD_VAE, sample_size=1024, latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False)
# black-forest-labs/FLUX.1-dev: vae/config.json.
FLUX_VAE = dict(SD_VAE, sample_size=1024, latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)

# ---- schedulers (each repository's scheduler/scheduler_config.json) ------------------------------------

SD15_SCHEDULER = ("PNDMScheduler", dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1))
SDXL_SCHEDULER = (
    "EulerDiscreteScheduler",
    dict(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, prediction_type="epsilon",
        steps_offset=1, timestep_spacing="leading", interpolation_type="linear", use_karras_sigmas=False,
    ),
)
SD3_SCHEDULER = ("FlowMatchEulerDiscreteScheduler", dict(num_train_timesteps=1000, shift=3.0))
# DPMSolverMultistepScheduler's defaults (linear betas 1e-4..0.02, dpmsolver++, order 2), as the conversion script builds it.
PIXART_SIGMA_SCHEDULER = ("DPMSolverMultistepScheduler", dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", num_train_timesteps=1000, algorithm_type="dpmsolver++", solver_order=2))
FLUX_SCHEDULER = (
    "FlowMatchEulerDiscreteScheduler",
    dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
)

SCHEDULERS = {
    "sd15": SD15_SCHEDULER,
    "sdxl": SDXL_SCHEDULER,
    "sd3.5-medium": SD3_SCHEDULER,
    "pixart-sigma": PIXART_SIGMA_SCHEDULER,
    "flux-dev": FLUX_SCHEDULER,
}

# arch -> (denoiser class, its config)
DENOISERS = {
    "sd15": ("UNet2DConditionModel", SD15_UNET),
    "sdxl": ("UNet2DConditionModel", SDXL_UNET),
    "sd3.5-medium": ("SD3Transformer2DModel", SD35_MEDIUM_TRANSFORMER),
    "pixart-sigma": ("PixArtTransformer2DModel", PIXART_SIGMA_TRANSFORMER),
    "flux-dev": ("FluxTransformer2DModel", FLUX_DEV_TRANSFORMER),
}

# arch -> the diffusers pipeline class build_random_pipeline returns
PIPELINE_CLASSES = {
    "sd15": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3.5-medium": "StableDiffusion3Pipeline",
    "pixart-sigma": "PixArtSigmaPipeline",
    "flux-dev": "FluxPipeline",
}


def _check(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


@contextmanager
def _building(device, dtype: torch.dtype):
    """Create tensors on ``device`` in floating ``dtype`` (no float32 copy first: a 12 B model in bfloat16
    never takes float32's memory); the default dtype is restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _as_loaded(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Give ``module`` the dtypes ``from_pretrained(torch_dtype=dtype)`` would: floating buffers made in float32
    on purpose (SD3's and PixArt's position tables) follow ``dtype``, and the submodules the class keeps in
    float32 (``_keep_in_fp32_modules`` under float16, e.g. T5's ``wo``; ``_keep_in_fp32_modules_strict`` under
    float16 and bfloat16) go back to float32. Plain ``nn.Module.to`` (in place): diffusers' ``ModelMixin.to``
    would warn about the casting that is meant here. Returns ``module``."""
    torch.nn.Module.to(module, dtype=dtype)
    keep = set(getattr(module, "_keep_in_fp32_modules_strict", None) or ()) if dtype in (torch.float16, torch.bfloat16) else set()
    if dtype == torch.float16:
        keep |= set(getattr(module, "_keep_in_fp32_modules", None) or ())
    if keep:
        for name, child in module.named_modules():
            if keep & set(name.split(".")):
                torch.nn.Module.to(child, dtype=torch.float32)
    return module


def sd15_unet():
    """SD 1.5's UNet2DConditionModel with random weights (its published config)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**SD15_UNET)


def build_random_denoiser(arch: str, device="meta", dtype: torch.dtype = torch.float32):
    """The denoiser alone (UNet2DConditionModel or the family's transformer) of ``arch``'s published shape.

    arch: one of ``ARCHITECTURES``. device: where the parameters are created (``"meta"``, the default, costs
    no memory: shapes, names and counts only). dtype: a floating dtype. Returns the model (random weights,
    not in eval mode). Raises ValueError for an unknown arch.
    """
    import diffusers

    _check(arch)
    class_name, config = DENOISERS[arch]
    with _building(device, dtype):
        model = getattr(diffusers, class_name)(**config)
    return _as_loaded(model, dtype)


def denoiser_parameter_count(arch: str) -> int:
    """The number of parameters of ``arch``'s denoiser (buffers not counted), from a build on the meta device."""
    return sum(p.numel() for p in build_random_denoiser(arch, "meta").parameters())


def _layers(real: int, cap: int | None) -> int:
    if cap is None:
        return real
    if int(cap) < 1:
        raise ValueError(f"text_layers must be at least 1 (or None for the real depth), not {cap!r}")
    return min(real, int(cap))


def _clip(config: dict, tokenizer, text_layers: int | None, projection_dim: int | None = None):
    """A CLIP text tower of ``config`` whose special token ids are ``tokenizer``'s, capped at ``text_layers``
    layers; CLIPTextModelWithProjection when the config or ``projection_dim`` gives a projection."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    values = dict(config)
    if projection_dim is not None:
        values["projection_dim"] = projection_dim
    values["num_hidden_layers"] = _layers(values["num_hidden_layers"], text_layers)
    text_config = CLIPTextConfig(**values, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if "projection_dim" in values else CLIPTextModel)(text_config)


def _t5(tokenizer, text_layers: int | None):
    """T5-v1.1-XXL's encoder with ``tokenizer``'s pad/eos ids, capped at ``text_layers`` layers."""
    from transformers import T5Config, T5EncoderModel

    values = dict(T5_XXL_ENCODER)
    values["num_layers"] = _layers(values["num_layers"], text_layers)
    return T5EncoderModel(T5Config(**values, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id))


def _scheduler(spec):
    import diffusers

    class_name, config = spec
    return getattr(diffusers, class_name)(**config)


@torch.no_grad()
def build_random_pipeline(arch: str, device, dtype: torch.dtype = torch.float32, seed: int = 0, text_layers: int | None = None):
    """The full diffusers pipeline of ``arch`` with random weights, built directly on ``device`` in ``dtype``.

    arch: one of ``ARCHITECTURES``. device: a torch device or name (``"meta"`` builds the structure without
    memory). dtype: a floating dtype. seed: seeds the random weights. text_layers: caps every text encoder's
    layer count (None: the real depth; below 1: ValueError), so the text side can be made cheap.

    Returns the pipeline of ``PIPELINE_CLASSES[arch]`` with its denoiser, every text encoder, the VAE and the
    scheduler of the published configs, progress bar disabled. Tokenizers are offline: CLIP ones are
    ``utils.tiny_pipeline.word_tokenizer()``, T5 ones ``utils.tiny_families.t5_tokenizer()``; their ids lie
    inside the encoders' vocabularies (49408 and 32128). Raises ValueError for an unknown arch.
    """
    import diffusers
    from diffusers import AutoencoderKL

    from utils.tiny_pipeline import word_tokenizer

    _check(arch)
    # Tokenizers and the scheduler: on the CPU, in float32 (a scheduler's tables are not model weights).
    clip_tokenizers = [word_tokenizer() for _ in range({"sd15": 1, "sdxl": 2, "sd3.5-medium": 2, "pixart-sigma": 0, "flux-dev": 1}[arch])]
    t5 = None
    if arch in ("sd3.5-medium", "pixart-sigma", "flux-dev"):
        from utils.tiny_families import t5_tokenizer  # the shared offline T5 tokenizer (vocabulary of 135 < 32128)

        t5 = t5_tokenizer()
    scheduler = _scheduler(SCHEDULERS[arch])
    torch.manual_seed(seed)
    with _building(device, dtype):
        denoiser_class, denoiser_config = DENOISERS[arch]
        denoiser = getattr(diffusers, denoiser_class)(**denoiser_config)
        if arch == "sd15":
            (tokenizer,) = clip_tokenizers
            parts = dict(
                unet=denoiser, vae=AutoencoderKL(**SD_VAE), text_encoder=_clip(VIT_L14_TEXT, tokenizer, text_layers), tokenizer=tokenizer,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            )
        elif arch == "sdxl":
            tokenizer, tokenizer_2 = clip_tokenizers
            parts = dict(
                unet=denoiser, vae=AutoencoderKL(**SDXL_VAE),
                text_encoder=_clip(VIT_L14_TEXT, tokenizer, text_layers), tokenizer=tokenizer,
                text_encoder_2=_clip(BIGG14_TEXT, tokenizer_2, text_layers), tokenizer_2=tokenizer_2,
                add_watermarker=False,
            )
        elif arch == "sd3.5-medium":
            tokenizer, tokenizer_2 = clip_tokenizers
            parts = dict(
                transformer=denoiser, vae=AutoencoderKL(**SD3_VAE),
                text_encoder=_clip(VIT_L14_TEXT, tokenizer, text_layers, projection_dim=VIT_L14_PROJECTION_DIM), tokenizer=tokenizer,
                text_encoder_2=_clip(BIGG14_TEXT, tokenizer_2, text_layers), tokenizer_2=tokenizer_2,
                text_encoder_3=_t5(t5, text_layers), tokenizer_3=t5,
            )
        elif arch == "pixart-sigma":
            parts = dict(transformer=denoiser, vae=AutoencoderKL(**SDXL_VAE), text_encoder=_t5(t5, text_layers), tokenizer=t5)
        else:  # flux-dev
            (tokenizer,) = clip_tokenizers
            parts = dict(
                transformer=denoiser, vae=AutoencoderKL(**FLUX_VAE),
                text_encoder=_clip(VIT_L14_TEXT, tokenizer, text_layers), tokenizer=tokenizer,
                text_encoder_2=_t5(t5, text_layers), tokenizer_2=t5,
            )
    pipe = getattr(diffusers, PIPELINE_CLASSES[arch])(scheduler=scheduler, **parts)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            _as_loaded(component, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def build_random_sd15(device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A StableDiffusionPipeline of SD 1.5's shapes with random weights, built on ``device`` in ``dtype``.

    Built directly on the device (fast on a GPU); the PNDM scheduler is SD 1.5's.
    """
    from diffusers import AutoencoderKL, PNDMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from utils.tiny_pipeline import sd_pipeline, word_tokenizer

    tokenizer = word_tokenizer()
    torch.manual_seed(seed)
    with torch.device(device):
        unet = sd15_unet()
        vae = AutoencoderKL(**SD_VAE)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(**VIT_L14_TEXT, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        )
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler)
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
