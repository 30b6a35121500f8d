"""Batched, seeded generation: one generator per prompt, so a batch equals one-at-a-time runs."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image


def make_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """One ``torch.Generator`` per prompt on the pipeline's device (cpu for mps), seeded with its seed."""
    gen_device = "cpu" if device.type == "mps" else device
    return [torch.Generator(device=gen_device).manual_seed(int(seed)) for seed in seeds]


def sampling_kwargs(config: dict[str, Any], pipe=None) -> dict[str, Any]:
    """The pipeline-call arguments that the config fixes (steps, guidance, size). With ``pipe``, a pipeline
    that bins resolutions (PixArt) is told not to when the size is given, so it samples at exactly that size."""
    kwargs = {"num_inference_steps": int(config["num_inference_steps"]), "guidance_scale": float(config["guidance_scale"])}
    for key in ("height", "width"):
        if config.get(key):
            kwargs[key] = int(config[key])
    if pipe is not None and ("height" in kwargs or "width" in kwargs) and "use_resolution_binning" in call_parameters(pipe):
        kwargs["use_resolution_binning"] = False
    return kwargs


def call_parameters(pipe) -> tuple[str, ...]:
    """The names of the arguments that ``pipe.__call__`` takes."""
    import inspect

    return tuple(inspect.signature(type(pipe).__call__).parameters)


@torch.no_grad()
def run_pipeline(pipe, prompts: Sequence[str], seeds: Sequence[int], config: dict[str, Any], output_type: str = "latent"):
    """Generate ``prompts`` (seed i for prompt i); return latents (``latent``, in the pipeline's own layout:
    packed for Flux) or PIL images (``pil``)."""
    generators = make_generators(seeds, pipe.device)
    out = pipe(prompt=list(prompts), generator=generators, output_type=output_type, **sampling_kwargs(config, pipe))
    return out.images


def count_unet_calls(pipe, num_inference_steps: int) -> int:
    """Denoiser calls (UNet or transformer) of one generation with the pipeline's scheduler (PNDM: steps + 1;
    a flow-matching scheduler that shifts its timesteps by the image size: steps)."""
    scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    try:
        scheduler.set_timesteps(num_inference_steps)
    except ValueError:  # FlowMatchEuler with use_dynamic_shifting wants the shift mu, which changes no count
        scheduler.set_timesteps(num_inference_steps, mu=1.0)
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
