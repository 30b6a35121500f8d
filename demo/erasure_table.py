"""Erasure table of a demo-world model: does ConceptPrune's FFN pruning remove a concept, and only it?

For one concept (an attribute value, e.g. --concept style=stripes or shape=circle) it records the
activation norms of N prompt pairs (target: a random scene with that value; base: the same scene
with the neutral value: style plain, or another shape / colour), derives the union masks for every
select_ratio x skill_ratio x tau, prunes, and judges generations: the detection rate of the concept on target
prompts, and the judge's accuracy on the other attributes of prompts without the concept, before
and after. Writes a JSON and prints a Markdown table.
Defaults: configs/demo_erasure.yaml (--config FILE replaces them; options replace both).
Example: python demo/erasure_table.py --model_id models/demo-sd1 --concepts style=stripes
One process per concept, then: python demo/erasure_table.py --merge A.json B.json --out BOTH.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.concepts import check_concept  # noqa: E402
from demo.erasure_report import check_report_out, merge_reports, print_report  # noqa: E402
from neuron_receivers.hook_variants import variant_names  # noqa: E402
from utils.config import REPO_ROOT, load_yaml_config, merge_options, option_types, repo_path  # noqa: E402

DEFAULT_CONFIG = REPO_ROOT / "configs" / "demo_erasure.yaml"
HOOK_MODULES = variant_names("denoiser", ffn_only=True)  # the denoiser FFN variants of neuron_receivers/hook_variants.py
# The keys of configs/demo_erasure.yaml: key -> (type, help). One value each; LISTS take one or more; FLAGS true/false.
OPTIONS: dict[str, tuple[type, str]] = {
    "model_id": (str, "a diffusers pipeline folder or hub id"),
    "judge": (str, "the attribute classifier (demo/judge.py)"),
    **{key: (int, text) for key, text in (
        ("pairs", "prompt pairs of the discovery (seeded by seed)"), ("seed", "seed of the discovery pairs"),
        ("eval_prompts", "target scenes and other scenes judged per row"),
        ("eval_draw", "which judged scenes: 0 those of the README's tables; another integer draws others"),
        ("quality_prompts", "random scenes that measure the model's own generations (0: skip)"),
        ("num_inference_steps", "DDIM steps"))},
    "guidance_scale": (float, "classifier-free guidance scale"),
    "device": (str, "where the pipeline runs (cpu, cuda, auto, ...); the judge runs on the CPU"),
    "hook_module": (str, " or ".join(HOOK_MODULES) + " (ff.net.2, the paper; ff.net.0.proj)"),
    "out": (str, "the report (JSON); default <model folder>-erasure.json beside the model"),
}
LISTS: dict[str, tuple[type, str]] = {
    "concepts": (str, "attribute=value ..."),
    "skill_ratios": (float, "fractions k/inner of top WANDA scores per row"),
    "select_ratios": (float, "a weight is pruned when skilled at more than select_ratio * tau steps (0: the plain union)"),
    "taus": (str, "UNet calls of the union: integers or all"),
}
FLAGS = {"ceiling": "end each table with every hooked weight zeroed: the most that pruning these layers can remove"}
KEYS = set(OPTIONS) | set(LISTS) | set(FLAGS)
TYPES = option_types(OPTIONS, FLAGS)  # a list's items are checked by check_settings


def build_erasure_parser() -> argparse.ArgumentParser:
    """--config, --show, --merge and one option per key of configs/demo_erasure.yaml (default None: the files' values stay)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a YAML file of these options (see configs/demo_erasure.yaml)")
    parser.add_argument("--show", default=None, help="only print the Markdown tables of a saved report (JSON) and exit")
    parser.add_argument("--merge", nargs="+", default=None, metavar="REPORT",
                        help="only join saved reports of one model and config (e.g. one run per concept) into the report at --out, and exit")
    for key, (kind, text) in OPTIONS.items():
        names = ["--model_id", "--model"] if key == "model_id" else [f"--{key}"]
        parser.add_argument(*names, dest=key, type=kind, default=None, help=text)
    for key, (kind, text) in LISTS.items():
        parser.add_argument(f"--{key}", type=kind, nargs="+", default=None, help=text)
    for key, text in FLAGS.items():
        parser.add_argument(f"--{key}", action="store_true", default=None, help=text)
    return parser


def parse_config(argv=None) -> dict:
    """The run's settings: configs/demo_erasure.yaml, then the file of --config, then the options passed (the wanda
    scripts' loader: utils.config.load_yaml_config and merge_options).

    Returns a dict with every key of the defaults file plus ``show`` (a saved report to print, or None) and
    ``merge`` (saved reports to join into ``out``, or None).
    Raises UsageError for a missing or malformed file, an unknown key, a bad concept or hook module.
    """
    from utils.errors import UsageError

    args = build_erasure_parser().parse_args(argv)
    config = load_yaml_config(DEFAULT_CONFIG, known=KEYS, types=TYPES)
    if args.config:
        config.update(load_yaml_config(args.config, known=KEYS, types=TYPES))
    config = merge_options(args, config, {**OPTIONS, **LISTS}, FLAGS)
    config["show"] = args.show
    config["merge"] = args.merge
    if args.merge and not args.out:
        raise UsageError("--merge needs --out, the file the joined report is written to")
    if config["show"] or config["merge"]:
        return config
    check_settings(config)
    for key in ("model_id", "judge"):  # the shipped files (demo/model, ...) are found from any working directory
        config[key] = repo_path(config[key])
    return config


def _listed(config: dict, key: str) -> list:
    """``config[key]`` as a non-empty list (a single value from a YAML file becomes a list of one); else UsageError."""
    from utils.errors import UsageError

    value = config[key]
    value = value if isinstance(value, list) else [value]
    if not value or any(item is None or isinstance(item, (dict, list)) for item in value):
        raise UsageError(f"{key} must be a list of values, got {config[key]!r}; fix --{key} or the config file")
    return value


def check_settings(config: dict) -> None:
    """UsageError (one sentence) for a setting of the wrong type or outside its range, whether it came from the
    defaults, a --config file or an option: counts, seeds, ratios, taus, sampling, device and the output path.
    Normalises the list settings in place (taus become text)."""
    from demo.checks import device_name, integer, number
    from utils.errors import UsageError

    for key in ("model_id", "judge"):
        if not isinstance(config[key], str) or not config[key].strip():
            raise UsageError(f"{key} must name a file or folder, got {config[key]!r}; fix --{key} or the config file")
    for key, low in (("pairs", 1), ("eval_prompts", 1), ("num_inference_steps", 1), ("seed", 0), ("eval_draw", 0), ("quality_prompts", 0)):
        integer(config[key], key, low)
    number(config["guidance_scale"], "guidance_scale")
    device_name(config["device"], "device")
    if config["hook_module"] not in HOOK_MODULES:
        raise UsageError(f"unknown hook_module {config['hook_module']!r}; use one of {', '.join(HOOK_MODULES)}")
    if not isinstance(config["ceiling"], bool):
        raise UsageError(f"ceiling must be true or false, got {config['ceiling']!r}")
    config["concepts"] = [str(concept) for concept in _listed(config, "concepts")]
    for concept in config["concepts"]:
        check_concept(concept)
    if len(set(config["concepts"])) < len(config["concepts"]):
        raise UsageError("a concept is named twice in concepts; give each once")
    config["skill_ratios"] = _listed(config, "skill_ratios")
    for ratio in config["skill_ratios"]:
        if not 0 < number(ratio, "each skill_ratio") < 1:
            raise UsageError(f"skill_ratio {ratio} is outside (0, 1); fix --skill_ratios")
    config["select_ratios"] = _listed(config, "select_ratios")
    for select in config["select_ratios"]:
        if not 0 <= number(select, "each select_ratio") < 1:
            raise UsageError(f"select_ratio {select} is outside [0, 1), where it prunes nothing; fix --select_ratios")
    config["taus"] = [str(tau) for tau in _listed(config, "taus")]
    for tau in config["taus"]:
        if tau != "all" and not (tau.isdigit() and int(tau) > 0):
            raise UsageError(f"tau {tau!r} is neither a positive integer nor all; fix --taus")
    if config["out"] is not None:
        check_report_out(config["out"])


def main(argv=None, pipe=None) -> dict:
    """Parse ``argv`` (see parse_config); then show a report, merge reports, or measure the tables (demo/erasure_measure.py);
    return the report. ``pipe``: an already loaded pipeline of the model to use instead of loading --model_id."""
    config = parse_config(argv)
    if config["show"]:
        return print_report(config["show"])
    if config["merge"]:
        check_report_out(config["out"])
        merged = merge_reports(config["merge"], config["out"])
        print(f"{len(config['merge'])} reports joined into {config['out']}: {', '.join(merged['tables'])}")
        return merged
    from demo.erasure_measure import measure

    return measure(config, pipe)


if __name__ == "__main__":
    from utils.errors import run_cli

    run_cli(main)
