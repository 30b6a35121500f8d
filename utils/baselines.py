"""Load the edited model of a concept-erasure method (ours or a baseline) for the benchmarks.

Every method starts from a diffusers Stable Diffusion model (``model_id``) and applies its
checkpoint, given as an explicit path:

| method             | checkpoint                                                                  |
|--------------------|-----------------------------------------------------------------------------|
| ``sd``             | none: the unedited model                                                    |
| ``concept-prune``  | our ``prune_mask.safetensors`` (weights set to zero)                         |
| ``uce``, ``esd``   | a UNet state dict in diffusers naming (.pt/.pth/.bin/.safetensors), whole or partial |
| ``concept-ablation`` | a ``delta.bin``: ``{"unet": {...}, "text_encoder": {...}}`` partial state dicts |
| ``fmn``            | a diffusers folder: a whole pipeline (model_index.json) or a UNet folder     |
| ``revived``        | a ``revived.safetensors`` of benchmarking/revival_attack.py: the edit it attacked, then the attack |

Values are copied into the model's existing parameters (cast to its dtype and device), after
every key and shape has been checked, so a bad checkpoint changes nothing.

Checking before any work: ``check_edit(method, ckpt)`` reads the checkpoint (readable, not
truncated, the method's format) without loading a model, and ``check_edit_fits(check, model_id)``
compares its tensor names and shapes with a shape-only copy of the model's component (built from
its config on the ``meta`` device, no weights read). The benchmarks run both before the first
image, so a mask of another model or a broken file is refused at once, not after hours. Pickled files are
read with ``torch.load(weights_only=True)``: a file holding code is refused, never executed.

Example::

    pipe, info = load_edited_pipeline("uce", "uce-van-gogh.safetensors", "CompVis/stable-diffusion-v1-4",
                                      torch.device("cuda"), torch.float16)
"""
from __future__ import annotations

import importlib
import json
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from utils.config import same_model
from utils.errors import UsageError
from utils.model_loading import dtype_name, load_pipeline

log = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
# Prefixes and block names of the original LDM / CompVis checkpoint naming (not diffusers).
LDM_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "cond_stage_model.", "first_stage_model.", "model_ema.")
LDM_BLOCKS = ("input_blocks.", "middle_block.", "output_blocks.")
# Buffers that older library versions saved in state dicts and newer modules no longer keep.
IGNORABLE_SUFFIXES = ("position_ids",)
# Wrapper prefixes whose presence depends on the library version (CLIPTextModel's "text_model.").
LEGACY_PREFIXES = ("text_model.",)
DELTA_PARTS = ("unet", "text_encoder")


# ---------------------------------------------------------------- reading checkpoint files


def _torch_load(path: Path, mmap: bool = False) -> Any:
    """Read a pickled torch file safely (weights_only, onto the cpu); UsageError if it holds code or is unreadable.

    mmap: map the tensors' data instead of reading it (zip-format files only): for checks that need shapes only.
    """
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():  # corrupt or not a torch file, rather than code
            raise UsageError(f"{path} could not be read as a torch checkpoint (unpickling failed); check the file") from None
        raise UsageError(
            f"{path} holds objects other than tensors, which are refused for safety (weights_only); "
            "re-save it as a plain dict of tensors (torch.save(unet.state_dict(), path)) or as .safetensors"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise UsageError(f"{path} could not be read as a torch checkpoint ({first}); check the file") from None


def _check_tensor_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Return ``obj`` as a flat name -> tensor dict (unwrapping ``{"state_dict": ...}``); UsageError otherwise."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UsageError(f"{path} holds a {type(obj).__name__}, not a state dict; pass a file saved from a dict of tensors")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UsageError(f"{path} entry {key!r} is a {type(value).__name__}, not a tensor; pass a flat state dict (name -> tensor)")
    if not obj:
        raise UsageError(f"{path} holds no tensors; pass the method's saved weights")
    return obj


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (name -> tensor, on the cpu) from a ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` file.

    Pickled files are read with ``weights_only=True``. Raises UsageError for a missing file, an
    unknown suffix, a file holding code or non-tensor entries, or an empty dict.
    """
    path = _state_dict_path(path)
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _check_tensor_dict(load_file(str(path), device="cpu"), path)
        except (SafetensorError, OSError) as err:
            raise UsageError(f"{path} is not a readable safetensors file ({str(err)[:160]}); check the file") from None
    return _check_tensor_dict(_torch_load(path), path)


def _state_dict_path(path: str | Path) -> Path:
    """``path`` as an existing file with a state-dict suffix; UsageError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist; pass the path of the method's saved weights with --ckpt_name")
    suffix = path.suffix.lower()
    if suffix != SAFETENSORS_SUFFIX and suffix not in TORCH_SUFFIXES:
        raise UsageError(f"{path} has suffix {suffix or '(none)'}; pass a state dict saved as {', '.join(TORCH_SUFFIXES)} or {SAFETENSORS_SUFFIX}")
    return path


def state_dict_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of a state-dict file, read without loading the values where the format allows.

    A safetensors file's header is read and checked against the file's size (a truncated file is
    refused); a zip-format torch file is memory-mapped. Same errors as ``load_state_dict_file``.
    """
    path = _state_dict_path(path)
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        return {k: tuple(v.shape) for k, v in _check_tensor_dict(_torch_load(path, mmap=True), path).items()}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as err:
        raise UsageError(f"{path} is not a readable safetensors file ({str(err)[:160]}); check the file") from None
    if not shapes:
        raise UsageError(f"{path} holds no tensors; pass the method's saved weights")
    return shapes


# ---------------------------------------------------------------- applying state dicts


def _is_ldm_key(key: str) -> bool:
    """True when ``key`` uses the original LDM/CompVis naming (``model.diffusion_model.input_blocks...``)."""
    return key.startswith(LDM_PREFIXES) or key.startswith(LDM_BLOCKS)


def _normalise_keys(state: dict[str, torch.Tensor], component_name: str) -> dict[str, torch.Tensor]:
    """Strip a leading ``<component_name>.`` from every key; UsageError for LDM naming or a key given twice."""
    prefix = f"{component_name}."
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _is_ldm_key(key):
            raise UsageError(
                f"checkpoint key {key} is in the original LDM/CompVis naming, not diffusers naming; "
                "convert the checkpoint to diffusers format first and pass the converted file"
            )
        name = key.removeprefix(prefix)
        if name in out:
            raise UsageError(f"the checkpoint holds {name} both with and without the {prefix} prefix; keep one of them")
        out[name] = value
    return out


def _find_key(own: dict[str, torch.Tensor], key: str) -> str | None:
    """The module's name for checkpoint ``key``: itself, or with a legacy wrapper prefix removed or added."""
    if key in own:
        return key
    for prefix in LEGACY_PREFIXES:  # e.g. CLIPTextModel keys are "text_model.*" in transformers 4, bare in 5
        for candidate in (key.removeprefix(prefix), prefix + key):
            if candidate != key and candidate in own:
                return candidate
    return None


def _matched_names(own: dict[str, tuple[int, ...]], state: dict[str, tuple[int, ...]], component_name: str, class_name: str) -> dict[str, str]:
    """Checkpoint key -> the module's tensor name, for keys and shapes given as name -> shape; UsageError at the
    first unknown key or wrong shape. Keys ending in ``IGNORABLE_SUFFIXES`` that the module lacks are left out."""
    names = {}
    for key, shape in state.items():
        name = _find_key(own, key)
        if name is None:
            if key.endswith(IGNORABLE_SUFFIXES):
                log.info("skipping %s: the %s does not keep this buffer", key, component_name)
                continue
            raise UsageError(
                f"checkpoint key {key} does not exist in the {component_name} ({class_name}); "
                "use a checkpoint made for this model, in diffusers naming"
            )
        if tuple(shape) != tuple(own[name]):
            raise UsageError(
                f"checkpoint key {key} has shape {tuple(shape)} but the {component_name}'s is {tuple(own[name])}; "
                "use a checkpoint made for this model"
            )
        names[key] = name
    return names


def _shapes(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in tensors.items()}


def _checked_targets(module: torch.nn.Module, state: dict[str, torch.Tensor], component_name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pair each tensor of ``state`` with the module's tensor of that name; UsageError at the first unknown key or wrong shape.

    Keys ending in ``IGNORABLE_SUFFIXES`` that the module lacks (old saved buffers) are skipped.
    Returns (module tensor, checkpoint tensor) pairs.
    """
    own = module.state_dict(keep_vars=True)
    names = _matched_names(_shapes(own), _shapes(state), component_name, type(module).__name__)
    return [(own[name], state[key]) for key, name in names.items()]


@torch.no_grad()
def apply_partial_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], component_name: str) -> int:
    """Copy ``state`` (whole or partial, name -> tensor) into ``module``'s tensors in place; return how many were copied.

    A ``<component_name>.`` prefix on the keys is stripped, and CLIP's ``text_model.`` prefix is
    matched whichever transformers version wrote it. Every key must name a tensor of the module
    with the same shape (checked for all keys before anything is copied); keys in LDM naming are
    refused. Values are cast to each target's dtype and device.
    """
    pairs = _checked_targets(module, _normalise_keys(state, component_name), component_name)
    for target, value in pairs:
        target.copy_(value.to(device=target.device, dtype=target.dtype))
    return len(pairs)


def _counts(state: dict[str, torch.Tensor], copied: int) -> dict[str, int]:
    """Info-dict entry for one component: tensors copied and values in the checkpoint."""
    return {"tensors": copied, "values": int(sum(v.numel() for v in state.values()))}


# ---------------------------------------------------------------- checkpoint arguments


def _require_path(ckpt: str | None, method: str, folder: bool = False) -> Path:
    """The checkpoint path of ``method`` as an existing file (or folder); UsageError when missing."""
    what = "diffusers folder" if folder else "file"
    if ckpt is None:
        raise UsageError(f"method {method} needs its checkpoint {what}; pass it with --ckpt_name PATH")
    path = Path(ckpt)
    if not (path.is_dir() if folder else path.is_file()):
        raise UsageError(f"checkpoint {path} for method {method} does not exist or is not a {what}; pass an existing one with --ckpt_name")
    return path


# ---------------------------------------------------------------- one loader per method
# Each loader takes (ckpt, model_id, device, dtype, safety_checker), checks ``ckpt`` before loading
# anything, and returns (pipeline, extra info: at least "changed").


def _load_sd(ckpt, model_id, device, dtype, safety_checker):
    """The unedited model; ``ckpt`` must be None."""
    if ckpt is not None:
        raise UsageError("method sd is the unedited model and takes no checkpoint; drop --ckpt_name or pick another method")
    return load_pipeline(model_id, device, dtype, safety_checker), {"changed": {}}


def _read_prune_mask(ckpt) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(parameter name -> bool mask, metadata) of our prune mask ``ckpt``; UsageError for anything else."""
    from utils.pruning import load_prune_mask

    path = _require_path(ckpt, "concept-prune")
    hint = "pass the mask written by wanda/save_union_over_time.py"
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        raise UsageError(f"{path} is not a prune_mask.safetensors file; {hint}")
    masks, meta = load_prune_mask(path)  # refuses an unreadable, foreign or non-bool file in one sentence
    component = meta.get("component", "unet")
    if not isinstance(component, str) or not component.isidentifier():
        raise UsageError(f"{path} names component {component!r}, which is not a pipeline component; {hint}")
    return masks, meta


def _load_concept_prune(ckpt, model_id, device, dtype, safety_checker):
    """The base model with our prune mask applied (masked weights set to zero)."""
    from utils.pruning import apply_prune_mask

    masks, meta = _read_prune_mask(ckpt)
    mask_model = meta.get("model_id")
    if mask_model and not same_model(str(mask_model), model_id):
        log.warning("the prune mask %s was made for %s but is applied to %s", ckpt, mask_model, model_id)
    component = meta.get("component", "unet")
    pipe = load_pipeline(model_id, device, dtype, safety_checker)
    if not isinstance(getattr(pipe, component, None), torch.nn.Module):
        raise UsageError(f"the prune mask {ckpt} is for component {component}, which {model_id} does not have; use the model the mask was made for")
    zeroed = apply_prune_mask(pipe, masks, component, str(meta.get("fill", "zero")), int(meta.get("fill_seed", 0)), float(meta.get("fill_scale", 1.0)))
    total = sum(p.numel() for p in getattr(pipe, component).parameters())
    changed = {component: {"tensors": len(masks), "pruned_weights": zeroed, "fraction_of_component": zeroed / total}}
    return pipe, {"changed": changed, "mask_model_id": mask_model, "fill": str(meta.get("fill", "zero"))}


def _read_revival(ckpt) -> tuple[dict, dict, dict[str, Any]]:
    """(located, values, metadata) of a revival file, with the edit it attacked named in its metadata."""
    from utils.revived import MAKE_REVIVAL, load_revival

    located, values, meta = load_revival(_require_path(ckpt, "revived"))
    method, edit = meta.get("edit_method"), meta.get("edit_ckpt")
    if method not in METHODS or method in ("sd", "revived"):
        raise UsageError(f"{ckpt} names the edit {method!r}, which is not an edit this version can load; {MAKE_REVIVAL}")
    if not isinstance(edit, str) or not Path(edit).exists():
        raise UsageError(f"{ckpt} attacked the edit {edit!r}, which is not here any more; run the attack again on an existing edit")
    return located, values, meta


def _load_revived(ckpt, model_id, device, dtype, safety_checker):
    """The edit that the revival file attacked (its method and checkpoint), then the attack's values written."""
    from neuron_receivers.hook_variants import get_variant, scored_weights
    from utils.recording import pipeline_sites
    from utils.revived import apply_revival

    located, values, meta = _read_revival(ckpt)
    pipe, info = METHODS[meta["edit_method"]](meta["edit_ckpt"], model_id, device, dtype, safety_checker)
    component, sites = pipeline_sites(pipe, get_variant(str(meta.get("hook_module", "unet"))), meta.get("streams") or "both")
    written = apply_revival(scored_weights(sites), located, values)
    info["changed"].setdefault(component, {})["revived_weights"] = written
    return pipe, {**info, "edit_method": meta["edit_method"], "edit_ckpt": meta["edit_ckpt"], "attack": meta.get("attack", {})}


def _load_unet_state_dict(method: str) -> Callable:
    """A loader for methods that save (part of) the UNet as a diffusers-named state dict (UCE, ESD)."""

    def load(ckpt, model_id, device, dtype, safety_checker):
        """The base model with the method's UNet weights copied in."""
        path = _require_path(ckpt, method)
        state = load_state_dict_file(path)
        pipe = load_pipeline(model_id, device, dtype, safety_checker)
        copied = apply_partial_state_dict(pipe.unet, state, "unet")
        return pipe, {"changed": {"unet": _counts(state, copied)}}

    load.__name__ = f"_load_{method}"
    return load


def _read_delta(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The ``unet`` / ``text_encoder`` parts of a Concept-Ablation ``delta.bin``; UsageError for anything else."""
    delta = _torch_load(path)
    if not isinstance(delta, dict):
        raise UsageError(f"{path} holds a {type(delta).__name__}, not a delta dict; pass the delta.bin saved by Concept Ablation")
    modifier = delta.get("modifier_token")
    if modifier:
        raise UsageError(f"{path} has a modifier_token part (learned token embeddings), which is not supported; pass a delta.bin trained without modifier tokens")
    unknown = sorted(str(k) for k in delta if k not in DELTA_PARTS and k != "modifier_token")
    if unknown:
        raise UsageError(f"{path} has parts {unknown}, but a delta.bin may only hold {list(DELTA_PARTS)}; pass the delta.bin saved by Concept Ablation")
    parts = {name: delta[name] for name in DELTA_PARTS if delta.get(name)}
    if not parts:
        raise UsageError(f"{path} has no non-empty unet or text_encoder part; pass the delta.bin saved by Concept Ablation")
    return {name: _check_tensor_dict(part, Path(f"{path}[{name}]")) for name, part in parts.items()}


def _load_concept_ablation(ckpt, model_id, device, dtype, safety_checker):
    """The base model with a Concept-Ablation ``delta.bin`` (UNet and/or text-encoder weights) copied in."""
    path = _require_path(ckpt, "concept-ablation")
    parts = _read_delta(path)
    pipe = load_pipeline(model_id, device, dtype, safety_checker)
    for name, state in parts.items():  # check every part before changing any
        _checked_targets(getattr(pipe, name), _normalise_keys(state, name), name)
    changed = {name: _counts(state, apply_partial_state_dict(getattr(pipe, name), state, name)) for name, state in parts.items()}
    return pipe, {"changed": changed}


def _module_counts(module: torch.nn.Module) -> dict[str, int]:
    """Info-dict entry for a wholly loaded component: its tensors and values."""
    state = module.state_dict()
    return {"tensors": len(state), "values": int(sum(v.numel() for v in state.values()))}


def _load_fmn(ckpt, model_id, device, dtype, safety_checker):
    """FMN: a whole edited pipeline folder, or a UNet folder whose weights replace the base model's UNet."""
    folder = _require_path(ckpt, "fmn", folder=True)
    if (folder / "model_index.json").is_file():
        log.info("fmn: loading the whole edited pipeline from %s (%s is not used)", folder, model_id)
        pipe = load_pipeline(str(folder), device, dtype, safety_checker)
        components = {name: m for name, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
        return pipe, {"changed": {name: _module_counts(m) for name, m in components.items()}, "source": "pipeline folder"}
    weights = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    if not ((folder / "config.json").is_file() and any((folder / w).is_file() for w in weights)):
        raise UsageError(
            f"{folder} is neither a diffusers pipeline folder (model_index.json) nor a UNet folder "
            "(config.json + diffusion_pytorch_model.safetensors); pass the folder FMN saved"
        )
    from diffusers import UNet2DConditionModel

    try:
        unet = UNet2DConditionModel.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError) as err:
        raise UsageError(f"could not load the UNet folder {folder} ({str(err).splitlines()[0][:160]}); check its files") from None
    state = unet.state_dict()
    del unet
    pipe = load_pipeline(model_id, device, dtype, safety_checker)
    copied = apply_partial_state_dict(pipe.unet, state, "unet")
    return pipe, {"changed": {"unet": _counts(state, copied)}, "source": "unet folder"}


METHODS: dict[str, Callable] = {
    "sd": _load_sd,
    "concept-prune": _load_concept_prune,
    "uce": _load_unet_state_dict("uce"),
    "esd": _load_unet_state_dict("esd"),
    "concept-ablation": _load_concept_ablation,
    "fmn": _load_fmn,
    "revived": _load_revived,
}


# ---------------------------------------------------------------- checking before any model is loaded


@dataclass(frozen=True)
class EditCheck:
    """A method's checkpoint, read and checked without loading a model.

    shapes: component -> checkpoint key -> shape of every tensor the edit writes (keys as the
    loader matches them); whole_pipeline: True for an FMN pipeline folder, which replaces the model.
    """

    method: str
    ckpt: str | None
    shapes: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    whole_pipeline: bool = False
    exact_names: bool = False  # concept-prune: mask names are parameter names, no legacy prefixes


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; UsageError naming ``what`` when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} could not be read as JSON ({str(err)[:120]}); pass {what}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} holds a JSON {type(data).__name__}, not an object; pass {what}")
    return data


def _fmn_unet_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of an FMN UNet folder's weights (config.json + diffusion_pytorch_model.*), read without loading them."""
    what = "the folder FMN saved"
    _read_json(folder / "config.json", what)
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        if (folder / name).is_file():
            return state_dict_shapes(folder / name)
    raise UsageError(f"{folder} has no diffusion_pytorch_model.safetensors or .bin; pass {what}")


def _check_fmn(ckpt) -> EditCheck:
    """FMN: a pipeline folder (model_index.json and a readable unet/) or a UNet folder whose tensors are listed."""
    folder = _require_path(ckpt, "fmn", folder=True)
    if (folder / "model_index.json").is_file():
        _read_json(folder / "model_index.json", "the pipeline folder FMN saved")
        if (folder / "unet").is_dir():
            _fmn_unet_shapes(folder / "unet")
        return EditCheck("fmn", str(ckpt), {}, whole_pipeline=True)
    if not (folder / "config.json").is_file():
        raise UsageError(
            f"{folder} is neither a diffusers pipeline folder (model_index.json) nor a UNet folder "
            "(config.json + diffusion_pytorch_model.safetensors); pass the folder FMN saved"
        )
    return EditCheck("fmn", str(ckpt), {"unet": _normalise_keys(_fmn_unet_shapes(folder), "unet")})


def _check_unet_state_dict(method: str, ckpt) -> EditCheck:
    """UCE / ESD: the tensors of a UNet state dict in diffusers naming."""
    return EditCheck(method, str(ckpt), {"unet": _normalise_keys(state_dict_shapes(_require_path(ckpt, method)), "unet")})


def _check_concept_ablation(ckpt) -> EditCheck:
    """Concept Ablation: the tensors of each part of a delta.bin."""
    parts = _read_delta(_require_path(ckpt, "concept-ablation"))
    return EditCheck("concept-ablation", str(ckpt), {name: _normalise_keys(_shapes(state), name) for name, state in parts.items()})


def _check_concept_prune(ckpt) -> EditCheck:
    """Concept Prune: the masks of our prune-mask file, for the component its metadata names."""
    masks, meta = _read_prune_mask(ckpt)
    return EditCheck("concept-prune", str(ckpt), {meta.get("component", "unet"): _shapes(masks)}, exact_names=True)


def check_edit(method: str, ckpt: str | None) -> EditCheck:
    """Read and check ``method``'s checkpoint ``ckpt`` without loading any model; UsageError for a bad one.

    Reads a prune mask or delta.bin whole (they are small) and only the header of a safetensors
    state dict; a torch state dict is memory-mapped.
    """
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; pick one of {', '.join(METHODS)}")
    if method == "sd":
        if ckpt is not None:
            raise UsageError("method sd is the unedited model and takes no checkpoint; drop --ckpt_name or pick another method")
        return EditCheck("sd", None)
    if method == "concept-prune":
        return _check_concept_prune(ckpt)
    if method == "concept-ablation":
        return _check_concept_ablation(ckpt)
    if method == "fmn":
        return _check_fmn(ckpt)
    if method == "revived":
        _, _, meta = _read_revival(ckpt)
        underlying = check_edit(meta["edit_method"], meta["edit_ckpt"])
        return EditCheck("revived", str(ckpt), underlying.shapes, underlying.whole_pipeline, underlying.exact_names)
    return _check_unet_state_dict(method, ckpt)


def shape_only_component(model_id: str, component: str) -> torch.nn.Module:
    """``model_id``'s ``component`` built from its config on the ``meta`` device: names and shapes, no weights read.

    Raises UsageError when the model has no such component or its configs cannot be read.
    """
    from accelerate import init_empty_weights
    from diffusers import DiffusionPipeline

    hint = "pass a diffusers Stable Diffusion folder or hub id with --model_id"
    try:
        index = DiffusionPipeline.load_config(model_id)
    except (OSError, ValueError) as err:
        raise UsageError(f"could not read the model_index.json of {model_id} ({(str(err).splitlines() or [''])[0][:160]}); {hint}") from None
    entry = index.get(component)
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
        raise UsageError(f"{model_id} has no {component} component; use a checkpoint made for this model")
    library, class_name = entry
    try:
        cls = getattr(importlib.import_module(library), class_name)
        with init_empty_weights():
            if library == "diffusers":
                return cls.from_config(cls.load_config(model_id, subfolder=component))
            from transformers import AutoConfig

            return cls(AutoConfig.from_pretrained(model_id, subfolder=component))
    except (ImportError, AttributeError, OSError, ValueError, TypeError) as err:
        raise UsageError(f"could not read the {component} config of {model_id} ({(str(err).splitlines() or [''])[0][:160]}); {hint}") from None


def check_edit_fits(check: EditCheck, model_id: str) -> None:
    """Raise UsageError unless every tensor of ``check`` names a tensor of ``model_id`` with the same shape.

    Builds only the components the edit touches, without their weights (``shape_only_component``).
    Nothing to check for ``sd`` or a whole FMN pipeline folder.
    """
    for component, shapes in check.shapes.items():
        module = shape_only_component(model_id, component)
        own = _shapes(module.state_dict(keep_vars=True))
        if check.exact_names:
            parameters = {name for name, _ in module.named_parameters()}
            own = {name: shape for name, shape in own.items() if name in parameters}
            unknown = next((name for name in shapes if name not in own), None)
            if unknown is not None:
                raise UsageError(
                    f"the mask {check.ckpt} names {unknown}, which the {component} of {model_id} ({type(module).__name__}) "
                    "does not have; use the model the mask was made for"
                )
            wrong = next((name for name, shape in shapes.items() if tuple(shape) != own[name]), None)
            if wrong is not None:
                raise UsageError(
                    f"the mask of {wrong} in {check.ckpt} has shape {tuple(shapes[wrong])}, the model's is {own[wrong]}; "
                    "use the model the mask was made for"
                )
            continue
        _matched_names(own, shapes, component, type(module).__name__)


def load_edited_pipeline(
    method: str,
    ckpt: str | None,
    model_id: str,
    device: torch.device,
    dtype: torch.dtype,
    safety_checker: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Load ``model_id`` edited by ``method``'s checkpoint ``ckpt``; return (pipeline, info).

    The pipeline is on ``device`` in ``dtype``, its progress bar off. ``info`` (JSON-ready, for
    metrics.json) has ``method``, ``ckpt`` (str or None), ``model_id``, ``dtype`` and ``changed``:
    component -> counts (``tensors`` and ``values`` copied; for concept-prune ``tensors``,
    ``pruned_weights`` and ``fraction_of_component``), plus ``mask_model_id`` (concept-prune) or
    ``source`` (fmn). Raises UsageError for an unknown method, a missing or unusable checkpoint,
    or a checkpoint given to ``sd``.
    """
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; pick one of {', '.join(METHODS)}")
    pipe, extra = METHODS[method](ckpt, model_id, device, dtype, safety_checker)
    pipe.set_progress_bar_config(disable=True)
    info = {"method": method, "ckpt": None if ckpt is None else str(ckpt), "model_id": model_id, "dtype": dtype_name(dtype)}
    if method == "fmn" and extra.get("source") == "pipeline folder":
        info["model_id"] = str(ckpt)
        info["base_model_id"] = model_id
    info.update(extra)
    return pipe, info
