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
from utils.storage import atomic_directory, check_replaceable, load_tensors, save_tensors


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


MASK_FORMAT = "concept-prune prune mask"
MAKE_MASK = "pass a prune_mask.safetensors written by wanda/save_union_over_time.py"


def load_prune_mask(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(parameter name -> bool mask, metadata) of a prune-mask file.

    Raises UsageError when the file is missing, not a readable safetensors file (truncated, pickled,
    metadata that is not JSON), not one of our masks (no format metadata), or holds a tensor that
    is not bool.
    """
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"prune mask {path} does not exist; run wanda/save_union_over_time.py first or pass an existing file")
    try:
        masks, meta = load_tensors(path)
    except (SafetensorError, ValueError, OSError) as err:  # truncated, pickled, not safetensors, metadata not JSON
        raise UsageError(f"{path} could not be read as a prune mask ({str(err).splitlines()[0][:120]}); {MAKE_MASK}") from None
    if not str(meta.get("format", "")).startswith(MASK_FORMAT):
        raise UsageError(f"{path} is not a concept-prune prune mask (no format metadata); {MAKE_MASK}")
    wrong = next((name for name, mask in masks.items() if mask.dtype != torch.bool), None)
    if wrong is not None:
        raise UsageError(f"{path} holds {wrong} as {str(masks[wrong].dtype).removeprefix('torch.')}, but a prune mask holds bool tensors; {MAKE_MASK}")
    if not masks:
        raise UsageError(f"{path} holds no masks; {MAKE_MASK}")
    return masks, meta


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
        if m.dtype != torch.bool:
            raise UsageError(f"the mask of {name} is {str(m.dtype).removeprefix('torch.')}, not bool; pass bool masks (True = set to zero)")
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


EXPORT_WHAT = "--export_diffusers folder"


def check_export_dir(out_dir: str | Path) -> None:
    """Raise UsageError unless ``out_dir`` may receive an export: absent, empty, or an earlier export of
    ours holding nothing else (the user's files are never replaced). Call it before any work."""
    check_replaceable(out_dir, EXPORT_WHAT)


def export_component(pipe, component: str, out_dir: str | Path) -> Path:
    """Write ``pipe.<component>`` (already pruned) as a standard diffusers/transformers folder, atomically.

    ``out_dir`` is checked by check_export_dir: a folder of the user's is refused, never replaced.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, EXPORT_WHAT) as tmp:
        getattr(pipe, component).save_pretrained(str(tmp))
    return out_dir
