"""Build small, seeded, random-weight text-to-image pipelines of each modern diffusers family, offline.

Like diffusers' own tests' ``get_dummy_components``, but nothing is fetched: every CLIP tokenizer is the
byte-level one of ``utils.tiny_pipeline`` (``word_tokenizer``) and every T5 tokenizer is ``t5_tokenizer()``,
a Unigram tokenizer built here from a small fixed vocabulary with the ``tokenizers`` library. The weights
are random (seeded): a pipeline exercises every code path of its family, it knows no concept.

Families (``FAMILIES``), each at 32x32 pixels from 16x16 latents (a 2-block VAE, scale factor 2):

* ``"sd2"``: ``StableDiffusionPipeline``; ``UNet2DConditionModel`` laid out like SD 2.x (linear projections,
  per-block head counts), an OpenCLIP-like ``CLIPTextModel`` (gelu), ``DDIMScheduler`` with v-prediction.
* ``"sdxl"``: ``StableDiffusionXLPipeline``; a ``text_time`` UNet whose cross-attention block holds 2
  transformer layers, ``CLIPTextModel`` + ``CLIPTextModelWithProjection``, ``EulerDiscreteScheduler``.
* ``"sd3"``: ``StableDiffusion3Pipeline``; ``SD3Transformer2DModel`` (2 joint blocks, the first with dual
  attention like SD 3.5, the last ``context_pre_only`` without ``ff_context``), two
  ``CLIPTextModelWithProjection`` + a gated-gelu ``T5EncoderModel``, ``FlowMatchEulerDiscreteScheduler``.
* ``"pixart-alpha"`` / ``"pixart-sigma"``: ``PixArtAlphaPipeline`` / ``PixArtSigmaPipeline``;
  ``PixArtTransformer2DModel`` (``ada_norm_single``, cross attention), ``T5EncoderModel``,
  ``DPMSolverMultistepScheduler``.
* ``"flux"``: ``FluxPipeline``; ``FluxTransformer2DModel`` (2 double and 2 single blocks, guidance embeds like
  FLUX.1-dev), ``CLIPTextModel`` + ``T5EncoderModel``, a 16-channel VAE with Flux's scaling and shift,
  ``FlowMatchEulerDiscreteScheduler`` with dynamic shifting.

Generating at the tiny size: pass ``**CALL_KWARGS[family]`` (height/width 32 for every family). PixArt
pipelines bin the resolution by default and refuse a transformer ``sample_size`` other than 32/64/128(/256),
so they need ``use_resolution_binning=False`` (and ``clean_caption=False`` spares a warning when bs4/ftfy are
missing); Flux defaults to 256x256 pixels whatever the transformer, so it
needs ``height=32, width=32``. The others default to 32x32 already.

Speed: one generation of 2 prompts x 2 steps takes about 0.05 s of one core. The models are so small that a
second intra-op thread only adds synchronisation, which on a busy machine can cost seconds per call:
``torch.set_num_threads(1)`` around their use keeps them fast.

Command line: ``python utils/tiny_families.py --family sd3 --out models/tiny-sd3`` writes a diffusers folder.
"""
from __future__ import annotations

import argparse
import string
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.tiny_pipeline import sd_pipeline, word_tokenizer, write_tokenizer_files

FAMILIES = ("sd2", "sdxl", "sd3", "pixart-alpha", "pixart-sigma", "flux")

SIZE = 32  # pixels; latents are SIZE // 2 (every VAE here has 2 blocks)

CALL_KWARGS = {
    "sd2": dict(height=SIZE, width=SIZE),
    "sdxl": dict(height=SIZE, width=SIZE),
    "sd3": dict(height=SIZE, width=SIZE),
    "pixart-alpha": dict(height=SIZE, width=SIZE, use_resolution_binning=False, clean_caption=False),
    "pixart-sigma": dict(height=SIZE, width=SIZE, use_resolution_binning=False, clean_caption=False),
    "flux": dict(height=SIZE, width=SIZE),
}

PIPELINE_CLASSES = {
    "sd2": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "pixart-alpha": "PixArtAlphaPipeline",
    "pixart-sigma": "PixArtSigmaPipeline",
    "flux": "FluxPipeline",
}

T5_WORDS = (
    "a", "an", "the", "of", "in", "on", "with", "and", "by", "photo", "picture", "painting", "image", "style",
    "cat", "dog", "house", "car", "tree", "man", "woman", "person", "face", "city", "art", "van", "gogh",
    "monet", "stripes", "red", "blue", "green", "black", "white", "is", "at", "to",
)


def t5_vocabulary() -> list[tuple[str, float]]:
    """The fixed Unigram vocabulary of ``t5_tokenizer``: ``[(piece, log-probability), ...]``.

    Ids: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2 (T5's order), then the word boundary ``▁``, single characters
    (letters, digits, ASCII punctuation) and ``▁word`` pieces for a few common words.
    """
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -5.0) for c in string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation]
    pieces += [("\u2581" + w, -4.0) for w in T5_WORDS]
    return pieces


def _t5_backend():
    """A ``tokenizers.Tokenizer``: Unigram over ``t5_vocabulary()``, T5's pre-tokenizer/decoder, ``</s>`` appended."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(t5_vocabulary(), unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)]
    )
    return tok


def t5_tokenizer(work_dir: str | Path | None = None):
    """An offline ``T5TokenizerFast`` (pad 0, eos 1, unk 2, no sentinel ids, model_max_length 512).

    Built from ``t5_vocabulary()`` with the ``tokenizers`` library; any English text tokenizes (characters outside
    the vocabulary become ``<unk>``) and every encoding ends in ``</s>``. work_dir: when given, the tokenizer is
    also saved to ``work_dir/t5-tokenizer`` and loaded back from there (kept). Returns the tokenizer.
    """
    from transformers import T5TokenizerFast

    tokenizer = T5TokenizerFast(
        tokenizer_object=_t5_backend(),
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=512,
    )
    if work_dir is not None:
        folder = Path(work_dir) / "t5-tokenizer"
        tokenizer.save_pretrained(str(folder))
        tokenizer = T5TokenizerFast.from_pretrained(str(folder))
    return tokenizer


def _clip_text(tokenizer, hidden: int = 32, act: str = "quick_gelu", projection_dim: int | None = None):
    """A 2-layer CLIP text encoder (``CLIPTextModelWithProjection`` when projection_dim is given)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection_dim or hidden,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config) if projection_dim else CLIPTextModel(config)


def _t5_encoder(tokenizer, d_model: int = 32):
    """A 2-layer gated-gelu ``T5EncoderModel`` (T5 v1.1 / FLAN layout) of width d_model."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5EncoderModel(config)


def _vae(latent_channels: int = 4, scaling_factor: float = 0.18215, shift_factor: float | None = None, quant: bool = True):
    """A 2-block ``AutoencoderKL`` (32x32 images <-> 16x16 latents)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels,
        sample_size=SIZE,
        norm_num_groups=16,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=quant,
        use_post_quant_conv=quant,
    )


def _sd2(seed: int, work_dir):
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel

    tokenizer = word_tokenizer(work_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=(2, 4),  # SD 2.x gives per-block head counts (5, 10, 20, 20)
        use_linear_projection=True,
        upcast_attention=True,
        norm_num_groups=32,
    )
    vae = _vae()
    text_encoder = _clip_text(tokenizer, act="gelu")  # OpenCLIP ViT-H text tower: gelu, not quick_gelu
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
    )
    return sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler)


def _sdxl(seed: int, work_dir):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer = word_tokenizer(work_dir)
    tokenizer_2 = word_tokenizer(work_dir)
    hidden, hidden_2, projection_2, time_dim = 32, 32, 32, 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=hidden + hidden_2,  # the two encoders' penultimate states, concatenated
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + projection_2,  # 6 micro-conditions + pooled text
        norm_num_groups=32,
    )
    vae = _vae(scaling_factor=0.13025)
    text_encoder = _clip_text(tokenizer, hidden=hidden)
    text_encoder_2 = _clip_text(tokenizer_2, hidden=hidden_2, act="gelu", projection_dim=projection_2)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        add_watermarker=False,
    )


def _sd3(seed: int, work_dir):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer = word_tokenizer(work_dir)
    tokenizer_2 = word_tokenizer(work_dir)
    tokenizer_3 = t5_tokenizer(work_dir)
    clip, projection = 32, 32
    t5_dim = 2 * clip  # the pipeline pads the concatenated CLIP states (2 * clip wide) up to T5's width
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=SIZE // 2,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=t5_dim,
        caption_projection_dim=32,
        pooled_projection_dim=2 * projection,
        pos_embed_max_size=32,
        dual_attention_layers=(0,),  # SD 3.5 (medium) layout: extra self-attention in the first blocks
        qk_norm="rms_norm",
    )
    vae = _vae(latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609, quant=False)
    text_encoder = _clip_text(tokenizer, hidden=clip, projection_dim=projection)
    text_encoder_2 = _clip_text(tokenizer_2, hidden=clip, act="gelu", projection_dim=projection)
    text_encoder_3 = _t5_encoder(tokenizer_3, d_model=t5_dim)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )


def _pixart(seed: int, work_dir, sigma: bool):
    import torch
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer = t5_tokenizer(work_dir)
    t5_dim = 32
    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(
        sample_size=SIZE // 2,
        patch_size=2,
        in_channels=4,
        out_channels=8,  # learned sigma: the pipeline keeps the first half
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        cross_attention_dim=32,
        caption_channels=t5_dim,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        interpolation_scale=1,  # the real ones scale the position grid to their sample size; here 1
    )
    vae = _vae()
    text_encoder = _t5_encoder(tokenizer, d_model=t5_dim)
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.0001,
        beta_end=0.02,
        beta_schedule="linear",
        solver_order=2,
        prediction_type="epsilon",
        algorithm_type="dpmsolver++",
        lower_order_final=True,
    )
    cls = PixArtSigmaPipeline if sigma else PixArtAlphaPipeline
    return cls(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)


def _flux(seed: int, work_dir):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer = word_tokenizer(work_dir)
    tokenizer_2 = t5_tokenizer(work_dir)
    clip, t5_dim, latent_channels = 32, 32, 16
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * latent_channels,  # latents are packed in 2x2 patches
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=t5_dim,
        pooled_projection_dim=clip,
        guidance_embeds=True,  # FLUX.1-dev: guidance_scale is embedded, no second (unconditional) pass
        axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
    )
    vae = _vae(latent_channels=latent_channels, scaling_factor=0.3611, shift_factor=0.1159, quant=False)
    text_encoder = _clip_text(tokenizer, hidden=clip)
    text_encoder_2 = _t5_encoder(tokenizer_2, d_model=t5_dim)
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


_BUILDERS = {
    "sd2": _sd2,
    "sdxl": _sdxl,
    "sd3": _sd3,
    "pixart-alpha": lambda seed, work_dir: _pixart(seed, work_dir, sigma=False),
    "pixart-sigma": lambda seed, work_dir: _pixart(seed, work_dir, sigma=True),
    "flux": _flux,
}


def build_tiny_family(family: str, seed: int = 0, work_dir: str | Path | None = None):
    """Return a tiny random pipeline of ``family`` (one of ``FAMILIES``): float32, on the cpu, no safety checker.

    The weights are created after ``torch.manual_seed(seed)``: two builds with one seed are identical.
    work_dir: folder where the tokenizer files are written and kept (a temporary folder when None).
    Generate at the tiny size with ``pipe(prompt, **CALL_KWARGS[family])`` (32x32 images).
    """
    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    pipe = _BUILDERS[family](seed, work_dir)  # new modules: float32 on the cpu already
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_family(out: str | Path, family: str, seed: int = 0) -> Path:
    """Build ``family`` with ``seed`` and save it as a diffusers folder at ``out``; return ``out`` as a Path.

    ``DiffusionPipeline.from_pretrained(str(out))`` loads it back offline into the family's pipeline class
    (every tokenizer's files are in the folder).
    """
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="tiny-family-") as work_dir:
        pipe = build_tiny_family(family, seed, work_dir=work_dir)
        pipe.save_pretrained(str(out))
    for name in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        if type(getattr(pipe, name, None)).__name__ == "CLIPTokenizer":
            write_tokenizer_files(out / name)  # CLIP's vocab.json / merges.txt, as utils.tiny_pipeline saves them
    return out


def main(argv=None) -> None:
    """Command line: write a tiny diffusers folder of one family."""
    parser = argparse.ArgumentParser(description="Write a tiny random diffusers pipeline folder of one family (offline).")
    parser.add_argument("--family", choices=FAMILIES, required=True)
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"wrote {save_tiny_family(args.out, args.family, args.seed)}")


if __name__ == "__main__":
    main()
