"""A grid of settings (skill_ratio x tau x select_ratio) for several concepts, evaluated, in one results tree.

For each concept (--targets) the activation norms are recorded once (or reused, as wanda/wanda.py does), the
union mask of every setting of the grid is derived from them and saved, and every mask is evaluated:
- ``--evaluation demo`` (the default for a model with the demo world's concepts): the shipped judge scores
  --eval_prompts scenes with the concept and as many without it, unedited once per concept and with each mask
  (detection and other-scene accuracy, with 95% bootstrap intervals over scenes), plus a before/after grid;
- ``--evaluation benchmarks``: each of --benchmarks (benchmarking/<name>.py) with ``--baseline concept-prune``
  and the setting's mask, into the setting's folder (their own resume and metrics.json).
A setting whose metrics.json exists with the same settings is not run again (a run resumes).

Writes --out (default results/sweeps/<--name>): sweep.json, config.yaml, <concept>/before/metrics.json and
<concept>/<run>/{prune_mask.safetensors, metrics.json, grid.png} (the layout benchmarking/report.py reads).
Example (the demo model, about 6 minutes on 2 CPU cores):
  python benchmarking/sweep.py --name demo --targets checker circle --skill_ratios 0.2 0.4 --taus 5 10 --select_ratios 0 0.7
  python benchmarking/report.py results/sweeps/demo
"""
from __future__ import annotations

import json
import sys
import time
from itertools import product
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import build_parser, resolve_config  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402

EVALUATIONS = ("auto", "demo", "benchmarks")
GRID_COLUMNS = 8


def parse_args(argv=None):
    """The wanda scripts' options (configs/wanda_config.yaml) plus the grid, the concepts and the evaluation."""
    parser = build_parser(__doc__.splitlines()[0], concept_args="none")
    parser.add_argument("--name", default="sweep", help="the sweep's name (its folder under results/sweeps)")
    parser.add_argument("--out", default=None, help="the sweep's folder (default results/sweeps/<name>)")
    parser.add_argument("--targets", nargs="+", required=True, help="concepts, e.g. checker circle (demo) or 'Van Gogh' naked")
    parser.add_argument("--skill_ratios", nargs="+", type=float, required=True)
    parser.add_argument("--taus", nargs="+", type=int, required=True, help="tau values (capped at the denoiser calls of one generation)")
    parser.add_argument("--select_ratios", nargs="+", type=float, default=[0.0])
    parser.add_argument("--evaluation", choices=EVALUATIONS, default="auto", help="auto: demo for a demo-world model, else benchmarks")
    parser.add_argument("--eval_prompts", type=int, default=256, help="demo: scenes with the concept, and as many without it")
    parser.add_argument("--judge", default=None, help="demo: judge weights (default demo/judge.safetensors)")
    parser.add_argument("--benchmarks", nargs="+", default=[], help="benchmarks: names of benchmarking/*.py to run per mask")
    parser.add_argument("--bench_args", default="", help="benchmarks: extra options for every benchmark, as one string (--bench_args=\"--limit 20\")")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args) -> None:
    """One sentence for a bad grid or evaluation, before torch is imported."""
    from demo.checks import integer
    from utils.bench_config import BENCHMARKS

    integer(args.eval_prompts, "--eval_prompts")
    for value in args.skill_ratios:
        if not 0 < value < 1:
            raise UsageError(f"--skill_ratios must lie strictly between 0 and 1, got {value}")
    for value in args.taus:
        integer(value, "--taus")
    for value in args.select_ratios:
        if not 0 <= value < 1:
            raise UsageError(f"--select_ratios must lie in [0, 1), got {value}")
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        raise UsageError(f"unknown benchmark {unknown[0]!r} in --benchmarks; choose from {', '.join(BENCHMARKS)}")


def evaluation_kind(args, config) -> str:
    """``demo`` or ``benchmarks`` (auto: demo when the model's concepts are the demo world's)."""
    kind = args.evaluation
    if kind == "auto":
        kind = "demo" if str(config.get("concept_source") or "").startswith("demo.") else "benchmarks"
    if kind == "benchmarks" and not args.benchmarks:
        raise UsageError("--evaluation benchmarks needs --benchmarks (e.g. artist_erasure); a demo-world model is judged with --evaluation demo")
    return kind


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def interval_metrics(scores: dict, count: int) -> dict:
    """{"detection": {"value", "ci95", "n"}, "other_accuracy": {...}} from demo.measure.score's result."""
    return {key: {"value": scores[key], "ci95": scores.get(f"{key}_ci95"), "n": count} for key in ("detection", "other_accuracy")}


def mask_profile(session, masks: dict, norms: dict, skill_ratio: float, tau: int) -> dict:
    """Where the mask lies: the pruned fraction of each layer (execution order) and the skilled fraction of the
    scored weights at each step t < tau."""
    from utils.skilled import skilled_mask

    weights = session.weights()
    scored = sum(w.numel() for w in weights.values())
    per_step = [sum(int(skilled_mask(weights[l], norms[l][0, t], norms[l][1, t], skill_ratio).sum()) for l in norms) / scored for t in range(tau)]
    return {"pruned_per_layer": {layer: int(masks[layer].sum()) / masks[layer].numel() for layer in norms}, "skilled_per_step": per_step}


def main(argv=None) -> dict:
    """Run the grid; write the tree; return sweep.json's content."""
    args = parse_args(argv)
    config = resolve_config(args)
    from utils.concepts import concept_for_config

    concepts = [concept_for_config(config, target) for target in dict.fromkeys(args.targets)]
    kind = evaluation_kind(args, config)
    judge = None
    if kind == "demo":
        from demo.judge import judge_file, load_judge

        judge = load_judge(judge_file(args.judge))  # a missing or corrupt judge: one sentence before the model loads

    from utils.config import dump_yaml
    from utils.paths import run_name
    from utils.storage import write_text
    from utils.workflow import Session, save_mask_and_export, setup_logging

    out = Path(args.out or Path(config["res_path"]) / "sweeps" / args.name)
    setup_logging()
    session = Session(config)
    started = time.time()
    grid = list(product(args.select_ratios, args.skill_ratios, sorted(set(session.effective_tau(t) for t in args.taus))))
    for concept in concepts:
        folder = out / concept.name
        norms = session.norms(concept, max(tau for _, _, tau in grid))
        if kind == "demo":
            before = demo_before(session, judge, concept, folder, args, config)
        for select, ratio, tau in grid:
            run = folder / run_name(ratio, tau, select, session.variant.name)
            setting = {"skill_ratio": ratio, "timesteps": tau, "select_ratio": select}
            done = read_json(run / "metrics.json")
            if done and done.get("setting") == setting and done.get("eval_prompts") == args.eval_prompts:
                print(f"{concept.name} {run.name}: done before, kept")
                continue
            from utils.skilled import union_masks

            masks = union_masks(session.weights(), norms, ratio, tau, select)
            meta = save_mask_and_export(session, masks, run / "prune_mask.safetensors", {"targets": [concept.name], **setting}, None)
            record = {"concept": concept.name, "target": concept.name, "setting": setting, "eval_prompts": args.eval_prompts,
                      "pruned_weights": meta["num_pruned"], "pruned_fraction": meta["fraction_of_component"],
                      **mask_profile(session, masks, norms, ratio, tau), "mask": "prune_mask.safetensors"}
            if kind == "demo":
                record.update(demo_after(session, judge, concept, masks, run, before, args, config))
            else:
                record["benchmarks"] = run_benchmarks(args, config, concept, run)
            write_text(run / "metrics.json", json.dumps(record, indent=2) + "\n")
            print(f"{concept.name} {run.name}: {100 * record['pruned_fraction']:.2f}% pruned"
                  + (f", detection {100 * record['metrics']['detection']['value']:.0f}%, other accuracy "
                     f"{100 * record['metrics']['other_accuracy']['value']:.1f}%" if kind == "demo" else ""), flush=True)
    summary = {"format": "concept-prune sweep v1", "name": args.name, "model_id": config["model_id"], "evaluation": kind,
               "grid": {"skill_ratio": args.skill_ratios, "timesteps": sorted(set(t for _, _, t in grid)), "select_ratio": args.select_ratios},
               "concepts": [c.name for c in concepts], "benchmarks": args.benchmarks, "eval_prompts": args.eval_prompts,
               "seconds": round(time.time() - started, 1)}
    write_text(out / "sweep.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "config.yaml", dump_yaml(session.resolved_config(targets=args.targets, grid=summary["grid"], evaluation=kind)))
    print(f"sweep of {len(concepts)} concept(s) x {len(grid)} setting(s) in {summary['seconds']:.0f} s -> {out}")
    return summary


def _scenes(concept, args):
    from demo.concepts import demo_attribute
    from demo.measure import eval_scenes

    attribute = demo_attribute(concept.name)
    return attribute, eval_scenes(attribute, concept.name, args.eval_prompts)


def demo_before(session, judge, concept, folder: Path, args, config) -> dict:
    """The unedited model's scores for ``concept``, written to ``folder/before``, and its first images (the top rows
    of each setting's grid). Judged on every run, resumed or not: the grids of settings still to run need them."""
    from demo.measure import evaluate
    from utils.storage import write_text

    attribute, scenes = _scenes(concept, args)
    scores, targets, others = evaluate(session.pipe, judge, attribute, concept.name, *scenes, config)
    record = {"concept": f"{attribute}={concept.name}", "target": concept.name, "setting": None, "eval_prompts": args.eval_prompts,
              "metrics": interval_metrics(scores, args.eval_prompts)}
    write_text(folder / "before" / "metrics.json", json.dumps(record, indent=2) + "\n")
    return {"targets": targets[:GRID_COLUMNS], "others": others[:GRID_COLUMNS]}


def demo_after(session, judge, concept, masks, run: Path, before: dict, args, config) -> dict:
    """Scores with the mask applied (weights restored afterwards) and the grid: target before/after, other before/after."""
    from demo.measure import evaluate
    from demo.run_demo import image_grid
    from utils.pruning import masked_weights
    from utils.storage import save_image

    attribute, scenes = _scenes(concept, args)
    with masked_weights(session.weights(), masks):
        scores, targets, others = evaluate(session.pipe, judge, attribute, concept.name, *scenes, config)
    rows = [before["targets"], targets[:GRID_COLUMNS], before["others"], others[:GRID_COLUMNS]]
    save_image(run / "grid.png", image_grid(rows, scale=1))
    return {"concept": f"{attribute}={concept.name}", "metrics": interval_metrics(scores, args.eval_prompts), "grid": "grid.png"}


def run_benchmarks(args, config, concept, run: Path) -> dict:
    """Each of --benchmarks on the setting's mask (``--baseline concept-prune``), into ``run/benchmarks/<name>``,
    with --bench_args; returns name -> its metrics.json, relative to ``run``. Each benchmark resumes by itself."""
    import importlib.util
    import shlex

    results = {}
    for name in args.benchmarks:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", Path(__file__).resolve().parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        folder = run / "benchmarks" / name
        module.main(["--model_id", str(config["model_id"]), "--baseline", "concept-prune", "--ckpt_name", str(run / "prune_mask.safetensors"),
                     "--target", concept.name, "--out_dir", str(folder), "--device", str(config["device"]), *shlex.split(args.bench_args)])
        results[name] = str((folder / "metrics.json").relative_to(run))
    return results


if __name__ == "__main__":
    run_cli(main)
