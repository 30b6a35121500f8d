"""Accumulate the paper's activation statistics per (step, layer) on the model's device in float32.

For an input X of a scored Linear, flattened to rows [batch * tokens, in], every row is
L2-normalised and S[j] += sum over rows of X[:, j]^2 (both CFG halves included). Rows are summed
separately per prompt group (0 = base, 1 = target), so base and target prompts can share a batch.
The activation norm is n = sqrt(S).
"""
from __future__ import annotations

import torch


def normalised_column_sums(x: torch.Tensor) -> torch.Tensor:
    """[batch, rows, in] activations -> float32 [batch, in]: sum over rows of (x / ||row||)^2.

    Rows are divided by max(||row||, 1e-12) (``F.normalize`` semantics). A float32 input is squared
    once and the rows are weighted by 1 / ||row||^2 in a batched matrix product (the fastest form
    on CPUs). A float16 / bfloat16 input is never copied to float32 and never squared in its own
    dtype (it could overflow): both norms are reduced in float32 inside the kernels, and the only
    temporary is the normalised input, whose entries lie in [-1, 1].
    """
    if x.dtype not in (torch.float16, torch.bfloat16):
        x = x.float()  # no copy for float32
        squares = x * x
        weights = squares.sum(dim=-1).clamp_min_(1e-24).reciprocal_()  # [batch, rows]
        return torch.bmm(weights.unsqueeze(1), squares).squeeze(1)
    inverse = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32).clamp_min_(1e-12).reciprocal_()
    inverse.clamp_max_(torch.finfo(x.dtype).max)  # a zero row stays zero (0 * max, not 0 * inf)
    unit_rows = x * inverse.to(x.dtype)
    return torch.linalg.vector_norm(unit_rows, dim=1, dtype=torch.float32).square_()


class ActivationNormRecorder:
    """Callable ``(step, layer, x)`` hook target holding S per (step, layer) as a [groups, in] tensor."""

    def __init__(self, num_groups: int = 2) -> None:
        self.num_groups = num_groups
        self.sums: dict[tuple[int, str], torch.Tensor] = {}
        self._groups: torch.Tensor | None = None
        self._row_groups: dict[tuple[torch.device, int], torch.Tensor] = {}

    def set_batch_groups(self, groups: list[int]) -> None:
        """Group id of each prompt of the next pipeline call (in prompt order)."""
        self._groups = torch.tensor(groups, dtype=torch.long)
        self._row_groups = {}

    def _groups_for(self, device: torch.device, batch: int) -> torch.Tensor:
        """Group id of each sample of a UNet batch, cached on ``device`` (one copy per call, not per hook)."""
        key = (device, batch)
        if key not in self._row_groups:
            # The pipeline batch is the prompt list repeated (uncond half, cond half with CFG).
            self._row_groups[key] = self._groups.repeat(batch // self._groups.numel()).to(device)
        return self._row_groups[key]

    def __call__(self, step: int, layer: str, x: torch.Tensor) -> None:
        if self._groups is None:
            raise RuntimeError("set_batch_groups must be called before a traced generation")
        batch = x.shape[0]
        column_sums = normalised_column_sums(x.reshape(batch, -1, x.shape[-1]))
        groups = self._groups_for(x.device, batch)
        key = (step, layer)
        acc = self.sums.get(key)
        if acc is None:
            acc = self.sums[key] = torch.zeros(self.num_groups, x.shape[-1], dtype=torch.float32, device=x.device)
        acc.index_add_(0, groups, column_sums)

    def num_steps(self) -> int:
        """Number of steps seen (max step index + 1)."""
        return 1 + max((step for step, _ in self.sums), default=-1)

    def norms(self, layer_order: list[str]) -> dict[str, torch.Tensor]:
        """layer -> float32 tensor [groups, steps, in] of n = sqrt(S), layers in ``layer_order``."""
        steps = self.num_steps()
        out = {}
        for layer in layer_order:
            per_step = [self.sums[(t, layer)] for t in range(steps)]
            out[layer] = torch.stack(per_step, dim=1).sqrt()
        return out
