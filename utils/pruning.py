"""Prune masks on disk and on models: save, load, apply, export.

``prune_mask.safetensors`` holds one bool tensor per pruned parameter, keyed by its state-dict
name in the pipeline component (``unet`` or ``text_encoder``), e.g.
``down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight``; True = set to zero. Its
metadata holds the base ``model_id``, the ``component``, the settings and the counts.

Loading a pruned pipeline::

    from diffusers import StableDiffusionPipeline
    from utils.pruning import apply_prune_mask
    pipe = StableDiffusionPipeline.from_pretrained("CompVis/stable-diffusion-v1-4")
    apply_prune_mask(pipe, "results/.../prune_mask.safetensors")
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from utils.errors import UsageError
from utils.storage import atomic_directory, load_tensors, save_tensors


def save_prune_mask(path: str | Path, masks: dict[str, torch.Tensor], component, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write layer -> bool mask as ``<layer>.weight`` tensors; return the metadata written.

    component: the module the masks apply to (counts are taken from it).
    """
    tensors = {f"{layer}.weight": mask.bool() for layer, mask in masks.items()}
    pruned = int(sum(int(m.sum()) for m in tensors.values()))
    total = sum(p.numel() for p in component.parameters())
    meta = dict(metadata)
    meta.update(
        num_pruned=pruned,
        num_scored=int(sum(m.numel() for m in tensors.values())),
        component_parameters=int(total),
        fraction_of_component=pruned / total,
        format="concept-prune prune mask v1",
    )
    save_tensors(path, tensors, meta)
    return meta


def load_prune_mask(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(parameter name -> bool mask, metadata) of a prune-mask file; UsageError if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"prune mask {path} does not exist; run wanda/save_union_over_time.py first or pass an existing file")
    return load_tensors(path)


@contextmanager
def masked_weights(modules: dict[str, torch.nn.Module], masks: dict[str, torch.Tensor]) -> Iterator[None]:
    """Within the block, each layer of ``modules`` computes with its weight zeroed where ``masks[layer]``
    is True; the original weights are back afterwards, also after an error.

    modules: layer -> Linear (e.g. a Session's ``modules``); masks: layer -> bool mask of the weight's shape.
    """
    originals = {layer: modules[layer].weight.detach().clone() for layer in masks}
    try:
        with torch.no_grad():
            for layer, mask in masks.items():
                modules[layer].weight.masked_fill_(mask.to(modules[layer].weight.device), 0)
        yield
    finally:
        with torch.no_grad():
            for layer, original in originals.items():
                modules[layer].weight.copy_(original)


@torch.no_grad()
def apply_prune_mask(pipe, mask: str | Path | dict[str, torch.Tensor], component: str | None = None) -> int:
    """Zero the masked weights of ``pipe.<component>`` in place; return how many were zeroed.

    mask: a prune-mask file or a dict of parameter name -> bool mask (then ``component`` names the
    pipeline attribute, default ``unet``). A pipeline component (a bare module) works too.
    """
    if isinstance(mask, (str, Path)):
        masks, meta = load_prune_mask(mask)
        component = component or meta.get("component", "unet")
    else:
        masks, component = mask, component or "unet"
    module = getattr(pipe, component) if hasattr(pipe, component) else pipe
    zeroed = 0
    for name, m in masks.items():
        try:
            param = module.get_parameter(name)
        except AttributeError:
            raise UsageError(f"the mask names {name}, which {type(module).__name__} does not have; use the model the mask was made for") from None
        if param.shape != m.shape:
            raise UsageError(f"the mask of {name} has shape {tuple(m.shape)}, the model's is {tuple(param.shape)}; use the model the mask was made for")
        m = m.to(param.device)
        zeroed += int(m.sum())
        param.masked_fill_(m, 0)
    return zeroed


def load_pruned_pipeline(mask_path: str | Path, model_id: str | None = None, device: str = "auto", dtype: str = "auto"):
    """Load the base model named in the mask's metadata (or ``model_id``; a repo-relative folder such as
    demo/model is found from any directory) and apply the mask; returns the pipeline."""
    from utils.config import repo_path
    from utils.model_loading import load_pipeline, resolve_device, resolve_dtype

    _, meta = load_prune_mask(mask_path)
    dev = resolve_device(device)
    pipe = load_pipeline(repo_path(model_id or meta["model_id"]), dev, resolve_dtype(dtype, dev))
    apply_prune_mask(pipe, mask_path)
    return pipe


def export_component(pipe, component: str, out_dir: str | Path) -> Path:
    """Write ``pipe.<component>`` (already pruned) as a standard diffusers/transformers folder, atomically."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        getattr(pipe, component).save_pretrained(str(tmp))
    return out_dir
