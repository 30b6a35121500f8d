"""Prune masks on disk and on models: save, load, apply, export.

``prune_mask.safetensors`` holds one bool tensor per pruned parameter, of the parameter's whole shape,
keyed by its state-dict name in the pipeline component (``unet``, ``transformer``, ``text_encoder``,
``text_encoder_2`` or ``text_encoder_3``), e.g.
``down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight``; True = set to zero. Its
metadata holds the base ``model_id``, the ``component``, the ``pipeline_class``, the settings, the counts, and
``fill`` / ``fill_seed`` / ``fill_scale``: what the pruned weights become (utils/fills.py; zero, the paper's, when absent).

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


def save_prune_mask(path: str | Path, masks: dict[str, torch.Tensor], component, metadata: dict[str, Any],
                    num_scored: int | None = None) -> dict[str, Any]:
    """Write layer -> bool mask (of the whole weight) as ``<layer>.weight`` tensors; return the metadata written.

    component: the module the masks apply to (counts are taken from it). num_scored: the weights that were
    scored (default: every entry of the masks; fewer when only some columns of a weight are scored).
    """
    tensors = {f"{layer}.weight": mask.bool() for layer, mask in masks.items()}
    pruned = int(sum(int(m.sum()) for m in tensors.values()))
    total = sum(p.numel() for p in component.parameters())
    meta = dict(metadata)
    meta.update(
        num_pruned=pruned,
        num_scored=int(num_scored if num_scored is not None else sum(m.numel() for m in tensors.values())),
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


def check_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Raise UsageError unless every ``masks[name]`` is a bool tensor of ``weights[name]``'s shape."""
    for name, mask in masks.items():
        if mask.dtype != torch.bool:
            raise UsageError(f"the mask of {name} is {str(mask.dtype).removeprefix('torch.')}, not bool; pass bool masks (True = set to zero)")
        if weights[name].shape != mask.shape:
            raise UsageError(f"the mask of {name} has shape {tuple(mask.shape)}, the model's is {tuple(weights[name].shape)}; use the model the mask was made for")


@torch.no_grad()
def zero_masked(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], originals: dict[str, torch.Tensor] | None = None) -> int:
    """The one place a mask is applied: set ``weights[name]`` (in place) to zero where ``masks[name]`` is True,
    for every name of ``masks``; return how many weights the masks name (their True entries).

    originals: when given, each weight is first reset to ``originals[name]`` (a per-step mask replaces the
    previous step's instead of adding to it). Every mask is checked (bool, the weight's shape) before any
    weight is written; see ``check_masks`` for the errors. ``restore_weights`` undoes it.
    """
    check_masks(weights, masks)
    zeroed = 0
    for name, mask in masks.items():
        weight = weights[name]
        mask = mask.to(weight.device)
        if originals is not None:
            weight.copy_(originals[name])
        weight.masked_fill_(mask, 0)
        zeroed += int(mask.sum())
    return zeroed


@torch.no_grad()
def fill_masked(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], fill: str = "zero", seed: int = 0, scale: float = 1.0) -> int:
    """Write ``fill`` (utils/fills.py: zero, noise, shuffle) at the True entries of ``masks[name]`` in
    ``weights[name]`` (in place), for every name of ``masks``; return how many weights the masks name.

    ``zero`` is ``zero_masked``; the other fills draw per layer from ``seed`` and the parameter's name, so the
    same mask, fill and seed give the same weights on every device; ``scale`` narrows the draws around each row's
    mean. Every mask is checked first (check_masks).
    """
    from utils.fills import fill_values, layer_generator

    if fill == "zero":
        return zero_masked(weights, masks)
    check_masks(weights, masks)
    filled = 0
    for name, mask in masks.items():
        weight = weights[name]
        values = fill_values(weight, mask, fill, layer_generator(seed, name), scale)
        weight[mask.to(weight.device)] = values.to(weight.device, weight.dtype)
        filled += int(mask.sum())
    return filled


def saved_weights(weights: dict[str, torch.Tensor], names=None) -> dict[str, torch.Tensor]:
    """Copies of ``weights`` (those of ``names``, default all) for ``restore_weights``."""
    return {name: weights[name].detach().clone() for name in (weights if names is None else names)}


@torch.no_grad()
def restore_weights(weights: dict[str, torch.Tensor], originals: dict[str, torch.Tensor]) -> None:
    """Copy ``originals`` (from ``saved_weights``) back into ``weights`` in place."""
    for name, original in originals.items():
        weights[name].copy_(original)


@contextmanager
def masked_weights(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> Iterator[None]:
    """Within the block, each weight is zeroed where ``masks[layer]`` is True; the original weights are back
    afterwards, also after an error.

    weights: layer -> a weight tensor or a view of one that shares its storage (a Session's ``weights()``);
    masks: layer -> bool mask of that shape.
    """
    originals = saved_weights(weights, masks)
    try:
        zero_masked(weights, masks)
        yield
    finally:
        restore_weights(weights, originals)


def apply_prune_mask(pipe, mask: str | Path | dict[str, torch.Tensor], component: str | None = None,
                     fill: str | None = None, seed: int | None = None, scale: float | None = None) -> int:
    """Prune the masked weights of ``pipe.<component>`` in place; return how many were pruned.

    mask: a prune-mask file or a dict of parameter name -> bool mask (then ``component`` names the
    pipeline attribute, default the pipeline's denoiser: ``unet`` or ``transformer``). A pipeline component
    (a bare module) works too. fill / seed / scale: what the pruned weights become (utils/fills.py; default: the
    file's ``fill``, ``fill_seed`` and ``fill_scale``; zero for a dict or a file without them). Raise UsageError when the
    pipeline has no such component or the component lacks a masked parameter or has it in another shape
    (a mask of another model or family).
    """
    meta: dict[str, Any] = {}
    if isinstance(mask, (str, Path)):
        masks, meta = load_prune_mask(mask)
        component = component or meta.get("component", "unet")
    else:
        masks = mask
    fill = fill or str(meta.get("fill", "zero"))
    seed = int(meta.get("fill_seed", 0)) if seed is None else seed
    scale = float(meta.get("fill_scale", 1.0)) if scale is None else scale
    from utils.fills import FILLS

    if fill not in FILLS:
        raise UsageError(f"the mask asks for fill {fill!r}, which this version does not know; use one of {', '.join(FILLS)}")
    if isinstance(pipe, torch.nn.Module):
        module = pipe
    else:
        if component is None:
            component = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        module = getattr(pipe, component, None)
        if not isinstance(module, torch.nn.Module):
            made_for = f" of a {meta['pipeline_class']}" if meta.get("pipeline_class") else ""
            raise UsageError(f"the mask is for the {component}{made_for}, which a {type(pipe).__name__} does not have; use the model the mask was made for")
    params = {}
    for name in masks:
        try:
            params[name] = module.get_parameter(name)
        except AttributeError:
            raise UsageError(f"the mask names {name}, which {type(module).__name__} does not have; use the model the mask was made for") from None
    return fill_masked(params, masks, fill, seed, scale)


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
