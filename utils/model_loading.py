"""Load a diffusers pipeline from a hub id or a local folder, with clear errors for bad ids."""
from __future__ import annotations

from pathlib import Path

import torch

from utils.config import check_model_id
from utils.errors import UsageError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is visible; pass --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name} names GPU {device.index}, but {torch.cuda.device_count()} GPU(s) are visible; pass cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps was asked for but no Apple GPU is available; pass --device cpu")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` -> float16 on CUDA, float32 elsewhere; otherwise the named dtype."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` -> ``float16``."""
    return str(dtype).removeprefix("torch.")


def _dtype_keyword() -> str:
    """``dtype`` for diffusers versions that renamed ``torch_dtype`` (newer than 0.35), else ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def load_pipeline(model_id: str, device: torch.device, dtype: torch.dtype, safety_checker: bool = False):
    """Load a diffusers text-to-image pipeline onto ``device`` in ``dtype``, its progress bar off.

    The safety checker is not loaded unless ``safety_checker`` is True (the paper runs without it);
    the pipeline class is not monkey-patched. Raises UsageError when the model cannot be loaded.
    """
    from diffusers import DiffusionPipeline

    check_model_id(model_id)
    kwargs = {} if safety_checker else {"safety_checker": None, "requires_safety_checker": False}
    try:
        pipe = DiffusionPipeline.from_pretrained(model_id, **{_dtype_keyword(): dtype}, **kwargs)
    except (OSError, ValueError) as err:
        if Path(model_id).is_dir():
            raise UsageError(f"could not load the diffusers folder {model_id} ({str(err).splitlines()[0][:200]}); check its files") from None
        raise UsageError(
            f"could not load {model_id!r} from the Hugging Face hub (offline, unknown id or no access); "
            "download it where the hub is reachable and pass the local folder with --model_id PATH"
        ) from None
    if not hasattr(pipe, "unet"):
        raise UsageError(f"{model_id} is a {type(pipe).__name__}, not a UNet text-to-image pipeline; pass a Stable Diffusion model")
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
