"""Load a diffusers text-to-image pipeline of any family (SD 1.x/2.x, SDXL, SD 3.x, PixArt, Flux) from a hub id
or a local folder, by its own class (``DiffusionPipeline`` resolution), with clear errors for bad ids."""
from __future__ import annotations

from pathlib import Path

import torch

from utils.config import check_model_id, pipeline_class_name
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


def _takes_safety_checker(model_id: str) -> bool:
    """Whether the model's pipeline class has a safety checker (True when its class cannot be read yet)."""
    import inspect

    import diffusers

    cls = getattr(diffusers, pipeline_class_name(model_id) or "", None)
    return cls is None or "safety_checker" in inspect.signature(cls.__init__).parameters


def set_scheduler(pipe, name: str | None) -> None:
    """Replace ``pipe.scheduler`` by the diffusers scheduler class ``name`` built from the model's scheduler
    config (None: keep the model's). Raise UsageError for a name that is not a diffusers scheduler."""
    if not name:
        return
    import diffusers
    from diffusers import SchedulerMixin

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise UsageError(f"--scheduler {name} is not a diffusers scheduler class; pass one such as DDIMScheduler or EulerDiscreteScheduler, or leave it unset for the model's own")
    pipe.scheduler = cls.from_config(pipe.scheduler.config)


def load_pipeline(model_id: str, device: torch.device, dtype: torch.dtype, safety_checker: bool = False, scheduler: str | None = None):
    """Load a diffusers text-to-image pipeline onto ``device`` in ``dtype``, its progress bar off.

    The pipeline's own class is used (StableDiffusion, StableDiffusionXL, StableDiffusion3, PixArt, Flux, ...);
    it must have a denoiser (``unet`` or ``transformer``). A pipeline with a safety checker loads without it
    unless ``safety_checker`` is True (the paper runs without it); ``scheduler`` names a diffusers scheduler
    class to sample with (None: the model's own). The pipeline class is not monkey-patched. Raises
    UsageError when the model cannot be loaded or is not a text-to-image pipeline.
    """
    from diffusers import DiffusionPipeline

    from neuron_receivers.hook_variants import denoiser_of

    check_model_id(model_id)
    kwargs = {} if safety_checker or not _takes_safety_checker(model_id) else {"safety_checker": None, "requires_safety_checker": False}
    try:
        pipe = DiffusionPipeline.from_pretrained(model_id, **{_dtype_keyword(): dtype}, **kwargs)
    except (OSError, ValueError) as err:
        if Path(model_id).is_dir():
            raise UsageError(f"could not load the diffusers folder {model_id} ({str(err).splitlines()[0][:200]}); check its files") from None
        raise UsageError(
            f"could not load {model_id!r} from the Hugging Face hub (offline, unknown id or no access); "
            "download it where the hub is reachable and pass the local folder with --model_id PATH"
        ) from None
    try:
        denoiser_of(pipe)
    except ValueError:
        raise UsageError(f"{model_id} is a {type(pipe).__name__}, which has no UNet or transformer denoiser; pass a text-to-image diffusion model") from None
    set_scheduler(pipe, scheduler)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
