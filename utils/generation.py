"""Batched, seeded generation: one generator per prompt, so a batch equals one-at-a-time runs."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image


def make_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """One ``torch.Generator`` per prompt on the pipeline's device (cpu for mps), seeded with its seed."""
    gen_device = "cpu" if device.type == "mps" else device
    return [torch.Generator(device=gen_device).manual_seed(int(seed)) for seed in seeds]


def sampling_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The pipeline-call arguments that the config fixes (steps, guidance, size)."""
    kwargs = {"num_inference_steps": int(config["num_inference_steps"]), "guidance_scale": float(config["guidance_scale"])}
    for key in ("height", "width"):
        if config.get(key):
            kwargs[key] = int(config[key])
    return kwargs


@torch.no_grad()
def run_pipeline(pipe, prompts: Sequence[str], seeds: Sequence[int], config: dict[str, Any], output_type: str = "latent"):
    """Generate ``prompts`` (seed i for prompt i); return latents (``latent``) or PIL images (``pil``)."""
    generators = make_generators(seeds, pipe.device)
    out = pipe(prompt=list(prompts), generator=generators, output_type=output_type, **sampling_kwargs(config))
    return out.images


@torch.no_grad()
def decode_latents(pipe, latents: torch.Tensor) -> list[Image.Image]:
    """Decode final latents with the pipeline's VAE into PIL images (only the ones passed)."""
    vae = pipe.vae
    images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(images, output_type="pil")


def count_unet_calls(pipe, num_inference_steps: int) -> int:
    """UNet calls of one generation with the pipeline's scheduler (PNDM: steps + 1)."""
    scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps)
    return len(scheduler.timesteps)


def side_by_side(images: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    """Paste images left to right on a white canvas."""
    height = max(im.height for im in images)
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    return canvas
