"""Register hooks for one generation, key every call by (UNet call index, layer name), remove them always.

``trace_steps`` counts the UNet's forward calls with a pre-hook on the UNet: call index t is the
step (0 = first, noisiest). Each selected module gets a forward pre-hook that hands its input to
``on_input(step, name, x)``. ``on_step(step)`` runs before every UNet call (to swap weights), and
``stop_at`` raises ``StopGeneration`` at that UNet call, so a run that needs only the first few
steps' statistics stops there. Like baukit's ``TraceDict``, the trace keeps the layer names in
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
    """State of one traced generation: current UNet call index and layer execution order."""

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
) -> Iterator[StepTrace]:
    """Hook ``unet`` and ``modules`` for the duration of the ``with`` block; yield the ``StepTrace``.

    unet: the module whose calls define the step index.
    modules: name -> module whose input is handed to ``on_input(step, name, x)``.
    on_step: called with the step index before each UNet call.
    stop_at: raise ``StopGeneration`` when the UNet is about to run call index ``stop_at``.
    fixed_step: key all inputs by this step instead of the UNet call index (text encoder).
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

    def make_input_hook(name: str):
        def input_hook(_module, args):
            trace.saw(name)
            if on_input is not None:
                on_input(trace.key_step, name, args[0])

        return input_hook

    try:
        handles.append(unet.register_forward_pre_hook(unet_pre_hook))
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(make_input_hook(name)))
        yield trace
    finally:
        for handle in handles:
            handle.remove()
