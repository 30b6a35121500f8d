"""Options of the benchmarking/ scripts: YAML defaults (configs/benchmark_config.yaml) + argparse.

Every benchmark shares the sampling options of the wanda scripts and the ``COMMON`` keys
(method, checkpoint, output); each script adds the keys of its own evaluator from ``SPECIFIC``.
The YAML file may hold any key of either table; a script ignores the keys it does not use.
No torch import here, so ``--help`` and bad input answer at once.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from utils.config import (
    FLAGS,
    OPTIONS,
    REPO_ROOT,
    build_parser,
    check_sampling_config,
    load_yaml_config,
    merge_options,
)
from utils.errors import UsageError

BENCH_CONFIG = REPO_ROOT / "configs" / "benchmark_config.yaml"
SAMPLING_KEYS = ("model_id", "num_inference_steps", "guidance_scale", "seed", "height", "width", "device", "dtype", "batch_size", "res_path")
METHOD_NAMES = ("concept-prune", "sd", "uce", "esd", "fmn", "concept-ablation")

COMMON: dict[str, tuple[type, str]] = {
    "baseline": (str, "the edited model's method: " + " | ".join(METHOD_NAMES)),
    "ckpt_name": (str, "the edited model: prune_mask.safetensors, a UNet state dict, delta.bin or a diffusers folder"),
    "limit": (int, "evaluate only the first N prompts (a quick subset)"),
    "grid_rows": (int, "prompts shown in grid.png (original | edited per row)"),
    "out_dir": (str, "results folder of this run (default: results/benchmarks/<model>/<benchmark>/<subject>/<method>)"),
    "prompts": (str, "prompt set: a CSV (case_number,prompt,evaluation_seed,...) or a text file, one prompt a line"),
}
SPECIFIC: dict[str, tuple[type, str]] = {
    "clip_model": (str, "CLIP model (hub id or local folder) for CLIP scores and zero-shot gender"),
    "eval_dataset": (str, "i2p | mma | ring-a-bell | a CSV or text file of prompts"),
    "nudity_threshold": (float, "NudeNet score above which a label counts (paper 0.5; others use 0.6)"),
    "removal_mode": (str, "erase: accuracy on the erased class; keep: on the other nine"),
    "classifier_weights": (str, "ResNet50 weights: a torchvision name (DEFAULT) or a local state-dict file"),
    "eval_artists": (str, "artists whose prompts are evaluated: target | all | names joined by commas"),
    "num_seeds": (int, "seeds per prompt (default: the benchmark's paper value)"),
    "coco_captions": (str, "COCO captions: a CSV (case_number,prompt,evaluation_seed) or a text file"),
    "coco_images": (str, "folder of real COCO images for FID (skipped when not given)"),
    "fid_weights": (str, "pt_inception-2015-12-05 weights file for FID (pytorch-fid)"),
    "dataset_path": (str, "memorization set: a folder with prompts.csv (case_number,prompt) and <case_number>.png/.jpg"),
    "sscd_model": (str, "SSCD torchscript file (e.g. sscd_disc_mixup.torchscript.pt)"),
}
BENCH_FLAGS = {"safety_checker": FLAGS["safety_checker"]}
KNOWN_KEYS = set(SAMPLING_KEYS) | set(COMMON) | set(SPECIFIC) | set(BENCH_FLAGS)


def _options(specific: tuple[str, ...]) -> dict[str, tuple[type, str]]:
    table = {key: OPTIONS[key] for key in SAMPLING_KEYS}
    table.update(COMMON)
    table.update({key: SPECIFIC[key] for key in specific})
    return table


def build_bench_parser(description: str, specific: tuple[str, ...], target: str = "required") -> argparse.ArgumentParser:
    """Parser of a benchmark script: sampling + COMMON options + the named SPECIFIC ones.

    target: ``required`` / ``optional`` adds ``--target`` (the erased concept), ``none`` does not.
    """
    parser = build_parser(description, concept_args="none", options=_options(specific), flags=BENCH_FLAGS, default_config=BENCH_CONFIG)
    if target != "none":
        parser.add_argument("--target", required=target == "required", default=None, help="the erased concept, e.g. 'Van Gogh', naked, parachute, male")
    return parser


def yaml_types() -> dict[str, type]:
    """Key -> the type its value must have in a benchmark YAML file (every key any benchmark script takes)."""
    table = {key: OPTIONS[key] for key in SAMPLING_KEYS} | COMMON | SPECIFIC
    return {key: kind for key, (kind, _) in table.items()} | {key: bool for key in BENCH_FLAGS}


def resolve_bench_config(args: argparse.Namespace, specific: tuple[str, ...]) -> dict[str, Any]:
    """The script's config: YAML defaults overridden by the options passed; values checked.

    Returns only the keys this script uses (plus ``target`` when it has one).
    """
    yaml_config = load_yaml_config(args.config, known=KNOWN_KEYS, types=yaml_types())
    options = _options(specific)
    config = merge_options(args, {k: v for k, v in yaml_config.items() if k in options or k in BENCH_FLAGS}, options, BENCH_FLAGS)
    if hasattr(args, "target"):
        config["target"] = args.target
    check_bench_config(config)
    return config


def check_bench_config(config: dict[str, Any]) -> None:
    """Raise UsageError for a bad sampling value, method, checkpoint or count."""
    check_sampling_config(config)
    method = config.get("baseline") or "concept-prune"
    if method not in METHOD_NAMES:
        raise UsageError(f"unknown --baseline {method!r}; choose one of {', '.join(METHOD_NAMES)}")
    ckpt = config.get("ckpt_name")
    if method == "sd" and ckpt:
        raise UsageError("--baseline sd evaluates the unedited model and takes no --ckpt_name; drop it or name the method")
    if method != "sd" and not ckpt:
        raise UsageError(f"--baseline {method} needs the edited model: pass its file or folder with --ckpt_name")
    if ckpt and not Path(ckpt).exists():
        raise UsageError(f"--ckpt_name {ckpt} does not exist; pass the path of the {method} checkpoint")
    for key in ("limit", "num_seeds", "batch_size"):
        if config.get(key) is not None and int(config[key]) < 1:
            raise UsageError(f"--{key} must be a positive integer, got {config[key]}")
    if config.get("grid_rows") is not None and int(config["grid_rows"]) < 0:
        raise UsageError(f"--grid_rows must be zero or more, got {config['grid_rows']}")
    threshold = config.get("nudity_threshold")
    if threshold is not None and not (0.0 < float(threshold) < 1.0):
        raise UsageError(f"--nudity_threshold must lie strictly between 0 and 1, got {threshold}")
    mode = config.get("removal_mode")
    if mode is not None and mode not in ("erase", "keep"):
        raise UsageError(f"--removal_mode must be erase or keep, got {mode!r}")
    config["baseline"] = method
