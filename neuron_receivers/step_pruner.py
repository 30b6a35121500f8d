"""Per-step removal (step 2 of the method): at denoiser call t, layer l computes with W * (1 - mask[t][l]).

``StepPruner.on_step`` is the ``on_step`` callback of ``trace.trace_steps``: before UNet call t it
writes the masked weights of step t (masks derived on demand from the norms, never stored for all
steps) and restores the originals at steps without a mask. ``restore`` puts the original weights
back; callers use it in a ``finally``.
"""
from __future__ import annotations

import torch

from utils.pruning import restore_weights, saved_weights, zero_masked
from utils.skilled import skilled_mask


class StepPruner:
    """Swap per-step masked weights into the scored weights during a traced generation."""

    def __init__(self, weights: dict[str, torch.Tensor], norms: dict[str, torch.Tensor], skill_ratio: float, num_steps: int) -> None:
        """weights: layer -> the scored weight, a view of the model's parameter (hook_variants.scored_weights,
        a Session's ``weights()``); norms: layer -> [2, steps, in]; masks apply at steps < num_steps."""
        self.weights = weights
        self.norms = {layer: n.to(self.weights[layer].device) for layer, n in norms.items()}
        self.skill_ratio = skill_ratio
        self.num_steps = min(num_steps, min(n.shape[1] for n in norms.values()))
        self.originals = saved_weights(self.weights, norms)
        self._masked = False

    @torch.no_grad()
    def on_step(self, step: int) -> None:
        """Write the weights for denoiser call ``step``: masked below ``num_steps``, original after."""
        if step < self.num_steps:
            for layer, original in self.originals.items():  # one layer's mask in memory at a time
                norms = self.norms[layer]
                mask = skilled_mask(original, norms[0, step], norms[1, step], self.skill_ratio)
                zero_masked({layer: self.weights[layer]}, {layer: mask}, originals=self.originals)
            self._masked = True
        elif self._masked:
            self.restore()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the original weights back."""
        restore_weights(self.weights, self.originals)
        self._masked = False
