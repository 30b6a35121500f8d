"""Register hooks for one generation, key every call by (denoiser call index, layer name), remove them always.

``trace_steps`` counts the denoiser's forward calls (a UNet or a transformer) with a pre-hook on it:
call index t is the step (0 = first, noisiest). Each selected module gets a forward pre-hook that hands
its input (or the scored columns of it) to ``on_input(step, name, x)``. ``on_step(step)`` runs before
every denoiser call (to swap weights), and ``stop_at`` raises ``StopGeneration`` at that call, so a run
that needs only the first few steps' statistics stops there. Like baukit's ``TraceDict``, the trace keeps the layer names in
execution order.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn


class StopGeneration(Exception):
    """Raised from a hook to end a generation once the needed steps are done."""


class StepTrace:
    """State of one traced generation: current denoiser call index and layer execution order."""

    def __init__(self, fixed_step: int | None = None) -> None:
        self.step = -1
        self.fixed_step = fixed_step
        self.layer_order: list[str] = []
        self._seen: set[str] = set()

    @property
    def key_step(self) -> int:
        """The step index that data seen now is keyed by."""
        return self.fixed_step if self.fixed_step is not None else self.step

    def saw(self, name: str) -> None:
        """Record that ``name`` ran (for the execution order)."""
        if name not in self._seen:
            self._seen.add(name)
            self.layer_order.append(name)


@contextmanager
def trace_steps(
    unet: nn.Module,
    modules: dict[str, nn.Module],
    on_input: Callable[[int, str, torch.Tensor], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    stop_at: int | None = None,
    fixed_step: int | None = None,
    columns: dict[str, slice] | None = None,
) -> Iterator[StepTrace]:
    """Hook ``unet`` and ``modules`` for the duration of the ``with`` block; yield the ``StepTrace``.

    unet: the denoiser (UNet or transformer), whose calls define the step index.
    modules: name -> module whose input is handed to ``on_input(step, name, x)``.
    on_step: called with the step index before each denoiser call.
    stop_at: raise ``StopGeneration`` when the denoiser is about to run call index ``stop_at``.
    fixed_step: key all inputs by this step instead of the denoiser call index (text encoders).
    columns: name -> the input columns handed on for that module (``x[..., columns]``); all by default.
    The hooks are removed on exit, also when the block raises.
    """
    trace = StepTrace(fixed_step)
    handles = []

    def unet_pre_hook(_module, _args):
        trace.step += 1
        if stop_at is not None and trace.step >= stop_at:
            raise StopGeneration(trace.step)
        if on_step is not None:
            on_step(trace.step)

    def make_input_hook(name: str, part: slice | None):
        def input_hook(_module, args):
            trace.saw(name)
            if on_input is not None:
                on_input(trace.key_step, name, args[0] if part is None else args[0][..., part])

        return input_hook

    try:
        handles.append(unet.register_forward_pre_hook(unet_pre_hook))
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(make_input_hook(name, (columns or {}).get(name))))
        yield trace
    finally:
        for handle in handles:
            handle.remove()
