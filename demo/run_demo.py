"""The whole demo in one command: discover a concept's skilled neurons, prune them, judge before/after.

On the demo model (configs/wanda_config.yaml's default: demo/model, CPU, no network) for one demo-world concept
(--target, default checker; any value of demo/world.py: a style, shape, colour, background or size):
1. discover: record the FFN activation norms of the concept's prompt pairs (wanda/wanda.py's step);
2. prune: unite the skilled weights of the first tau steps and save the mask (save_union_over_time's);
3. judge: generate --eval_prompts scenes with the concept and as many without it, before and after
   pruning (same captions, same seeds), and let the shipped judge name every attribute.
Writes results/<model>/<target>/demo/: metrics.json (detection of the concept before/after, the other
attributes' accuracy before/after, the pruned fraction), grid.png (rows: target before, target after,
other before, other after) and config.yaml; the mask lands where step 3 puts it.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.checks import integer, output_folder  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, concept_select_ratio, resolve_config  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402

DEFAULT_TARGET = "checker"
# The model_defaults entry (configs/wanda_config.yaml) that a demo-world model without an entry of its own samples
# with: run_demo's default of --model_settings, so a candidate trained on the demo world samples like the shipped model.
DEMO_SETTINGS = "demo/model"
GRID_ROWS = ["target before", "target after", "other before", "other after"]


def image_grid(rows: list[list], scale: int = 3, gap: int = 2):
    """One PIL image: each inner list is a row of equally sized images, enlarged ``scale`` times."""
    from PIL import Image

    cell = rows[0][0].width * scale
    columns = max(len(r) for r in rows)
    canvas = Image.new("RGB", (columns * (cell + gap) - gap, len(rows) * (cell + gap) - gap), "white")
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            canvas.paste(image.resize((cell, cell), Image.NEAREST), (x * (cell + gap), y * (cell + gap)))
    return canvas


def check_demo_args(args) -> None:
    """UsageError (one sentence) for run_demo's own options: a non-positive count, or a concept given by prompt
    files (the demo judges one demo-world value, named by --target)."""
    integer(args.eval_prompts, "--eval_prompts")
    integer(args.grid_columns, "--grid_columns")
    for option in ("target_file", "base_prompts", "target_prompts"):
        if getattr(args, option):
            raise UsageError(f"run_demo judges one demo-world value; pass it with --target instead of --{option}")


def parse_args(argv=None):
    """run_demo's options: the wanda scripts' ones (configs/wanda_config.yaml) plus --judge, --eval_prompts, --grid_columns."""
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--judge", default=None, help="judge weights (default: demo/judge.safetensors)")
    parser.add_argument("--eval_prompts", type=int, default=256, help="scenes with the concept, and as many without it (256: a 95%% interval of about +-5 points)")
    parser.add_argument("--grid_columns", type=int, default=8)
    parser.set_defaults(model_settings=DEMO_SETTINGS)
    args = parser.parse_args(argv)
    args.target = args.target or DEFAULT_TARGET
    check_demo_args(args)
    return args


def demo_world_concept(target: str, seed: int):
    """The demo-world concept ``target`` (built by demo/concepts.py); UsageError for any other concept."""
    from demo.concepts import DEMO_WORLD, KIND
    from utils.concepts import build_concept

    concept = build_concept(target, seed, source=DEMO_WORLD)
    if concept.kind != KIND:
        raise UsageError(f"--target {target!r} is not a demo-world value; pass a style, shape, colour, background or size of demo/world.py (e.g. stripes, circle)")
    return concept


def results_folder(config: dict, concept):
    """The concept's results folder; UsageError when the hook variant is not a UNet one or a file stands where
    a results folder goes (before any work)."""
    from neuron_receivers.hook_variants import get_variant
    from utils.paths import concept_dir

    if get_variant(config["hook_module"]).component != "denoiser":
        raise UsageError("the demo prunes UNet FFNs; use --hook_module unet or unet-ffn-1")
    folder = concept_dir(config["res_path"], config["model_id"], concept.name)
    for path in (folder / "demo", folder / "pruned"):
        output_folder(str(path), "the results folder under --res_path")
    return folder


def discover_and_prune(session, concept, folder, skill_ratio: float, tau: int, select_ratio: float):
    """Steps 1 and 2: the concept's union mask, saved under ``folder/pruned``; returns (masks, mask path, mask metadata, settings)."""
    from utils.paths import run_name
    from utils.workflow import describe_mask, save_mask_and_export, union_for_concept

    masks = union_for_concept(session, concept, skill_ratio, tau, select_ratio)
    mask_path = folder / "pruned" / run_name(skill_ratio, tau, select_ratio, session.variant.name) / "prune_mask.safetensors"
    settings = {"targets": [concept.name], "skill_ratio": skill_ratio, "timesteps": tau, "select_ratio": select_ratio}
    mask_meta = save_mask_and_export(session, masks, mask_path, settings, None)
    print(describe_mask(mask_meta, mask_path))
    return masks, mask_path, mask_meta, settings


def judge_before_after(session, judge, attribute: str, value: str, masks, count: int, config: dict):
    """Step 3: the same target and other scenes generated and judged before and while the mask applies.
    Returns (before, after, grid rows); the session's pipeline is left as it was loaded."""
    from demo.measure import eval_scenes, evaluate
    from utils.pruning import masked_weights

    targets, others = eval_scenes(attribute, value, count)
    before, target_before, other_before = evaluate(session.pipe, judge, attribute, value, targets, others, config)
    with masked_weights(session.weights(), masks):
        after, target_after, other_after = evaluate(session.pipe, judge, attribute, value, targets, others, config)
    return before, after, [target_before, target_after, other_before, other_after]


def summary(metrics: dict) -> str:
    """The one line that run_demo prints: detection and the other attributes' accuracy before -> after (95%
    intervals in brackets), the pruned share."""
    from demo.erasure_report import share

    before, after = metrics["before"], metrics["after"]
    return (f"{metrics['concept']}: detected in {share(before, 'detection')} of target images before, "
            f"{share(after, 'detection')} after; other attributes {share(before, 'other_accuracy')} -> "
            f"{share(after, 'other_accuracy')} right; {100 * metrics['pruned_fraction_of_unet']:.2f}% of UNet weights pruned")


def main(argv=None) -> dict:
    """Parse ``argv``, run discover -> prune -> judge, write the results; return the metrics."""
    args = parse_args(argv)
    config = resolve_config(args)
    concept = demo_world_concept(args.target, config["seed"])
    from demo.judge import judge_file

    judge_path = judge_file(args.judge)
    skill_ratio, tau = concept_hyperparameters(config, concept.kind)
    select_ratio = concept_select_ratio(config, concept.kind)
    started = time.time()

    from demo.concepts import demo_attribute
    from demo.judge import load_judge
    from utils.storage import save_image, write_text
    from utils.workflow import Session, save_run_config, setup_logging

    folder = results_folder(config, concept)
    judge = load_judge(judge_path)  # a missing or corrupt judge is refused before the model is loaded
    setup_logging()
    session = Session(config)
    tau = session.effective_tau(tau)
    attribute = demo_attribute(concept.name)
    masks, mask_path, mask_meta, settings = discover_and_prune(session, concept, folder, skill_ratio, tau, select_ratio)
    before, after, images = judge_before_after(session, judge, attribute, concept.name, masks, args.eval_prompts, config)

    out = folder / "demo"
    save_image(out / "grid.png", image_grid([row[: args.grid_columns] for row in images]))
    metrics = {
        "concept": f"{attribute}={concept.name}",
        "model_id": config["model_id"],
        **{"skill_ratio": skill_ratio, "timesteps": tau, "select_ratio": select_ratio},
        "pruned_weights": mask_meta["num_pruned"],
        "pruned_fraction_of_unet": mask_meta["fraction_of_component"],
        "eval_prompts": args.eval_prompts,
        "before": before,
        "after": after,
        "mask": str(mask_path),
        "seconds": round(time.time() - started, 1),
        "rows_of_grid_png": GRID_ROWS,
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    save_run_config(out, session.resolved_config(target=concept.name, eval_prompts=args.eval_prompts, judge=str(judge_path), **settings))
    print(summary(metrics))
    print(f"wrote {out / 'metrics.json'} and {out / 'grid.png'}")
    return metrics


if __name__ == "__main__":
    run_cli(main)
