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

from utils.concepts import DEMO_MODEL  # noqa: E402
from utils.config import build_parser, concept_hyperparameters, concept_select_ratio, resolve_config  # noqa: E402
from demo.checks import integer, output_folder  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402

DEFAULT_TARGET = "checker"


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


def main(argv=None) -> dict:
    """Parse ``argv``, run discover -> prune -> judge, write the results; return the metrics."""
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--judge", default=None, help="judge weights (default: demo/judge.safetensors)")
    parser.add_argument("--eval_prompts", type=int, default=32, help="scenes with the concept, and as many without it")
    parser.add_argument("--grid_columns", type=int, default=8)
    args = parser.parse_args(argv)
    args.target = args.target or DEFAULT_TARGET
    check_demo_args(args)
    config = resolve_config(args, fallback_model=DEMO_MODEL)  # any demo-world model samples like the shipped one
    from utils.concepts import concept_from_args, demo_attribute

    concept = concept_from_args(args, config["seed"])
    if concept.kind != "demo":
        raise UsageError(f"--target {args.target!r} is not a demo-world value; pass a style, shape, colour, background or size of demo/world.py (e.g. stripes, circle)")
    from demo.judge import judge_file

    judge_path = judge_file(args.judge)
    skill_ratio, tau = concept_hyperparameters(config, concept.kind)
    select_ratio = concept_select_ratio(config, concept.kind)
    started = time.time()

    from demo.judge import load_judge
    from demo.measure import eval_scenes, evaluate
    from neuron_receivers.hook_variants import get_variant
    from utils.paths import concept_dir, run_name
    from utils.pruning import masked_weights
    from utils.storage import save_image, write_text
    from utils.workflow import Session, describe_mask, save_mask_and_export, save_run_config, setup_logging, union_for_concept

    if get_variant(config["hook_module"]).component != "unet":
        raise UsageError("the demo prunes UNet FFNs; use --hook_module unet or unet-ffn-1")
    folder = concept_dir(config["res_path"], config["model_id"], concept.name)
    for path in (folder / "demo", folder / "pruned"):  # a file where a results folder goes: refused before any work
        output_folder(str(path), "the results folder under --res_path")
    judge = load_judge(judge_path)  # a missing or corrupt judge is refused before the model is loaded
    setup_logging()
    session = Session(config)
    tau = session.effective_tau(tau)
    attribute = demo_attribute(concept.name)
    masks = union_for_concept(session, concept, skill_ratio, tau, select_ratio)
    mask_path = folder / "pruned" / run_name(skill_ratio, tau, select_ratio, session.variant.name) / "prune_mask.safetensors"
    settings = {"targets": [concept.name], "skill_ratio": skill_ratio, "timesteps": tau, "select_ratio": select_ratio}
    mask_meta = save_mask_and_export(session, masks, mask_path, settings, None)
    print(describe_mask(mask_meta, mask_path))

    targets, others = eval_scenes(attribute, concept.name, args.eval_prompts)
    before, target_before, other_before = evaluate(session.pipe, judge, attribute, concept.name, targets, others, config)
    with masked_weights(session.modules, masks):  # the session's pipeline is left as it was loaded
        after, target_after, other_after = evaluate(session.pipe, judge, attribute, concept.name, targets, others, config)

    out = folder / "demo"
    n = args.grid_columns
    save_image(out / "grid.png", image_grid([target_before[:n], target_after[:n], other_before[:n], other_after[:n]]))
    metrics = {
        "concept": f"{attribute}={concept.name}",
        "model_id": config["model_id"],
        "skill_ratio": skill_ratio,
        "timesteps": tau,
        "select_ratio": select_ratio,
        "pruned_weights": mask_meta["num_pruned"],
        "pruned_fraction_of_unet": mask_meta["fraction_of_component"],
        "eval_prompts": args.eval_prompts,
        "before": before,
        "after": after,
        "mask": str(mask_path),
        "seconds": round(time.time() - started, 1),
        "rows_of_grid_png": ["target before", "target after", "other before", "other after"],
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    save_run_config(out, session.resolved_config(target=concept.name, eval_prompts=args.eval_prompts, judge=str(judge_path), **settings))
    print(
        f"{attribute}={concept.name}: detected in {100 * before['detection']:.0f}% of target images before, "
        f"{100 * after['detection']:.0f}% after; other attributes {100 * before['other_accuracy']:.0f}% -> "
        f"{100 * after['other_accuracy']:.0f}% right; {100 * metrics['pruned_fraction_of_unet']:.2f}% of UNet weights pruned"
    )
    print(f"wrote {out / 'metrics.json'} and {out / 'grid.png'}")
    return metrics


if __name__ == "__main__":
    run_cli(main)
