"""What the pruned weights become: zeros (the paper), or values that hide where the pruning happened.

A zero-filled mask leaves a fingerprint: its positions are exactly the zeros of the pruned layers, which is
all a data-free revival attack needs (see utils/revival.py and benchmarking/revival_attack.py). The other
fills write, at each masked position, a value drawn like the row's surviving weights:

- ``zero``: 0 (the paper's pruning);
- ``noise``: a Gaussian with the mean and standard deviation of the row's unmasked weights;
- ``shuffle``: one of the row's unmasked weights, drawn at random (with replacement).

A ``scale`` below 1 narrows a draw around the row's mean (value = mean + scale * (draw - mean)): less
disturbance of everything else, at the price of pruned values that stand out more.

Draws are seeded per layer (the run's seed and the parameter's name), made on the CPU in float32 and then
moved to the weight's device and dtype, so a fill is the same on every device and in every order of layers;
the mask file records the fill and its seed (``fill``, ``fill_seed``). No torch import at module level: the
config checks read ``FILLS`` before torch is loaded.
"""
from __future__ import annotations

import hashlib
from typing import Any

FILLS = ("zero", "noise", "shuffle")


def layer_generator(seed: int, name: str):
    """A CPU ``torch.Generator`` seeded by the run's ``seed`` and the parameter ``name`` (independent of layer order)."""
    import torch

    digest = hashlib.sha256(f"{int(seed)}:{name}".encode("utf-8")).hexdigest()
    return torch.Generator().manual_seed(int(digest[:15], 16))


def fill_values(weight: Any, mask: Any, fill: str, generator: Any, scale: float = 1.0) -> Any:
    """The values written at the True entries of ``mask`` (a bool tensor of ``weight``'s 2-D shape), in row-major
    order, as a float32 CPU tensor: zeros, or draws from each row's unmasked weights, narrowed around the row's
    mean by ``scale`` (see the module docstring). A row with no unmasked weight gets zeros. Raise ValueError for
    an unknown ``fill``."""
    import torch

    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")
    w = weight.detach().float().cpu()
    mask = mask.cpu()
    rows = mask.nonzero()[:, 0]
    if fill == "zero" or rows.numel() == 0:
        return torch.zeros(rows.numel())
    keep = ~mask
    count = keep.sum(dim=1)
    safe = count.clamp_min(1)
    mean = (w * keep).sum(dim=1) / safe
    if fill == "noise":
        std = (((w - mean[:, None]) * keep) ** 2).sum(dim=1).div(safe).sqrt()
        values = mean[rows] + std[rows] * torch.randn(rows.numel(), generator=generator)
    else:  # shuffle: the k-th unmasked weight of the row, k uniform over the row's unmasked weights
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # unmasked columns first, in column order
        pick = (torch.rand(rows.numel(), generator=generator) * count[rows]).long().clamp_max((count[rows] - 1).clamp_min(0))
        values = w[rows, order[rows, pick]]
    if scale != 1.0:
        values = mean[rows] + float(scale) * (values - mean[rows])
    return torch.where(count[rows] > 0, values, torch.zeros_like(values))


def fill_label(fill: str | None, scale: float | None = None) -> str | None:
    """The run-folder suffix of a fill: None for zero (the paper's), ``noise``, ``noise0.5`` with a scale."""
    if fill in (None, "zero"):
        return None
    return fill if scale in (None, 1.0) else f"{fill}{float(scale):g}"
