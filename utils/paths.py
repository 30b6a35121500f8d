"""The results layout (no torch import here).

results/<model>/<target>/
    activation_norms.safetensors          step 1 (``activation_norms-<hook>.safetensors`` for other hook variants)
    record_config.yaml                    the resolved config of the recording run (record_config-<hook>.yaml likewise)
    preview/pair_000_base.png, ..._target.png
    removal/<run>/pair_000.png            step 2: before | after, side by side; config.yaml
    pruned/<run>/prune_mask.safetensors   step 3; config.yaml; unet/ with --export_diffusers
results/<model>/multi/<target+target+...>/prune_mask.safetensors, config.yaml
results/benchmarks/<protocol>/<model>/<benchmark>/<subject>/<method>/
    original/<key>.png, edited/<key>.png  images by case number (``<case>_s<seed>`` with several seeds)
    grid.png, metrics.json, config.yaml  original | edited rows, the metrics, the resolved config
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.concepts import slugify


GENERIC_CKPT_NAMES = {"prune_mask", "delta", "unet", "diffusion_pytorch_model", "model", "pytorch_model"}


def model_slug(model_id: str) -> str:
    """Folder name of a model: ``CompVis--stable-diffusion-v1-4`` for a hub id, the folder name for a local path."""
    path = Path(model_id)
    if path.exists():
        return slugify(path.resolve().name)
    return model_id.replace("/", "--")


def concept_dir(res_path: str | Path, model_id: str, target: str) -> Path:
    """``results/<model>/<target>``."""
    return Path(res_path) / model_slug(model_id) / slugify(target)


def _hook_suffix(hook_module: str) -> str:
    return "" if hook_module == "unet" else f"-{hook_module}"


def norms_path(res_path: str | Path, model_id: str, target: str, hook_module: str) -> Path:
    """Where step 1 stores the activation norms of a concept."""
    return concept_dir(res_path, model_id, target) / f"activation_norms{_hook_suffix(hook_module)}.safetensors"


def record_config_path(res_path: str | Path, model_id: str, target: str, hook_module: str) -> Path:
    """Where step 1 writes the resolved config of the run that recorded the norms."""
    return concept_dir(res_path, model_id, target) / f"record_config{_hook_suffix(hook_module)}.yaml"


def run_name(skill_ratio: float, timesteps: int | None, select_ratio: float, hook_module: str, fill: str | None = None) -> str:
    """Folder name of one setting, e.g. ``sr0.01_tau10_sel0`` (``tauall`` when every step counts), with the hook
    variant and the label of a fill other than zero appended (``sr0.01_tau10_sel0_noise0.5``, utils.fills.fill_label)."""
    tau = "all" if timesteps is None else str(timesteps)
    name = f"sr{skill_ratio:g}_tau{tau}_sel{select_ratio:g}"
    name = name if hook_module == "unet" else f"{name}_{hook_module}"
    return name if not fill else f"{name}_{fill}"


def method_tag(method: str, ckpt: str | None) -> str:
    """Folder name of the edited model: ``sd``, or the method and its checkpoint's name."""
    if method == "sd" or not ckpt:
        return method
    path = Path(ckpt)
    name = path.stem if path.is_file() or path.suffix else path.name
    if name in GENERIC_CKPT_NAMES:
        name = path.resolve().parent.name
    return f"{method}-{slugify(name)}"


def benchmark_run_dir(config: dict[str, Any], benchmark: str, subject: str) -> Path:
    """``--out_dir``, else ``<res_path>/benchmarks/<protocol>/<model>/<benchmark>/<subject>/<method>`` (runs of two
    protocols never share a folder; protocol ``project`` when the config names none)."""
    if config.get("out_dir"):
        return Path(config["out_dir"])
    tag = method_tag(config["baseline"], config.get("ckpt_name"))
    protocol = slugify(str(config.get("protocol") or "project"))
    return Path(config["res_path"]) / "benchmarks" / protocol / model_slug(config["model_id"]) / benchmark / slugify(subject) / tag
