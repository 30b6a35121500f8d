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

from utils.storage import load_tensors, read_metadata, save_tensors


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


def reusable(path: str | Path, fingerprint: dict[str, Any], steps_needed: int | None) -> tuple[bool, str]:
    """Whether the norms at ``path`` fit this run: (ok, reason when not).

    steps_needed: number of leading steps the run needs, or None for every UNet call.
    """
    path = Path(path)
    if not path.is_file():
        return False, "no norms recorded yet"
    try:
        meta = read_metadata(path)
    except Exception as err:  # unreadable or foreign file
        return False, f"unreadable norms file ({err.__class__.__name__})"
    stored = meta.get("fingerprint")
    if stored != fingerprint:
        changed = sorted(k for k in set(fingerprint) | set(stored or {}) if (stored or {}).get(k) != fingerprint.get(k))
        return False, f"stored norms were recorded with different {', '.join(changed)}"
    if steps_needed is None and not meta.get("complete"):
        return False, f"stored norms cover only {meta.get('num_steps')} steps, every step is needed"
    if steps_needed is not None and int(meta.get("num_steps", 0)) < steps_needed and not meta.get("complete"):
        return False, f"stored norms cover {meta.get('num_steps')} steps, {steps_needed} are needed"
    return True, "stored norms match"


def load_norms(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(layer -> [2, steps, in] in execution order, metadata)."""
    tensors, meta = load_tensors(path, device)
    return {layer: tensors[layer] for layer in meta["layers"]}, meta
