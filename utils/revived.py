"""A revival attack's result: locate the pruned positions of an edited model's scored layers, revive them
(utils/revival.py), store what changed (``revived.safetensors``) and apply it to a model.

The file holds, per attacked layer (its module name, e.g. ``down_blocks.0...ff.net.2``), ``<layer>.located``
(bool, the shape of the layer's scored weight: the positions the attacker changed) and ``<layer>.values``
(float32, the new values of those positions in row-major order): a delta of the mask's size. Its metadata
(``format`` = ``REVIVAL_FORMAT``) names the base model, the edit it attacks (method and checkpoint), the hook
variant and streams whose weights were attacked, and the attack's settings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from utils.errors import UsageError

REVIVAL_FORMAT = "concept-prune revival v1"
DETECTOR_LOCATORS = ("magnitude", "row_z", "col_z", "residual")
# zeros: the attack's own step; the others: detectors, each also negated ("-row_z": too close to the row's mean)
LOCATORS = ("zeros", *DETECTOR_LOCATORS, *(f"-{name}" for name in DETECTOR_LOCATORS))
MAKE_REVIVAL = "pass a revived.safetensors written by benchmarking/revival_attack.py"


def locate(weights: dict[str, torch.Tensor], how: str = "zeros", fraction: float | None = None,
           counts: dict[str, int] | None = None, **detector_settings) -> dict[str, torch.Tensor]:
    """layer -> bool positions the attacker takes for pruned: the exact zeros (``how="zeros"``, the attack's
    step against the paper's zero fill), or the entries a detector scores highest (utils/revival.detector_scores:
    any of its kinds, "-" in front negates it; an attacker facing a fill that is not zero): the top ``fraction``
    of each layer, or ``counts[layer]`` entries of each layer (none where 0). Raise ValueError for an unknown
    detector, or a detector without a fraction in (0, 1) or counts."""
    from utils.revival import detector_scores, locate_zeros

    if how == "zeros":
        return {name: locate_zeros(weight) for name, weight in weights.items()}
    if counts is None and (fraction is None or not 0 < fraction < 1):
        raise ValueError(f"locating by {how} needs a fraction of each layer in (0, 1) or a count per layer, got {fraction}")
    located = {}
    for name, weight in weights.items():
        scores = detector_scores(weight, how, **detector_settings).reshape(-1)
        count = counts[name] if counts is not None else max(1, round(fraction * scores.numel()))
        chosen = torch.zeros_like(scores, dtype=torch.bool)
        if count:
            chosen[torch.topk(scores, count).indices] = True
        located[name] = chosen.reshape(weight.shape)
    return located


def attack(weights: dict[str, torch.Tensor], located: dict[str, torch.Tensor], **settings) -> dict[str, torch.Tensor]:
    """layer -> the revived values at its located positions (float32, row-major), from utils/revival.revive
    (``settings``: sign_ratio, margin, shrinkage, rank, max_iters, rest)."""
    from utils.revival import revive

    revived = revive(weights, located, **settings)
    return {name: revived[name][located[name].to(revived[name].device)].float() for name in located}


def save_revival(path: str | Path, located: dict[str, torch.Tensor], values: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write the located positions and revived values with ``metadata`` (the format added), atomically."""
    from utils.storage import save_tensors

    tensors = {}
    for name, mask in located.items():
        tensors[f"{name}.located"] = mask.bool().cpu()
        tensors[f"{name}.values"] = values[name].float().cpu()
    save_tensors(path, tensors, {**metadata, "format": REVIVAL_FORMAT})


def load_revival(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(layer -> located, layer -> values, metadata) of a revival file; UsageError for a missing, unreadable or
    foreign file, or one whose values do not match its located positions."""
    from safetensors import SafetensorError

    from utils.storage import load_tensors

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"revival file {path} does not exist; {MAKE_REVIVAL}")
    try:
        tensors, meta = load_tensors(path)
    except (SafetensorError, ValueError, OSError) as err:
        raise UsageError(f"{path} could not be read as a revival file ({str(err).splitlines()[0][:120]}); {MAKE_REVIVAL}") from None
    if meta.get("format") != REVIVAL_FORMAT:
        raise UsageError(f"{path} is not a concept-prune revival file; {MAKE_REVIVAL}")
    located, values = {}, {}
    for key, tensor in tensors.items():
        name, _, part = key.rpartition(".")
        (located if part == "located" else values)[name] = tensor
    for name, mask in located.items():
        if mask.dtype != torch.bool or name not in values or values[name].numel() != int(mask.sum()):
            raise UsageError(f"{path} holds positions and values of {name} that do not match; {MAKE_REVIVAL}")
    return located, values, meta


@torch.no_grad()
def apply_revival(weights: dict[str, torch.Tensor], located: dict[str, torch.Tensor], values: dict[str, torch.Tensor]) -> int:
    """Write the revived ``values`` at the ``located`` positions of ``weights`` (layer -> scored weight, a view
    of the model's parameter) in place; return how many weights were written. UsageError when a layer is
    missing or of another shape (a revival of another model)."""
    written = 0
    for name, mask in located.items():
        if name not in weights or tuple(weights[name].shape) != tuple(mask.shape):
            raise UsageError(f"the revival names {name} of shape {tuple(mask.shape)}, which this model does not have; use the model it was made for")
        weight = weights[name]
        weight[mask.to(weight.device)] = values[name].to(weight.device, weight.dtype)
        written += int(mask.sum())
    return written
