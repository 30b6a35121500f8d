"""Options of the benchmarking/ scripts: YAML defaults (configs/benchmark_config.yaml) + argparse.

Every benchmark shares the sampling options of the wanda scripts and the ``COMMON`` keys
(method, checkpoint, output, protocol); each script adds the keys of its own evaluator from ``SPECIFIC``.
The YAML file may hold any key of either table; a script ignores the keys it does not use.

Protocols: ``--protocol paper | project`` picks a preset from the YAML's ``protocols`` table
(``protocols: {<name>: {all: {...}, <benchmark>: {...}}}``). A value is taken from, in rising order:
the YAML's top-level defaults, the preset's ``all`` section, the preset's section of this benchmark,
the model family's sampling (``pipeline_defaults``, keyed by the model's diffusers pipeline class: the
protocols are Stable Diffusion 1.x's), the options typed on the command line. The resolved config records the protocol's name (``protocol``).
A config file without a ``protocols`` table uses the presets of the shipped file.
No torch import here, so ``--help`` and bad input answer at once.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from utils.config import (
    OPTIONS,
    REPO_ROOT,
    build_parser,
    check_entry,
    check_pipeline_defaults,
    check_sampling_config,
    family_defaults,
    load_yaml_config,
    merge_options,
    option_types,
)
from utils.errors import UsageError

BENCH_CONFIG = REPO_ROOT / "configs" / "benchmark_config.yaml"
SAMPLING_KEYS = ("model_id", "num_inference_steps", "guidance_scale", "seed", "height", "width", "device", "dtype", "batch_size", "res_path")
METHOD_NAMES = ("concept-prune", "sd", "uce", "esd", "fmn", "concept-ablation", "revived")

COMMON: dict[str, tuple[type, str]] = {
    "baseline": (str, "the edited model's method: " + " | ".join(METHOD_NAMES)),
    "ckpt_name": (str, "the edited model: prune_mask.safetensors, a UNet state dict, delta.bin, a diffusers folder, "
                       "or revived.safetensors (benchmarking/revival_attack.py) for --baseline revived"),
    "limit": (int, "evaluate only the first N prompts (a quick subset)"),
    "grid_rows": (int, "prompts shown in grid.png (original | edited per row)"),
    "out_dir": (str, "results folder of this run (default: results/benchmarks/<protocol>/<model>/<benchmark>/<subject>/<method>)"),
    "prompts": (str, "prompt set: a CSV (case_number,prompt,evaluation_seed,...) or a text file, one prompt a line"),
    "protocol": (str, "paper | project: a preset of the config's protocols table (see docs/METHOD.md); options you type win over it"),
}
SPECIFIC: dict[str, tuple[type, str]] = {
    "clip_model": (str, "CLIP model (hub id or local folder) for CLIP scores and zero-shot gender"),
    "eval_dataset": (str, "i2p | mma | a CSV or text file of prompts | NAME=FILE for a named set in a local file "
                          "(mma=, ring-a-bell=, unlearndiffatk=, i2p=)"),
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
    "sscd_preprocessing": (str, "SSCD image preprocessing: resize320-imagenet (project) | resize256-crop224-mean0.5 (paper)"),
    "professions": (str, "gender: a text file of professions, one a line (default datasets/winobias_professions.txt)"),
}
BENCH_FLAGS = {"safety_checker": "run the pipeline's safety checker (--no_safety_checker: off; default: the protocol's choice)"}
KNOWN_KEYS = set(SAMPLING_KEYS) | set(COMMON) | set(SPECIFIC) | set(BENCH_FLAGS) | {"protocols", "pipeline_defaults"}
FAMILY_KEYS = ("num_inference_steps", "guidance_scale", "height", "width", "batch_size")  # what a family's entry may set
PROTOCOL_ALL = "all"  # the section of a protocol preset that every benchmark takes
BENCHMARKS = ("artist_erasure", "nudity_eval", "object_erase", "gender_reversal", "eval_coco", "inference_mem")
DEFAULT_PROTOCOL = "project"
SSCD_PREPROCESSINGS = ("resize320-imagenet", "resize256-crop224-mean0.5")


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
    parser.add_argument("--no_safety_checker", dest="safety_checker", action="store_false", default=None, help="generate without the safety checker, whatever the protocol says")
    if target != "none":
        parser.add_argument("--target", required=target == "required", default=None, help="the erased concept, e.g. 'Van Gogh', naked, parachute, male")
    return parser


def yaml_types() -> dict[str, type]:
    """Key -> the type its value must have in a benchmark YAML file (every key any benchmark script takes)."""
    return option_types({key: OPTIONS[key] for key in SAMPLING_KEYS} | COMMON | SPECIFIC, BENCH_FLAGS)


def check_protocols(table: Any, where: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The YAML's ``protocols`` table checked: protocol name -> section (``all`` or a benchmark) -> settings,
    each a known benchmark key converted to its type. Raise UsageError naming the entry otherwise."""
    if not isinstance(table, dict) or not table:
        raise UsageError(f"{where}: protocols must map protocol names to presets, e.g. {{paper: {{all: {{model_id: ...}}}}}}")
    types = {key: kind for key, kind in yaml_types().items() if key != "protocol"}  # a preset cannot name another one
    checked: dict[str, dict[str, dict[str, Any]]] = {}
    for name, preset in table.items():
        if preset is not None and not isinstance(preset, dict):
            raise UsageError(f"{where}: protocol {name} must map all or a benchmark name to settings")
        checked[str(name)] = {}
        for section, settings in (preset or {}).items():
            if section != PROTOCOL_ALL and section not in BENCHMARKS:
                raise UsageError(f"{where}: protocol {name} has unknown section {section!r}; use all or one of {', '.join(BENCHMARKS)}")
            label = f"protocols.{name}.{section}"
            checked[str(name)][str(section)] = check_entry(settings, types, label, label, where, unknown="unknown or misplaced key(s)")
    return checked


def protocol_table(yaml_config: dict[str, Any], config_path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The presets of ``yaml_config`` (its ``protocols`` table), else those of the shipped BENCH_CONFIG."""
    if "protocols" in yaml_config:
        return check_protocols(yaml_config["protocols"], f"config file {config_path}")
    shipped = load_yaml_config(BENCH_CONFIG, known=KNOWN_KEYS, types=yaml_types())
    return check_protocols(shipped.get("protocols"), f"config file {BENCH_CONFIG}")


def protocol_preset(protocols: dict[str, dict[str, dict[str, Any]]], name: str, benchmark: str | None) -> dict[str, Any]:
    """The settings protocol ``name`` sets for ``benchmark``: its ``all`` section, then the benchmark's own.

    Raise UsageError, naming the known protocols, when ``name`` is not one of them.
    """
    if name not in protocols:
        raise UsageError(f"unknown --protocol {name!r}; choose one of {', '.join(sorted(protocols))}")
    preset = dict(protocols[name].get(PROTOCOL_ALL) or {})
    if benchmark is not None:
        preset.update(protocols[name].get(benchmark) or {})
    return preset


def typed_options(args: argparse.Namespace, options: dict[str, Any]) -> list[str]:
    """The option names typed on the command line (sorted): they win over presets, and the harness
    lets a typed ``--guidance_scale`` win over a prompt set's own guidance."""
    return sorted(key for key in list(options) + list(BENCH_FLAGS) if getattr(args, key, None) is not None)


def resolve_bench_config(args: argparse.Namespace, specific: tuple[str, ...], benchmark: str | None = None) -> dict[str, Any]:
    """The script's config: YAML defaults, then the protocol's preset for ``benchmark``, then the options passed.

    Returns only the keys this script uses (plus ``target`` when it has one, ``protocol``, and
    ``typed_options``: the option names typed on the command line).
    ``benchmark`` is the script's name (``artist_erasure``, ...); without it only the preset's ``all``
    section applies.
    """
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}")
    yaml_config = load_yaml_config(args.config, known=KNOWN_KEYS, types=yaml_types())
    name = getattr(args, "protocol", None) or yaml_config.get("protocol") or DEFAULT_PROTOCOL
    preset = protocol_preset(protocol_table(yaml_config, args.config), name, benchmark)
    options = _options(specific)
    wanted = lambda key: key in options or key in BENCH_FLAGS  # noqa: E731
    merged = {k: v for k, v in yaml_config.items() if wanted(k)}
    merged.update({k: v for k, v in preset.items() if wanted(k)})
    config = merge_options(args, merged, options, BENCH_FLAGS)
    config["protocol"] = name
    config["typed_options"] = typed_options(args, options)
    families = check_pipeline_defaults(yaml_config.get("pipeline_defaults"), f"config file {args.config}",
                                       types={key: OPTIONS[key][0] for key in FAMILY_KEYS})
    for key, value in family_defaults(families, str(config.get("model_id") or "")).items():
        if key not in config["typed_options"]:
            config[key] = value
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
    preprocessing = config.get("sscd_preprocessing")
    if preprocessing is not None and preprocessing not in SSCD_PREPROCESSINGS:
        raise UsageError(f"--sscd_preprocessing must be one of {', '.join(SSCD_PREPROCESSINGS)}, got {preprocessing!r}")
    config["baseline"] = method
