"""Skilled-neuron masks: a pure function of the weights, the two norms and skill_ratio.

For a Linear weight W [out, in] and activation norms n_b, n_t [in] at one (step, layer):
M_t = |W| * n_t and M_b = |W| * n_b (n broadcast along rows); k = int(skill_ratio * in).
Weight (r, j) is skilled iff j is among row r's k largest M_t AND M_t[r, j] > M_b[r, j].
The union over the first tau steps prunes a weight skilled at more than select_ratio * tau steps.
"""
from __future__ import annotations

import torch


def skilled_mask(weight: torch.Tensor, norm_base: torch.Tensor, norm_target: torch.Tensor, skill_ratio: float) -> torch.Tensor:
    """Bool mask [out, in] of the skilled weights of one layer at one step (computed in float32)."""
    magnitude = weight.detach().abs().float()
    score_target = magnitude * norm_target.to(magnitude.device, torch.float32)
    score_base = magnitude * norm_base.to(magnitude.device, torch.float32)
    k = int(skill_ratio * weight.shape[1])
    mask = torch.zeros_like(score_target, dtype=torch.bool)
    if k > 0:
        top = score_target.topk(k, dim=1, sorted=False).indices
        mask.scatter_(1, top, True)
    return mask & (score_target > score_base)


def union_mask(
    weight: torch.Tensor,
    norms: torch.Tensor,
    skill_ratio: float,
    timesteps: int,
    select_ratio: float = 0.0,
) -> torch.Tensor:
    """Bool mask [out, in]: weights skilled at more than ``select_ratio * timesteps`` of steps 0..timesteps-1.

    norms: float32 [2, steps, in] (index 0 = base, 1 = target), steps >= timesteps.
    """
    if norms.shape[1] < timesteps:
        raise ValueError(f"norms hold {norms.shape[1]} steps, fewer than timesteps={timesteps}")
    count = torch.zeros(weight.shape, dtype=torch.int16, device=weight.device)
    for step in range(timesteps):
        count += skilled_mask(weight, norms[0, step], norms[1, step], skill_ratio)
    return count > select_ratio * timesteps


def union_masks(
    weights: dict[str, torch.Tensor],
    norms: dict[str, torch.Tensor],
    skill_ratio: float,
    timesteps: int,
    select_ratio: float = 0.0,
) -> dict[str, torch.Tensor]:
    """``union_mask`` for every layer: layer name -> bool mask, in the order of ``norms``."""
    return {
        layer: union_mask(weights[layer], layer_norms.to(weights[layer].device), skill_ratio, timesteps, select_ratio)
        for layer, layer_norms in norms.items()
    }
