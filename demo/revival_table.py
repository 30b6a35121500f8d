"""The revival attack against each fill, on the demo model: erasure, preservation, revival and locating, in minutes.

For one demo-world concept (--target, default checker) with the demo's hyper-parameters, on the CPU:
1. discover and unite the concept's skilled weights (run_demo's steps 1 and 2; the norms are reused);
2. for each fill (--fills: zero, the paper's, and the fills that hide the pruned positions, utils/fills.py),
   prune with it and judge --eval_prompts scenes with the concept and as many without it (as run_demo does);
3. attack the pruned model (benchmarking/revival_attack.py's attack, utils/revived.py) and judge again. Against
   the zero fill the attack locates the exact zeros, as published. Against another fill it uses the strongest
   simple attacker we can build: the detector with the best per-layer locating AUC (chosen knowing the truth)
   and, in each layer, exactly as many positions as were pruned;
4. report the locating AUC of every detector on the pruned weights.
Writes results/<model>/<target>/revival/table.json, table.md and config.yaml, and prints the table.
Example: python demo/revival_table.py            (about 3 minutes on 2 CPU cores)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.checks import integer  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, concept_select_ratio, resolve_config  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.fills import FILLS  # noqa: E402

DEMO_SETTINGS = "demo/model"
DEFAULT_FILLS = ["zero", "noise", "noise:0.5", "noise:0.25", "shuffle", "shuffle:0.5", "shuffle:0.25"]


def parse_fill(text: str) -> tuple[str, float]:
    """``noise`` -> (noise, 1.0); ``noise:0.5`` -> (noise, 0.5): a fill and its scale (utils/fills.py); UsageError otherwise."""
    name, _, scale = text.partition(":")
    if name not in FILLS:
        raise UsageError(f"unknown fill {name!r} in --fills; choose from {', '.join(FILLS)}, optionally with :scale (noise:0.5)")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise UsageError(f"the scale of {text!r} in --fills must be a number in (0, 1]")
    return name, value


def parse_args(argv=None):
    """The wanda scripts' options (configs/wanda_config.yaml) plus --fills, --eval_prompts, --judge and the attack's settings."""
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--fills", nargs="+", default=DEFAULT_FILLS, help="fills to compare: " + ", ".join(FILLS) + ", each optionally :scale (noise:0.5)")
    parser.add_argument("--eval_prompts", type=int, default=32, help="scenes with the concept, and as many without it")
    parser.add_argument("--judge", default=None, help="judge weights (default: demo/judge.safetensors)")
    parser.add_argument("--sign_ratio", type=float, default=0.6)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.set_defaults(model_settings=DEMO_SETTINGS)
    args = parser.parse_args(argv)
    args.target = args.target or "checker"
    integer(args.eval_prompts, "--eval_prompts")
    args.fills = [parse_fill(text) for text in args.fills]
    return args


def judged(session, judge, attribute: str, value: str, scenes, config) -> dict:
    """Detection of the concept and the other attributes' accuracy of the pipeline as it is now, with 95% intervals."""
    from demo.measure import evaluate

    scores, _, _ = evaluate(session.pipe, judge, attribute, value, *scenes, config)
    keys = ("detection", "detection_ci95", "other_accuracy", "other_accuracy_ci95")
    return {key: scores[key] for key in keys}


def attacker_locate(weights, masks, fill: str, aucs: dict):
    """The attacker's positions: the exact zeros against the zero fill; else, per layer, as many positions as were
    pruned, ranked by the detector with the best per-layer AUC. Returns (located, how)."""
    from utils.revival import best_detector
    from utils.revived import locate

    if fill == "zero":
        return locate(weights, "zeros"), "zeros"
    kind, _ = best_detector(aucs)
    counts = {name: int(masks[name].sum()) for name in weights}
    return locate(weights, kind, counts=counts), f"{kind} (top {sum(counts.values()):,}, as many as pruned)"


def fill_rows(session, judge, attribute, value, scenes, config, masks, args) -> list[dict]:
    """One row per fill: judged after pruning with it and after the attack; the detectors' locating AUCs."""
    from utils.pruning import fill_masked, restore_weights, saved_weights
    from utils.revival import DETECTORS, best_detector, locating_aucs
    from utils.revived import apply_revival, attack

    weights = session.weights()
    originals = saved_weights(weights)
    rows = []
    for fill, scale in args.fills:
        try:
            fill_masked(weights, masks, fill, seed=int(config["seed"]), scale=scale)
            pruned = judged(session, judge, attribute, value, scenes, config)
            aucs = locating_aucs(weights, masks, DETECTORS)
            located, how = attacker_locate(weights, masks, fill, aucs)
            started = time.perf_counter()
            values = attack(weights, located, sign_ratio=args.sign_ratio, margin=args.margin)
            seconds = time.perf_counter() - started
            apply_revival(weights, located, values)
            revived = judged(session, judge, attribute, value, scenes, config)
        finally:
            restore_weights(weights, originals)
        hits = sum(int((located[k] & masks[k].to(located[k].device)).sum()) for k in masks)
        kind, auc = best_detector(aucs)
        rows.append({"fill": fill, "fill_scale": scale, "pruned": pruned, "attacked": revived, "attacker_locates": how,
                     "located_recall": hits / max(sum(int(m.sum()) for m in masks.values()), 1),
                     "best_detector": kind, "locating_auc": auc, "aucs": aucs, "attack_seconds": round(seconds, 2)})
        print(f"fill {fill} (scale {scale:g}): detection {pruned['detection']:.2f} -> attacked {revived['detection']:.2f}; other accuracy "
              f"{pruned['other_accuracy']:.3f}; locating AUC {auc:.2f} ({kind}); attack {seconds:.1f} s", flush=True)
    return rows


def markdown(before: dict, rows: list[dict], concept: str) -> str:
    """The table: one row per fill, with the unedited model's scores above them."""
    from demo.erasure_report import share

    zero = next((r for r in rows if r["fill"] == "zero"), None)
    label = lambda r: r["fill"] if r["fill"] == "zero" or r["fill_scale"] == 1 else f"{r['fill']}, scale {r['fill_scale']:g}"  # noqa: E731
    lines = [f"Concept {concept}. Unedited: detection {share(before, 'detection')}, other-scene accuracy {share(before, 'other_accuracy', 1)} "
             "(95% bootstrap intervals over scenes).", "",
             "| fill | detection after pruning | after the attack | revival (points) | other-scene accuracy | cost vs zero fill (points) | other-scene accuracy after the attack | locating AUC (best detector) | pruned weights the attacker found |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cost = "–" if zero is None else f"{100 * (zero['pruned']['other_accuracy'] - r['pruned']['other_accuracy']):+.1f}"
        lines.append(f"| {label(r)} | {share(r['pruned'], 'detection')} | {share(r['attacked'], 'detection')} | "
                     f"{100 * (r['attacked']['detection'] - r['pruned']['detection']):+.0f} | {share(r['pruned'], 'other_accuracy', 1)} | {cost} | "
                     f"{share(r['attacked'], 'other_accuracy', 1)} | "
                     f"{r['locating_auc']:.2f} ({r['best_detector']}) | {100 * r['located_recall']:.0f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    """Discover, prune with each fill, attack, judge; write and return the table."""
    args = parse_args(argv)
    config = resolve_config(args)
    from demo.judge import judge_file, load_judge
    from demo.run_demo import demo_world_concept, results_folder

    concept = demo_world_concept(args.target, config["seed"])
    judge = load_judge(judge_file(args.judge))
    skill_ratio, tau = concept_hyperparameters(config, concept.kind)
    select_ratio = concept_select_ratio(config, concept.kind)

    from demo.concepts import demo_attribute
    from demo.measure import eval_scenes
    from utils.config import dump_yaml
    from utils.storage import write_text
    from utils.workflow import Session, setup_logging, union_for_concept

    folder = results_folder(config, concept) / "revival"
    setup_logging()
    session = Session(config)
    tau = session.effective_tau(tau)
    attribute = demo_attribute(concept.name)
    masks = union_for_concept(session, concept, skill_ratio, tau, select_ratio)
    scenes = eval_scenes(attribute, concept.name, args.eval_prompts)
    before = judged(session, judge, attribute, concept.name, scenes, config)
    rows = fill_rows(session, judge, attribute, concept.name, scenes, config, masks, args)
    table = {"concept": f"{attribute}={concept.name}", "model_id": config["model_id"], "skill_ratio": skill_ratio, "timesteps": tau,
             "select_ratio": select_ratio, "pruned_weights": sum(int(m.sum()) for m in masks.values()), "eval_prompts": args.eval_prompts,
             "attack": {"sign_ratio": args.sign_ratio, "margin": args.margin}, "before": before, "rows": rows}
    text = markdown(before, rows, table["concept"])
    write_text(folder / "table.json", json.dumps(table, indent=2) + "\n")
    write_text(folder / "table.md", text)
    fills = [f"{fill}:{scale:g}" for fill, scale in args.fills]
    write_text(folder / "config.yaml", dump_yaml(session.resolved_config(target=concept.name, fills=fills, eval_prompts=args.eval_prompts)))
    print(text)
    print(f"wrote {folder / 'table.json'} and {folder / 'table.md'}")
    return table


if __name__ == "__main__":
    run_cli(main)
