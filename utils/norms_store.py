"""The activation-norms file of step 1 and the check that decides whether it may be reused.

File: safetensors, one float32 tensor [2, steps, in] per layer (0 = base, 1 = target, n = sqrt(S)),
keyed by module name; metadata ``fingerprint`` (everything the norms depend on: model, prompts and
seeds, steps, guidance, seed, hook variant, dtype, device type, size, scheduler), ``layers`` (the
execution order), ``num_steps`` (steps recorded), ``complete`` (whether every UNet call was
recorded) and ``config`` (the resolved config of the recording run).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from utils.errors import UsageError
from utils.storage import load_tensors, save_tensors


def save_norms(
    path: str | Path,
    norms: dict[str, torch.Tensor],
    fingerprint: dict[str, Any],
    complete: bool,
    config: dict[str, Any],
) -> None:
    """Write the norms (layer -> [2, steps, in], in execution order) with their metadata, atomically."""
    steps = next(iter(norms.values())).shape[1]
    metadata = {
        "fingerprint": fingerprint,
        "layers": list(norms),
        "num_steps": steps,
        "complete": complete,
        "config": config,
        "format": "concept-prune activation norms v1",
    }
    save_tensors(path, {k: v.float() for k, v in norms.items()}, metadata)


def reusable(path: str | Path, fingerprint: dict[str, Any], steps_needed: int | None, layers: dict[str, int] | None = None) -> tuple[bool, str]:
    """Whether the norms at ``path`` fit this run: (ok, reason when not).

    steps_needed: number of leading steps the run needs, or None for every UNet call.
    layers: the layers the run scores, name -> input width; the file must hold each as a tensor
    [2, num_steps, width] (a damaged or hand-edited file is recorded again, not half used).
    """
    path = Path(path)
    if not path.is_file():
        return False, "no norms recorded yet"
    try:
        meta, shapes = _metadata_and_shapes(path)
    except Exception as err:  # unreadable or foreign file
        return False, f"unreadable norms file ({err.__class__.__name__})"
    stored = meta.get("fingerprint")
    if stored != fingerprint:
        return False, f"stored norms were recorded with different {', '.join(_differences(stored, fingerprint))}"
    steps = meta.get("num_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        return False, "the norms file's step count is missing or damaged"
    problem = _layer_problem(meta.get("layers"), shapes, steps, layers)
    if problem:
        return False, problem
    if steps_needed is None and not meta.get("complete"):
        return False, f"stored norms cover only {steps} steps, every step is needed"
    if steps_needed is not None and steps < steps_needed and not meta.get("complete"):
        return False, f"stored norms cover {steps} steps, {steps_needed} are needed"
    return True, "stored norms match"


def _metadata_and_shapes(path: Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """(decoded metadata, tensor name -> shape) of a safetensors file, without reading the tensors."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
        shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    return {k: json.loads(v) for k, v in raw.items()}, shapes


def _layer_problem(listed: Any, shapes: dict[str, list[int]], steps: int, layers: dict[str, int] | None) -> str | None:
    """Why the file's layers do not fit (a layer missing or of the wrong shape), or None."""
    if not isinstance(listed, list) or not listed or not all(isinstance(name, str) for name in listed):
        return "the norms file's layer list is missing or damaged"
    missing = next((name for name in listed if name not in shapes), None)
    if missing:
        return f"the norms file lacks the layer {missing} it lists"
    if layers is not None and set(listed) != set(layers):
        absent = sorted(set(layers) - set(listed)) or sorted(set(listed) - set(layers))
        return f"the norms file's layers differ from the model's (e.g. {absent[0]})"
    for name in listed:
        width = layers.get(name) if layers is not None else shapes[name][-1]
        if shapes[name] != [2, steps, width]:
            return f"the norms of {name} have shape {shapes[name]}, not [2, {steps}, {width}]"
    return None


def _differences(stored: Any, current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fingerprint entries that differ (``model_content.text_encoder``)."""
    stored = stored if isinstance(stored, dict) else {}
    names = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            names += _differences(old, new, f"{prefix}{key}.")
        else:
            names.append(f"{prefix}{key}")
    return names


def load_norms(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(layer -> [2, steps, in] in execution order, metadata)."""
    tensors, meta = load_tensors(path, device)
    missing = next((layer for layer in meta.get("layers", []) if layer not in tensors), None)
    if missing or not meta.get("layers"):
        raise UsageError(f"norms file {path} lacks {missing or 'its layer list'}; delete it and record the norms again with wanda/wanda.py")
    return {layer: tensors[layer] for layer in meta["layers"]}, meta
