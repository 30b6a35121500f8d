"""YAML defaults + argparse overrides for every script (no torch import here).

``build_parser`` declares the options shared by all scripts; each option's default is ``None`` so
that only what the user typed overrides the YAML file. ``resolve_config`` merges the two (with the
YAML's ``model_defaults``: one model's own settings, such as the demo model's sampling), finds
repo-relative model folders from any directory (``repo_path``) and checks every value; ``dump_yaml``
writes the resolved config (floats as ``1.0e-02``).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import yaml

from utils.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "wanda_config.yaml"

HOOK_MODULES = ("unet", "unet-ffn-1", "attn_key", "attn_val", "text")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")

# key -> (type, help). Keys here are exactly the keys a YAML config may hold (plus concept_defaults, model_defaults).
OPTIONS: dict[str, tuple[type, str]] = {
    "model_id": (str, "Hugging Face hub id or local diffusers folder"),
    "num_inference_steps": (int, "denoising steps (PNDM makes one UNet call more)"),
    "guidance_scale": (float, "classifier-free guidance scale"),
    "seed": (int, "seed of every generation (one generator per prompt)"),
    "height": (int, "image height (default: the model's)"),
    "width": (int, "image width (default: the model's)"),
    "device": (str, "auto | cpu | cuda | cuda:N | mps"),
    "dtype": (str, "auto | float32 | float16 | bfloat16 (auto: float16 on cuda, float32 otherwise)"),
    "batch_size": (int, "prompt pairs per pipeline call"),
    "hook_module": (str, "which weights are scored: " + " | ".join(HOOK_MODULES)),
    "skill_ratio": (float, "fraction k/inner of top WANDA scores per row (default: the concept's paper value)"),
    "timesteps": (int, "tau: UNet calls whose skilled neurons count (default: concept's paper value / all)"),
    "select_ratio": (float, "prune weights skilled at more than select_ratio * tau steps"),
    "res_path": (str, "results folder"),
    "num_preview": (int, "prompt pairs whose images are saved by wanda.py"),
    "num_images": (int, "prompt pairs whose before/after images are saved by remove_neurons.py"),
}
FLAGS: dict[str, str] = {
    "safety_checker": "load the pipeline's safety checker (off by default, as in the paper)",
}
NESTED_KEYS = ("concept_defaults", "model_defaults")


def build_parser(
    description: str,
    concept_args: str = "single",
    options: dict[str, tuple[type, str]] | None = None,
    flags: dict[str, str] | None = None,
    default_config: Path = DEFAULT_CONFIG,
) -> argparse.ArgumentParser:
    """Return a parser with ``--config`` and one ``--key`` per option (default None) and flag.

    concept_args: ``"single"`` adds ``--target/--target_file/--base_prompts/--target_prompts``,
    ``"multi"`` adds ``--targets``; anything else adds neither. options/flags default to the
    wanda scripts' tables (OPTIONS, FLAGS).
    """
    options = OPTIONS if options is None else options
    flags = FLAGS if flags is None else flags
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=str(default_config), help="YAML file of defaults")
    if concept_args == "single":
        parser.add_argument("--target", default=None, help="concept to erase, e.g. 'Van Gogh', naked, parachute, male; on the demo model a demo-world value: stripes, circle, ...")
        parser.add_argument("--target_file", default=None, help="memorize_i prompts: a file or a name in datasets/")
        parser.add_argument("--base_prompts", default=None, help="custom concept: file of base prompts, one a line")
        parser.add_argument("--target_prompts", default=None, help="custom concept: file of target prompts, one a line")
    elif concept_args == "multi":
        parser.add_argument("--targets", nargs="+", required=True, help="concepts to erase together")
    for key, (kind, text) in options.items():
        parser.add_argument(f"--{key}", type=kind, default=None, help=text)
    for key, text in flags.items():
        parser.add_argument(f"--{key}", action="store_true", default=None, help=text)
    return parser


def load_yaml_config(path: str | Path, known: set[str] | None = None) -> dict[str, Any]:
    """Read a YAML config file; raise UsageError on a missing file, bad YAML or an unknown key.

    known: the keys the file may hold (default: the wanda scripts' keys).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist; pass an existing YAML file with --config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"config file {path} is not valid YAML ({err.__class__.__name__}); fix or replace it") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of keys to values")
    known = known if known is not None else set(OPTIONS) | set(FLAGS) | set(NESTED_KEYS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"config file {path} has unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(known))}"
        )
    return data


def merge_options(args: argparse.Namespace, config: dict[str, Any], options: dict, flags: dict) -> dict[str, Any]:
    """``config`` (from YAML) overridden by every option the user passed; absent keys become None/False."""
    for key in list(options) + list(flags):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
        config.setdefault(key, False if key in flags else None)
    return config


def repo_path(value: str) -> str:
    """``value`` unchanged, unless it is a relative path that does not exist from the working directory
    but does under the repository root (the shipped ``demo/model``, ``demo/judge.safetensors``): then that
    path, so that the shipped defaults work from any folder. A hub id passes unchanged unless a folder of
    that name exists under the repository."""
    path = Path(value).expanduser()
    if value and not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        return str(REPO_ROOT / path)
    return value


def same_model(a: str, b: str) -> bool:
    """Whether two model ids name the same model: equal non-empty strings, or paths (``~`` and
    repo-relative allowed, see repo_path) of the same existing folder."""
    if not a or not b:
        return False
    if a == b:
        return True
    pa, pb = Path(repo_path(a)).expanduser(), Path(repo_path(b)).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


MODEL_DEFAULT_KEYS = sorted(set(OPTIONS) - {"model_id"})  # a model's own settings; flags stay command-line only


def check_model_defaults(table: Any) -> dict[str, dict[str, Any]]:
    """The YAML's ``model_defaults`` checked: model id -> mapping of known option keys (None: no entry).
    Raise UsageError for anything else, whichever model runs."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise UsageError("model_defaults must map model ids to settings, e.g. {demo/model: {guidance_scale: 5.0}}")
    checked = {}
    for model, settings in table.items():
        if settings is not None and not isinstance(settings, dict):
            raise UsageError(f"model_defaults of {model} must be a mapping of settings, e.g. {{guidance_scale: 5.0}}")
        unknown = sorted(str(k) for k in set(settings or {}) - set(MODEL_DEFAULT_KEYS))
        if unknown:
            raise UsageError(f"model_defaults of {model} has unknown key(s) {', '.join(unknown)}; known keys are {', '.join(MODEL_DEFAULT_KEYS)}")
        checked[str(model)] = dict(settings or {})
    return checked


def apply_model_defaults(config: dict[str, Any], args: argparse.Namespace, fallback_model: str | None = None) -> dict[str, Any]:
    """Override ``config`` with the YAML's ``model_defaults`` entry of its model, except for the options
    the user passed in ``args``: the command line wins, then the model's own settings (e.g. the demo
    model's 20 DDIM steps), then the file's top-level values (the paper's). ``fallback_model``: whose
    entry applies when the model has none (run_demo: any demo-world model samples like demo/model).
    Returns ``config``."""
    table = check_model_defaults(config.get("model_defaults"))
    model = str(config.get("model_id") or "")
    entry = next((settings for key, settings in table.items() if same_model(key, model)), None)
    if entry is None and fallback_model is not None:
        entry = next((settings for key, settings in table.items() if same_model(key, fallback_model)), None)
    for key, value in (entry or {}).items():
        if getattr(args, key, None) is None:
            config[key] = value
    return config


def resolve_config(args: argparse.Namespace, fallback_model: str | None = None) -> dict[str, Any]:
    """Merge the YAML file named by ``args.config`` with the options the user passed and the file's
    ``model_defaults`` of the chosen model (see apply_model_defaults); find repo-relative model folders
    from any directory (repo_path); check values."""
    config = merge_options(args, load_yaml_config(args.config), OPTIONS, FLAGS)
    config.setdefault("concept_defaults", {})
    apply_model_defaults(config, args, fallback_model)
    if config.get("model_id"):
        config["model_id"] = repo_path(str(config["model_id"]))
    check_config(config)
    return config


def check_sampling_config(config: dict[str, Any]) -> None:
    """Raise UsageError for a bad model, device, dtype, step count, batch size or image size."""
    if not config.get("model_id"):
        raise UsageError("no model given; pass --model_id with a hub id or a local diffusers folder")
    check_model_id(str(config["model_id"]))
    device = str(config["device"])
    if device.split(":")[0] not in DEVICES:
        raise UsageError(f"unknown --device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if config["dtype"] not in DTYPES:
        raise UsageError(f"unknown --dtype {config['dtype']!r}; choose one of {', '.join(DTYPES)}")
    for key in ("num_inference_steps", "batch_size"):
        if config[key] is None or int(config[key]) < 1:
            raise UsageError(f"--{key} must be a positive integer, got {config[key]}")
    for key in ("height", "width"):
        if config.get(key) is not None and int(config[key]) % 8:
            raise UsageError(f"--{key} must be a multiple of 8, got {config[key]}")


def check_config(config: dict[str, Any]) -> None:
    """Raise UsageError for a value outside its allowed range."""
    check_sampling_config(config)
    if config["hook_module"] not in HOOK_MODULES:
        raise UsageError(f"unknown --hook_module {config['hook_module']!r}; choose one of {', '.join(HOOK_MODULES)}")
    ratio = config.get("skill_ratio")
    if ratio is not None and not (0.0 < float(ratio) < 1.0):
        raise UsageError(f"--skill_ratio must lie strictly between 0 and 1, got {ratio}")
    select = float(config.get("select_ratio") or 0.0)
    if not (0.0 <= select < 1.0):
        raise UsageError(f"--select_ratio must lie in [0, 1), got {select}")
    if config.get("timesteps") is not None and int(config["timesteps"]) < 1:
        raise UsageError(f"--timesteps must be a positive integer, got {config['timesteps']}")
    for key in ("num_preview", "num_images"):
        if config.get(key) is not None and int(config[key]) < 0:
            raise UsageError(f"--{key} must be zero or more, got {config[key]}")


def kind_defaults(config: dict[str, Any], kind: str) -> dict[str, Any]:
    """The config's concept_defaults entry of this concept kind (else the custom one, else empty)."""
    table = config.get("concept_defaults", {})
    return table.get(kind) or table.get("custom") or {}


def concept_hyperparameters(config: dict[str, Any], kind: str) -> tuple[float, int]:
    """Return (skill_ratio, tau): the user's values, else the paper's for this concept kind."""
    defaults = kind_defaults(config, kind)
    ratio = config.get("skill_ratio")
    if ratio is None:
        ratio = defaults.get("skill_ratio", 0.01)
    tau = config.get("timesteps")
    if tau is None:
        tau = defaults.get("timesteps", 10)
    return float(ratio), int(tau)


def concept_select_ratio(config: dict[str, Any], kind: str) -> float:
    """Return select_ratio: the user's value, else this concept kind's (concept_defaults), else 0 (the plain union)."""
    select = config.get("select_ratio")
    if select is None:
        select = kind_defaults(config, kind).get("select_ratio", 0.0)
    return float(select)


def format_float(value: float) -> str:
    """Shortest scientific notation that reads back as the same float, e.g. ``1.0e-02``."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    for digits in range(1, 18):
        text = f"{value:.{digits}e}"
        if float(text) == value:
            return text
    return repr(value)


class _ConfigDumper(yaml.SafeDumper):
    pass


_ConfigDumper.add_representer(float, lambda dumper, v: dumper.represent_scalar("tag:yaml.org,2002:float", format_float(v)))


def dump_yaml(data: Any) -> str:
    """YAML text of ``data`` with floats written as ``1.0e-02`` (key order kept)."""
    return yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True)


def check_model_id(model_id: str) -> None:
    """Raise UsageError for a path that does not exist or is not a diffusers folder (no torch work)."""
    path = Path(model_id)
    looks_like_path = model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or path.exists()
    if not looks_like_path:
        return
    if not path.is_dir():
        raise UsageError(f"model folder {model_id} does not exist; pass a diffusers folder or a hub id with --model_id")
    if not (path / "model_index.json").is_file():
        raise UsageError(f"{model_id} has no model_index.json, so it is not a diffusers pipeline folder; pass one with --model_id")
