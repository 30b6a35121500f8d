"""YAML defaults + argparse overrides for every script (no torch import here).

``build_parser`` declares the options shared by all scripts; each option's default is ``None`` so
that only what the user typed overrides the YAML file. ``resolve_config`` merges the two (with the
YAML's ``model_defaults``: one model's own settings, such as its sampling and its concept source),
finds repo-relative model folders from any directory (``repo_path``) and checks every value;
``dump_yaml`` writes the resolved config (floats as ``1.0e-02``). ``load_yaml_config`` and
``merge_options`` are the one YAML + options loader of every script (wanda, benchmarks, demo tools).
No model is known here by name: a model's settings come from the YAML only.
"""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import yaml

from neuron_receivers.hook_variants import STREAMS, variant_names
from utils.fills import FILLS
from utils.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "wanda_config.yaml"

HOOK_MODULES = variant_names()  # the names of neuron_receivers/hook_variants.HOOK_VARIANTS
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
    "streams": (str, "which streams of a two-stream transformer (SD 3.x, Flux) are scored: " + " | ".join(STREAMS)
                     + " (default: the family's, pipeline_defaults)"),
    "scheduler": (str, "diffusers scheduler class to sample with, e.g. DDIMScheduler (default: the model's own)"),
    "skill_ratio": (float, "fraction k/inner of top WANDA scores per row (default: the concept's paper value)"),
    "timesteps": (int, "tau: UNet calls whose skilled neurons count (default: concept's paper value / all)"),
    "select_ratio": (float, "prune weights skilled at more than select_ratio * tau steps"),
    "fill": (str, "what the pruned weights become: " + " | ".join(FILLS) + " (zero: the paper's; noise, shuffle: hide where the pruning happened, seeded by --seed)"),
    "fill_scale": (float, "narrow a noise or shuffle fill around each row's mean by this factor (1 = drawn like the row's weights)"),
    "res_path": (str, "results folder"),
    "num_preview": (int, "prompt pairs whose images are saved by wanda.py"),
    "num_images": (int, "prompt pairs whose before/after images are saved by remove_neurons.py"),
    "model_settings": (str, "the model_defaults entry to sample with when the model has none of its own "
                            "(e.g. a shipped model's entry for a candidate trained like it)"),
}
FLAGS: dict[str, str] = {
    "safety_checker": "load the pipeline's safety checker (off by default, as in the paper)",
}
NESTED_KEYS = ("concept_defaults", "model_defaults", "pipeline_defaults")
# A model's concepts: YAML-only keys (top level or in a model_defaults entry), no command-line options.
# concept_source: "module:attribute" of a utils.concepts.ConceptSource (or a function target, seed -> Concept
# or None) that builds the model's own concepts, imported when a script runs; own_concepts_only: the model
# knows only those and custom prompt files (the paper's built-in concepts are refused in one sentence).
CONCEPT_KEYS: dict[str, type] = {"concept_source": str, "own_concepts_only": bool}


def option_types(options: dict[str, tuple[type, str]], flags: dict[str, str] | tuple[str, ...] = ()) -> dict[str, type]:
    """Key -> the type its YAML value must have: each option's type, bool for each flag."""
    return {**{key: kind for key, (kind, _) in options.items()}, **{key: bool for key in flags}}


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


MAX_CONFIG_BYTES = 256 * 1024  # a config is a page of settings, not data
MAX_CONFIG_NODES = 10_000      # values a config may expand to (YAML aliases counted each time they are used)
HYPERPARAMETER_KEYS = ("skill_ratio", "timesteps", "select_ratio")  # what a concept_defaults entry may set


def _check_expansion(data: Any, path: Path) -> None:
    """Raise UsageError when ``data`` expands to more than MAX_CONFIG_NODES values (an alias bomb, or
    an alias that contains itself)."""
    budget = MAX_CONFIG_NODES
    stack = [data]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            raise UsageError(f"config file {path} expands to more than {MAX_CONFIG_NODES:,} values (YAML aliases); write the settings out plainly")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def load_yaml_config(
    path: str | Path,
    known: set[str] | None = None,
    types: dict[str, type] | None = None,
) -> dict[str, Any]:
    """Read a YAML config file; raise UsageError on a missing, oversized, non-UTF-8 or invalid file, a
    file that expands past MAX_CONFIG_NODES values, an unknown key, or a value of the wrong type.

    known: the keys the file may hold (default: the wanda scripts' keys). types: key -> the type its
    value must have (default: the wanda scripts' OPTIONS and FLAGS); values are converted like
    command-line text (``"20"`` -> 20) and the nested tables are checked (check_nested).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist; pass an existing YAML file with --config")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UsageError(f"config file {path} is {path.stat().st_size:,} bytes, more than a config's {MAX_CONFIG_BYTES:,}; pass the settings file itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text; pass a YAML file") from None
    except yaml.YAMLError as err:
        raise UsageError(f"config file {path} is not valid YAML ({err.__class__.__name__}); fix or replace it") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of keys to values")
    _check_expansion(data, path)
    known = known if known is not None else set(OPTIONS) | set(FLAGS) | set(NESTED_KEYS) | set(CONCEPT_KEYS)
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise UsageError(
            f"config file {path} has unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(known))}"
        )
    types = types if types is not None else {**option_types(OPTIONS, FLAGS), **CONCEPT_KEYS}
    checked = {key: typed_value(key, value, types[key], f"config file {path}") if key in types else value for key, value in data.items()}
    return check_nested(checked, f"config file {path}")


TYPE_WORDS = {int: "an integer", float: "a number", str: "text", bool: "true or false"}


def typed_value(key: str, value: Any, kind: type, where: str) -> Any:
    """``value`` as ``kind`` (None stays None; text converts as on the command line, ``"20"`` -> 20);
    UsageError naming ``key`` and ``where`` when it cannot be."""
    if value is None:
        return None
    bad = UsageError(f"{where}: {key} must be {TYPE_WORDS.get(kind, kind.__name__)}, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise bad
    if kind is str:
        if isinstance(value, str):
            return value
        raise bad
    if kind is int and isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise bad
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise bad from None


def check_entry(settings: Any, types: dict[str, type], label: str, prefix: str, where: str, example: str = "",
                unknown: str = "unknown key(s)") -> dict[str, Any]:
    """One mapping of settings (or None: empty) checked: only keys of ``types``, each value converted to its type
    (named ``{prefix}.{key}`` in errors). ``label`` names the mapping in errors; ``example`` shows a good one;
    ``unknown`` words the unknown keys. Raise UsageError otherwise. Shared by every nested table of every config."""
    if settings is not None and not isinstance(settings, dict):
        raise UsageError(f"{where}: {label} must be a mapping of settings" + (f", e.g. {example}" if example else ""))
    bad = sorted(str(k) for k in set(settings or {}) - set(types))
    if bad:
        raise UsageError(f"{where}: {label} has {unknown} {', '.join(bad)}; known keys are {', '.join(types)}")
    return {k: typed_value(f"{prefix}.{k}", v, types[k], where) for k, v in (settings or {}).items()}


def _check_table(name: str, table: Any, allowed: dict[str, type], maps: str, example: str, where: str) -> dict[str, dict[str, Any]]:
    """A nested table (``name``: key -> mapping of settings) checked: every entry a mapping (or None) of
    ``allowed`` keys (key -> type), each value converted to its type (see check_entry). ``maps`` and
    ``example`` word the error. Raise UsageError naming the entry otherwise."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise UsageError(f"{where}: {name} must map {maps} to settings, e.g. {{{example}}}")
    return {str(key): check_entry(settings, allowed, f"{name} of {key}", f"{name}.{key}", where, example.split(": ", 1)[1])
            for key, settings in table.items()}


def check_concept_defaults(table: Any, where: str = "the config") -> dict[str, dict[str, Any]]:
    """The ``concept_defaults`` table checked: concept kind -> {skill_ratio, timesteps, select_ratio},
    each value converted and in its range. Raise UsageError for anything else."""
    types = {key: OPTIONS[key][0] for key in HYPERPARAMETER_KEYS}
    checked = _check_table("concept_defaults", table, types, "concept kinds", "art: {skill_ratio: 1.0e-02, timesteps: 10}", where)
    for kind, entry in checked.items():
        check_hyperparameters(entry, f"{where}: concept_defaults of {kind}: ")
    return checked


def check_nested(config: dict[str, Any], where: str) -> dict[str, Any]:
    """``config`` with its ``concept_defaults`` and ``model_defaults`` tables checked (see their checkers)."""
    if "concept_defaults" in config:
        config["concept_defaults"] = check_concept_defaults(config["concept_defaults"], where)
    if "model_defaults" in config:
        config["model_defaults"] = check_model_defaults(config["model_defaults"], where)
    if "pipeline_defaults" in config:
        config["pipeline_defaults"] = check_pipeline_defaults(config["pipeline_defaults"], where)
    return config


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
    but does under the repository root (a model or judge shipped in the repository): then that
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


# a model's own settings (its sampling, its concepts); flags stay command-line only
MODEL_DEFAULT_KEYS = sorted((set(OPTIONS) - {"model_id", "model_settings"}) | set(CONCEPT_KEYS))
MODEL_DEFAULT_TYPES = {key: CONCEPT_KEYS[key] if key in CONCEPT_KEYS else OPTIONS[key][0] for key in MODEL_DEFAULT_KEYS}


def check_model_defaults(table: Any, where: str = "the config") -> dict[str, dict[str, Any]]:
    """The YAML's ``model_defaults`` checked: model id -> mapping of known option keys, each value
    converted to its option's type (None: no entry). Raise UsageError for anything else, whichever
    model runs."""
    return _check_table("model_defaults", table, MODEL_DEFAULT_TYPES, "model ids", "my/model: {guidance_scale: 5.0}", where)


def check_pipeline_defaults(table: Any, where: str = "the config", types: dict[str, type] | None = None) -> dict[str, dict[str, Any]]:
    """The YAML's ``pipeline_defaults`` checked: diffusers pipeline class name (a model family) -> mapping of
    known option keys (``types``, default those of ``model_defaults``), each value converted to its type.
    Raise UsageError for anything else."""
    return _check_table("pipeline_defaults", table, MODEL_DEFAULT_TYPES if types is None else types, "diffusers pipeline class names",
                        "FluxPipeline: {num_inference_steps: 28, guidance_scale: 3.5}", where)


def family_defaults(table: dict[str, dict[str, Any]], model_id: str) -> dict[str, Any]:
    """The (checked) ``pipeline_defaults`` entry of ``model_id``'s pipeline class, or {} (no entry, no model,
    or a class that cannot be read yet)."""
    if not model_id or not table:
        return {}
    return table.get(pipeline_class_name(repo_path(model_id)) or "", {})


def pipeline_class_name(model_id: str) -> str | None:
    """The diffusers pipeline class of a model (``_class_name`` of its model_index.json): read from a local
    folder, or from the Hugging Face cache / hub for a hub id; None when it cannot be read (loading the
    model then says why)."""
    import json

    path = Path(model_id).expanduser()
    index = path / "model_index.json" if path.is_dir() else None
    if index is None and model_id and not path.exists():
        try:
            from huggingface_hub import hf_hub_download

            index = Path(hf_hub_download(model_id, "model_index.json"))
        except Exception:  # offline, unknown id, no access: the loader gives the one-sentence error
            return None
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name") if index is not None else None
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def apply_model_defaults(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Override ``config`` with the YAML's per-family and per-model settings, except for the options the
    user passed in ``args``: the command line wins, then the model's own ``model_defaults`` entry (its
    sampling, its concept source), then its family's ``pipeline_defaults`` entry (keyed by the diffusers
    pipeline class of the model), then the file's top-level values (the paper's). A model without an entry
    of its own takes the entry that ``model_settings`` names, if any (a candidate model sampled like a
    shipped one). Returns ``config``."""
    table = check_model_defaults(config.get("model_defaults"))
    model = str(config.get("model_id") or "")
    entry = next((settings for key, settings in table.items() if same_model(key, model)), None)
    borrowed = config.get("model_settings")
    if entry is None and borrowed:
        entry = next((settings for key, settings in table.items() if same_model(key, str(borrowed))), None)
    family = family_defaults(check_pipeline_defaults(config.get("pipeline_defaults")), model)
    for key, value in {**family, **(entry or {})}.items():
        if getattr(args, key, None) is None:
            config[key] = value
    return config


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the YAML file named by ``args.config`` with the options the user passed and the file's
    ``model_defaults`` of the chosen model (see apply_model_defaults); find repo-relative model folders
    from any directory (repo_path); check values."""
    config = merge_options(args, load_yaml_config(args.config), OPTIONS, FLAGS)
    config.setdefault("concept_defaults", {})
    config.setdefault("concept_source", None)
    config.setdefault("own_concepts_only", False)
    apply_model_defaults(config, args)
    if config.get("model_id"):
        config["model_id"] = repo_path(str(config["model_id"]))
    check_config(config)
    return config


REQUIRED_KEYS = ("num_inference_steps", "guidance_scale", "seed", "device", "dtype", "batch_size", "res_path", "hook_module")
MAX_SEED = 2**32 - 1  # numpy's and torch's generators both take any seed in [0, 2**32)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_sampling_config(config: dict[str, Any]) -> None:
    """Raise UsageError for a bad model, device, dtype, step count, batch size, guidance, seed, image size
    or results folder."""
    if not config.get("model_id"):
        raise UsageError("no model given; pass --model_id with a hub id or a local diffusers folder")
    unset = next((key for key in REQUIRED_KEYS if key in config and config[key] is None), None)
    if unset:
        raise UsageError(f"no {unset} is set; pass --{unset} or set {unset} in the config file")
    check_model_id(str(config["model_id"]))
    device = str(config["device"])
    if not DEVICE_PATTERN.match(device):
        raise UsageError(f"unknown --device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if config["dtype"] not in DTYPES:
        raise UsageError(f"unknown --dtype {config['dtype']!r}; choose one of {', '.join(DTYPES)}")
    for key in ("num_inference_steps", "batch_size"):
        if config.get(key) is None or int(config[key]) < 1:
            raise UsageError(f"--{key} must be a positive integer, got {config.get(key)}")
    guidance = config.get("guidance_scale")
    if not _finite(guidance) or guidance < 0:
        raise UsageError(f"--guidance_scale must be a finite number of 0 or more, got {guidance}")
    seed = config.get("seed")
    if seed is None or not (0 <= int(seed) <= MAX_SEED):
        raise UsageError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}")
    for key in ("height", "width"):
        if config.get(key) is not None and (int(config[key]) < 8 or int(config[key]) % 8):
            raise UsageError(f"--{key} must be a positive multiple of 8, got {config[key]}")
    check_res_path(config.get("res_path"))


def check_res_path(res_path: Any) -> None:
    """Raise UsageError when the results folder is not given, has a name longer than a file system
    takes, or names (or lies under) an existing file."""
    if res_path is None or not str(res_path).strip():
        raise UsageError("no results folder given; pass --res_path with a folder name")
    path = Path(str(res_path)).expanduser()
    long_part = next((part for part in path.parts if len(part.encode("utf-8")) > 255), None)
    if long_part is not None:
        raise UsageError(f"--res_path has a folder name of {len(long_part.encode('utf-8'))} bytes, more than a file system's 255; pass a shorter one")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--res_path {res_path} is an existing file; pass a folder")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--res_path {res_path} lies under {blocking}, which is a file; pass a folder")


def check_hyperparameters(config: dict[str, Any], prefix: str = "") -> None:
    """Raise UsageError for a skill_ratio outside (0, 1), a select_ratio outside [0, 1) or a timesteps below 1
    (absent or None values pass). ``prefix`` starts the message (the option's source)."""
    ratio = config.get("skill_ratio")
    if ratio is not None and not (_finite(ratio) and 0.0 < ratio < 1.0):
        raise UsageError(f"{prefix}--skill_ratio must lie strictly between 0 and 1, got {ratio}")
    select = config.get("select_ratio")
    if select is not None and not (_finite(select) and 0.0 <= select < 1.0):
        raise UsageError(f"{prefix}--select_ratio must lie in [0, 1), got {select}")
    if config.get("timesteps") is not None and int(config["timesteps"]) < 1:
        raise UsageError(f"{prefix}--timesteps must be a positive integer, got {config['timesteps']}")


def check_config(config: dict[str, Any]) -> None:
    """Raise UsageError for a value outside its allowed range."""
    check_sampling_config(config)
    if config["hook_module"] not in HOOK_MODULES:
        raise UsageError(f"unknown --hook_module {config['hook_module']!r}; choose one of {', '.join(HOOK_MODULES)}")
    if config.get("fill") is not None and config["fill"] not in FILLS:
        raise UsageError(f"unknown --fill {config['fill']!r}; choose one of {', '.join(FILLS)}")
    scale = config.get("fill_scale")
    if scale is not None and not (_finite(scale) and 0 < scale <= 1):
        raise UsageError(f"--fill_scale must lie in (0, 1], got {scale}")
    if config.get("streams") is not None and config["streams"] not in STREAMS:
        raise UsageError(f"unknown --streams {config['streams']!r}; choose one of {', '.join(STREAMS)}")
    check_hyperparameters(config)
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
    if path.exists() and not path.is_dir():
        raise UsageError(f"--model_id {model_id} is a file, not a diffusers folder; pass the folder that holds model_index.json, or a hub id")
    if not path.is_dir():
        raise UsageError(f"model folder {model_id} does not exist; pass a diffusers folder or a hub id with --model_id")
    if not (path / "model_index.json").is_file():
        raise UsageError(f"{model_id} has no model_index.json, so it is not a diffusers pipeline folder; pass one with --model_id")
