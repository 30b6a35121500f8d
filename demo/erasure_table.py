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
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from demo.measure import eval_scenes, evaluate  # noqa: E402
from utils.config import REPO_ROOT, repo_path  # noqa: E402


def concept_pairs(attribute: str, value: str, count: int, seed: int):
    """The concept ``attribute=value`` with ``count`` (base, target) pairs (see utils.concepts.demo_pairs)."""
    from utils.concepts import Concept, demo_pairs

    return Concept(value, "demo", tuple(demo_pairs(attribute, value, count, seed)))


def concept_table(pipe, judge, modules, attribute: str, value: str, args, sampling: dict) -> list[dict]:
    """Rows of one concept's table: "before", then one per select_ratio x skill_ratio x tau (each mask only while it is judged),
    then, with ``args.ceiling``, one with every weight of the hooked layers zeroed (skill_ratio "all weights")."""
    from neuron_receivers.hook_variants import get_variant
    from utils.generation import count_unet_calls
    from utils.pruning import masked_weights
    from utils.recording import record_norms
    from utils.skilled import union_masks

    weights = {name: m.weight.detach() for name, m in modules.items()}  # unpruned outside masked_weights
    norms = record_norms(pipe, concept_pairs(attribute, value, args.pairs, seed=args.seed), sampling, get_variant(args.hook_module), None)
    calls = count_unet_calls(pipe, args.num_inference_steps)
    targets, others = eval_scenes(attribute, value, args.eval_prompts, args.eval_draw)
    total = sum(p.numel() for p in pipe.unet.parameters())
    rows = [{"skill_ratio": None, "tau": None, "pruned_fraction": 0.0, **evaluate(pipe, judge, attribute, value, targets, others, sampling)[0]}]
    print(f"{attribute}={value} before: detection {rows[0]['detection']:.2f}, other accuracy {rows[0]['other_accuracy']:.2f}", flush=True)
    for select in args.select_ratios:
        for ratio in args.skill_ratios:
            for tau_text in args.taus:
                tau = calls if tau_text == "all" else min(int(tau_text), calls)
                masks = union_masks(weights, norms, ratio, tau, select)
                with masked_weights(modules, masks):
                    scores = evaluate(pipe, judge, attribute, value, targets, others, sampling)[0]
                row = {"skill_ratio": ratio, "tau": tau_text, "select_ratio": select,
                       "pruned_fraction": sum(int(m.sum()) for m in masks.values()) / total, **scores}
                rows.append(row)
                print(f"sr {ratio} tau {tau_text}{f' select {select}' if select else ''}: {100 * row['pruned_fraction']:.2f}% pruned, "
                      f"detection {row['detection']:.2f}, other accuracy {row['other_accuracy']:.2f}", flush=True)
    if args.ceiling:  # every weight of the hooked layers zeroed: what no mask of these layers can go beyond
        with masked_weights(modules, {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}):
            scores = evaluate(pipe, judge, attribute, value, targets, others, sampling)[0]
        rows.append({"skill_ratio": "all weights", "tau": None, "pruned_fraction": sum(w.numel() for w in weights.values()) / total, **scores})
        print(f"every hooked weight zeroed: {100 * rows[-1]['pruned_fraction']:.2f}% pruned, detection {scores['detection']:.2f}, "
              f"other accuracy {scores['other_accuracy']:.2f}", flush=True)
    return rows


def markdown(rows: list[dict], concept: str = "concept") -> str:
    """A concept's rows as a Markdown table: detection, then the other scenes' accuracy (mean and per attribute).
    A select_ratio column comes first when any row has a nonzero one; the rows without one (before, the ceiling) show "–"."""
    names = list(rows[0]["other_accuracy_per_attribute"])
    select = any(r.get("select_ratio") for r in rows)
    lines = [f"| {'select_ratio | ' if select else ''}skill_ratio | tau | pruned % of UNet | {concept} detected | other scenes: mean accuracy | "
             + " | ".join(names) + " |", "|---" * (5 + select + len(names)) + "|"]
    for r in rows:
        cells = [f"{r['select_ratio']:g}" if "select_ratio" in r else "–"] if select else []
        cells += [str(r["skill_ratio"] or "before"), str(r["tau"] or "–"), f"{100 * r['pruned_fraction']:.2f}", f"{100 * r['detection']:.0f}%",
                 f"{100 * r['other_accuracy']:.0f}%"] + [f"{100 * r['other_accuracy_per_attribute'][n]:.0f}%" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_report(path: str | Path) -> dict:
    """Print a saved report's generation accuracy and its tables as Markdown; return the report."""
    report = read_report(path, ("model", "generation_accuracy", "tables"))
    print(f"{report['model']}: judge accuracy on its generations {report['generation_accuracy']}")
    for concept, rows in report["tables"].items():
        print(f"\n**{concept}**\n\n" + markdown(rows, concept))
    return report


# Settings that may differ between the reports that --merge joins: each report measured its own concepts.
MERGE_FREE_SETTINGS = ("concepts", "quality_prompts", "out", "device")


REPORT_KEYS = ("model", "settings", "generation_accuracy", "tables")


ROW_NUMBERS = ("pruned_fraction", "detection", "other_accuracy")


def read_report(path: str | Path, keys: tuple[str, ...] = REPORT_KEYS) -> dict:
    """A saved report (JSON with at least ``keys``, its tables rows as this script writes them); UsageError when it is
    missing, a folder, not UTF-8, not JSON, lacks one of them or holds a malformed table."""
    from demo.checks import read_json
    from utils.errors import UsageError

    if not Path(path).exists():
        raise UsageError(f"no report at {path}; give the JSON that an erasure_table.py run wrote")
    report = read_json(path, "the JSON that an erasure_table.py run wrote")
    if not isinstance(report, dict) or not set(keys) <= set(report):
        raise UsageError(f"{path} is not an erasure report (it needs {', '.join(keys)})")
    for key, kind in (("settings", dict), ("generation_accuracy", dict), ("tables", dict)):
        if key in keys and not isinstance(report[key], kind):
            raise UsageError(f"{path} is not an erasure report (its {key} is not a mapping)")
    for concept, rows in report.get("tables", {}).items():
        if not (isinstance(rows, list) and rows and all(_is_row(row) for row in rows)):
            raise UsageError(f"{path} is not an erasure report (the table of {concept} does not hold rows as erasure_table.py writes them)")
    return report


def _is_row(row) -> bool:
    """Whether ``row`` is a table row as concept_table writes it (numbers where markdown() formats numbers)."""
    def numeric(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return (isinstance(row, dict) and {"skill_ratio", "tau"} <= set(row) and all(numeric(row.get(k)) for k in ROW_NUMBERS)
            and isinstance(row.get("other_accuracy_per_attribute"), dict) and all(map(numeric, row["other_accuracy_per_attribute"].values()))
            and (numeric(row["select_ratio"]) if "select_ratio" in row else True))


def merge_reports(paths: list[str], out: str | Path) -> dict:
    """Join the reports of one model measured in separate runs (say one process per concept) into one report at ``out``.

    Tables keep the order of ``paths``; the generation accuracy (and its quality_prompts) is the first report's that
    measured one. Raises UsageError when the reports name different models, differ in a setting other than
    MERGE_FREE_SETTINGS, or both hold a table of the same concept. Returns the merged report (also written to ``out``,
    with its settings beside it as ``<out>.config.yaml``)."""
    from utils.config import dump_yaml
    from utils.errors import UsageError
    from utils.storage import write_text

    reports = [read_report(path) for path in paths]
    for report in reports:  # reports written before these settings existed: the plain union, the first judged scenes
        report["settings"].setdefault("select_ratios", [0.0])
        report["settings"].setdefault("eval_draw", 0)
    first = reports[0]
    merged = {"model": first["model"], "settings": dict(first["settings"]), "generation_accuracy": {}, "tables": {}}
    for path, report in zip(paths, reports):
        if report["model"] != first["model"]:
            raise UsageError(f"{path} measured {report['model']}, not {first['model']}; merge reports of one model only")
        differ = sorted(k for k in set(first["settings"]) | set(report["settings"])
                        if k not in MERGE_FREE_SETTINGS and first["settings"].get(k) != report["settings"].get(k))
        if differ:
            raise UsageError(f"{path} was measured with other settings ({', '.join(differ)}) than {paths[0]}; merge runs of one config only")
        for concept, rows in report["tables"].items():
            if concept in merged["tables"]:
                raise UsageError(f"{concept} has a table in two of the reports; give each concept once")
            merged["tables"][concept] = rows
        if report["generation_accuracy"] and not merged["generation_accuracy"]:
            merged["generation_accuracy"] = report["generation_accuracy"]
            merged["settings"]["quality_prompts"] = report["settings"].get("quality_prompts")
    if not merged["generation_accuracy"]:
        merged["settings"]["quality_prompts"] = 0
    merged["settings"]["concepts"] = list(merged["tables"])
    merged["settings"]["out"] = str(out)
    write_text(Path(out).with_suffix(".config.yaml"), dump_yaml(merged["settings"]))
    write_text(out, json.dumps(merged, indent=2) + "\n")
    return merged


DEFAULT_CONFIG = REPO_ROOT / "configs" / "demo_erasure.yaml"
HOOK_MODULES = ("unet", "unet-ffn-1")


def parse_config(argv=None) -> dict:
    """The run's settings: configs/demo_erasure.yaml, then the file of --config, then the options passed.

    Returns a dict with every key of the defaults file plus ``show`` (a saved report to print, or None) and
    ``merge`` (saved reports to join into ``out``, or None).
    Raises UsageError for a missing or malformed file, an unknown key, a bad concept or hook module.
    """
    import yaml

    from utils.config import load_yaml_config
    from utils.errors import UsageError

    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())  # the shipped file: every key, no checks needed
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a YAML file of these options (see configs/demo_erasure.yaml)")
    parser.add_argument("--show", default=None, help="only print the Markdown tables of a saved report (JSON) and exit")
    parser.add_argument("--merge", nargs="+", default=None, metavar="REPORT",
                        help="only join saved reports of one model and config (e.g. one run per concept) into the report at --out, and exit")
    parser.add_argument("--model_id", "--model", dest="model_id", help="a diffusers pipeline folder or hub id")
    parser.add_argument("--judge")
    parser.add_argument("--concepts", nargs="+", help="attribute=value ...")
    for key in ("pairs", "seed", "eval_prompts", "eval_draw", "quality_prompts", "num_inference_steps"):
        parser.add_argument(f"--{key}", type=int)
    parser.add_argument("--guidance_scale", type=float)
    parser.add_argument("--device", help="where the pipeline runs (cpu, cuda, auto, ...); the judge runs on the CPU")
    parser.add_argument("--skill_ratios", type=float, nargs="+")
    parser.add_argument("--select_ratios", type=float, nargs="+",
                        help="a weight is pruned when skilled at more than select_ratio * tau steps (0: the plain union)")
    parser.add_argument("--taus", nargs="+", help="UNet calls of the union: integers or all")
    parser.add_argument("--hook_module", help="unet (ff.net.2, the paper) or unet-ffn-1 (ff.net.0.proj)")
    parser.add_argument("--ceiling", action="store_true", default=None,
                        help="end each table with every hooked weight zeroed: the most that pruning these layers can remove")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    config = dict(defaults)
    if args.config:
        config.update(load_yaml_config(args.config, known=set(defaults)))
    config.update({k: v for k, v in vars(args).items() if v is not None and k in defaults})
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


def report_out(config: dict) -> Path:
    """Where the report goes: ``out``, else ``<model folder>-erasure.json`` beside the model."""
    model = Path(config["model_id"])
    return Path(config["out"] or model.parent / f"{model.name}-erasure.json")


def check_report_out(out: str | Path) -> Path:
    """``out`` as the report's path when writing there replaces nothing of the user's: a .json path that is no
    folder and either new or an earlier report, and whose ``.config.yaml`` beside it is no folder; else UsageError."""
    from demo.checks import output_file
    from utils.errors import UsageError

    path = output_file(str(out), "--out", (".json",))
    if path.exists():
        try:
            read_report(path, ("model", "tables"))
        except UsageError:
            raise UsageError(f"--out {out} exists and is not an erasure report; pass a new path (nothing of yours is replaced)") from None
    if path.with_suffix(".config.yaml").is_dir():
        raise UsageError(f"{path.with_suffix('.config.yaml')} is a folder, where the report's config goes; pass another --out")
    return path


def check_concept(concept: str) -> tuple[str, str]:
    """(attribute, value) of ``attribute=value``; UsageError when the demo world has no such value."""
    from demo.world import ATTRIBUTES
    from utils.errors import UsageError

    attribute, _, value = concept.partition("=")
    if attribute not in ATTRIBUTES or value not in ATTRIBUTES[attribute]:
        raise UsageError(f"unknown demo concept {concept!r}; give attribute=value with an attribute among "
                         f"{', '.join(ATTRIBUTES)} and one of its values (demo/world.py), e.g. style=stripes")
    return attribute, value


def main(argv=None, pipe=None) -> dict:
    """Parse ``argv`` (see parse_config); judge the model's generations, then every concept's table; write and return the report.
    ``pipe``: an already loaded pipeline of the model to use instead of loading --model_id (its weights are restored after each row)."""
    config = parse_config(argv)
    if config["show"]:
        return print_report(config["show"])
    if config["merge"]:
        check_report_out(config["out"])
        merged = merge_reports(config["merge"], config["out"])
        print(f"{len(config['merge'])} reports joined into {config['out']}: {', '.join(merged['tables'])}")
        return merged
    args = argparse.Namespace(**config)

    from demo.judge import load_judge
    from demo.measure import generation_accuracy
    from neuron_receivers.hook_variants import get_variant, select_modules
    from utils.config import dump_yaml
    from utils.model_loading import load_pipeline, resolve_device
    from utils.storage import write_text

    out = check_report_out(report_out(config))  # a bad output path or judge is refused before the model is loaded
    judge = load_judge(args.judge)
    if pipe is None:
        pipe = load_pipeline(args.model_id, resolve_device(args.device), torch.float32)
    sampling = {"num_inference_steps": args.num_inference_steps, "guidance_scale": args.guidance_scale, "batch_size": 32}
    modules = select_modules(pipe.unet, get_variant(args.hook_module))
    quality = generation_accuracy(pipe, judge, args.quality_prompts, sampling) if args.quality_prompts else {}
    print(f"judge accuracy on {args.quality_prompts} generations: {quality}", flush=True)
    settings = {k: v for k, v in config.items() if k not in ("show", "merge")}
    report = {"model": args.model_id, "settings": settings, "generation_accuracy": quality, "tables": {}}
    write_text(out.with_suffix(".config.yaml"), dump_yaml(settings))  # the resolved config beside the results
    for concept in args.concepts:
        attribute, value = check_concept(concept)
        report["tables"][concept] = concept_table(pipe, judge, modules, attribute, value, args, sampling)
        print(f"\n{concept}\n" + markdown(report["tables"][concept], concept) + "\n", flush=True)
        write_text(out, json.dumps(report, indent=2) + "\n")  # after each concept: a stopped run keeps the finished tables
    return report


if __name__ == "__main__":
    from utils.errors import run_cli

    run_cli(main)
