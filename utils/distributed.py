"""The process group of a run under ``accelerate launch`` (or torchrun): one process without a launcher.

A launched run (``WORLD_SIZE`` > 1 in the environment) is driven by accelerate's ``PartialState``, built
on first use (``process_device`` builds it with the run's device, so a CPU run uses gloo and a GPU run
nccl with one GPU per process). Without a launcher nothing here imports accelerate or initialises
``torch.distributed``: rank 0 of 1, every collective a no-op.

The recording scripts use it so: each process records its contiguous share of the prompt pairs
(``share_bounds``), the float32 sums are added across processes (``all_reduce_sum``, every key in sorted
order on every rank), the main process alone decides whether stored norms are reused (``main_decides``)
and alone writes files (``is_main``), and ``finish`` keeps every process until all are done.
"""
from __future__ import annotations

import os
from typing import Any, Sequence, TypeVar

import torch

T = TypeVar("T")

_CPU: bool | None = None  # the device kind the process group was asked for (set by process_device)


def launched() -> bool:
    """Whether this process is one of several started by a launcher (accelerate launch, torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _state():
    """accelerate's PartialState (built once; gloo when the run's device is the CPU or no GPU is visible)."""
    from accelerate import PartialState

    cpu = _CPU if _CPU is not None else not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def process_device(device_name: str) -> torch.device:
    """This process's device for ``--device device_name``: the launcher's GPU of this process (cuda:LOCAL_RANK)
    for ``auto`` / ``cuda`` in a launched run, else ``resolve_device`` (which checks the name)."""
    global _CPU
    from utils.model_loading import resolve_device

    device = resolve_device(device_name)
    if not launched():
        return device
    if _CPU is None:
        _CPU = device.type != "cuda"
    state = _state()
    if device_name in ("auto", "cuda") and state.device.type == "cuda":
        return state.device
    return device


def rank() -> int:
    """This process's index (0 without a launcher)."""
    return int(_state().process_index) if launched() else 0


def world_size() -> int:
    """The number of processes (1 without a launcher)."""
    return int(_state().num_processes) if launched() else 1


def is_main() -> bool:
    """Whether this is the process that writes files and prints (rank 0)."""
    return rank() == 0


def share_bounds(count: int, index: int | None = None, processes: int | None = None) -> tuple[int, int]:
    """(start, stop) of process ``index``'s contiguous share of ``count`` items among ``processes`` (default:
    this process of this run). Shares differ by at most one item, the larger ones first (accelerate's
    ``split_between_processes`` rule), so rank 0 holds the first items."""
    index = rank() if index is None else index
    processes = world_size() if processes is None else processes
    if processes < 1 or not 0 <= index < processes:
        raise ValueError(f"process {index} of {processes}")
    size, extra = divmod(count, processes)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def share(items: Sequence[T], index: int | None = None, processes: int | None = None) -> Sequence[T]:
    """This process's contiguous part of ``items`` (all of them without a launcher); see share_bounds."""
    start, stop = share_bounds(len(items), index, processes)
    return items[start:stop]


def _collective_device() -> torch.device:
    """Where the process group's tensors must lie: the process's GPU under nccl, the CPU under gloo."""
    state = _state()
    return state.device if state.backend == "nccl" else torch.device("cpu")


def all_reduce_sum(tensors: dict[Any, torch.Tensor]) -> dict[Any, torch.Tensor]:
    """Add every process's ``tensors`` in place (each key in sorted-key order, the same on every rank) and
    return the dict; every process then holds the sums. A no-op without a launcher.

    Every process must hold the same keys with the same shapes: a run whose processes differ raises
    RuntimeError on every rank (checked with one small collective first), never a mixed sum.
    """
    if not launched():
        return tensors
    import torch.distributed as dist

    keys = sorted(tensors)
    device = _collective_device()
    numel = sum(int(tensors[k].numel()) for k in keys)
    signature = torch.tensor([len(keys), numel, -len(keys), -numel], dtype=torch.int64, device=device)
    dist.all_reduce(signature, op=dist.ReduceOp.MAX)
    if signature[0] != -signature[2] or signature[1] != -signature[3]:
        raise RuntimeError("the processes recorded different layers or steps; their statistics cannot be added")
    for key in keys:
        tensor = tensors[key]
        if tensor.device == device:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        else:  # e.g. CPU statistics under nccl: reduce a copy on the group's device
            moved = tensor.to(device)
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            tensor.copy_(moved)
    return tensors


def gather(items: list) -> list:
    """Every process's ``items``, concatenated in rank order, on every process (``items`` without a launcher)."""
    if not launched():
        return items
    from accelerate.utils import gather_object

    _state()  # the process group gather_object uses
    return gather_object(items)


def main_decides(flag: bool) -> bool:
    """The main process's ``flag`` on every process (a broadcast from rank 0); ``flag`` itself without a launcher."""
    if not launched():
        return flag
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier() -> None:
    """Wait until every process gets here (nothing without a launcher)."""
    if launched():
        _state().wait_for_everyone()


def finish() -> None:
    """End of a launched script: wait for every process, then close the process group (nothing without a launcher)."""
    if not launched():
        return
    barrier()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
