"""Build small, seeded Stable Diffusion pipelines offline (tests and the quickstart).

``build_tiny_pipeline(shape="sd1")`` has SD 1.x's UNet layout (3 cross-attention down blocks,
2 layers per block: 16 FeedForward layers, 6 down, 1 mid, 9 up) at small width, a 2-layer CLIP
text encoder, a 2-block VAE (32x32 images from 16x16 latents), PNDM, and a byte-level CLIP
tokenizer written from our own vocab/merges files. ``shape="mini"`` is a 2-FFN UNet for the
fastest tests. The weights are random: the pipeline exercises every code path, it knows no concept.

Command line: ``python utils/tiny_pipeline.py --out models/tiny-sd`` writes a diffusers folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "sd1": dict(
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=2,
    ),
    "mini": dict(
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
    ),
}
MERGES = ["o f</w>", "t h", "th e</w>", "i n", "i n</w>", "s t", "p h", "ph o", "pho t", "phot o</w>", "c a", "ca t</w>"]


def _byte_characters() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tokenizer_files(folder: str | Path) -> int:
    """Write a byte-level CLIP ``vocab.json`` and ``merges.txt`` into ``folder``; return the vocab size."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_characters()
    tokens = chars + [c + "</w>" for c in chars]
    for merge in MERGES:
        tokens.append(merge.replace(" ", ""))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
    return len(vocab)


def word_tokenizer(work_dir: str | Path | None = None):
    """A ``CLIPTokenizer`` of the small word vocabulary (write_tokenizer_files), loaded from files written
    in ``work_dir`` (kept), or in a temporary folder that is removed once the tokenizer is in memory."""
    import tempfile

    from transformers import CLIPTokenizer

    if work_dir is not None:
        folder = Path(work_dir) / "tokenizer-files"
        write_tokenizer_files(folder)
        return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
    with tempfile.TemporaryDirectory(prefix="tiny-tokenizer-") as folder:
        write_tokenizer_files(Path(folder))
        return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def build_tiny_pipeline(shape: str = "sd1", seed: int = 0, work_dir: str | Path | None = None):
    """Return a seeded tiny ``StableDiffusionPipeline`` (float32, cpu) of UNet layout ``shape``.

    work_dir: folder for the tokenizer files (a temporary one when None).
    """
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = word_tokenizer(work_dir)
    vocab_size = tokenizer.vocab_size

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
        **SHAPES[shape],
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=32,
        norm_num_groups=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1
    )
    return sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler)


def sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler):
    """A ``StableDiffusionPipeline`` of these components without a safety checker (the tiny and random-weight
    SD 1.x / 2.x pipelines)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_tiny_pipeline(out: str | Path, shape: str = "sd1", seed: int = 0) -> Path:
    """Build a tiny pipeline and save it as a diffusers folder at ``out`` (tokenizer as vocab/merges)."""
    out = Path(out)
    pipe = build_tiny_pipeline(shape, seed, work_dir=out.parent)
    pipe.save_pretrained(str(out))
    write_tokenizer_files(out / "tokenizer")
    return out


def main(argv=None) -> None:
    """Command line: write a tiny diffusers folder."""
    parser = argparse.ArgumentParser(description="Write a tiny random Stable Diffusion folder (offline).")
    parser.add_argument("--out", default="models/tiny-sd", help="folder to write")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="sd1", help="UNet layout (sd1: 16 FFNs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"wrote {save_tiny_pipeline(args.out, args.shape, args.seed)}")


if __name__ == "__main__":
    main()
