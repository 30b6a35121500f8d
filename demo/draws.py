"""What does a demo-world model draw for each value of one attribute? Per-value accuracy and confusions.

For every value of --attribute (e.g. each of the 12 styles) it generates --per_value random scenes
with that value and lets the judge name the attribute: the fraction named right, and what the judge
named instead (the model's confusions, e.g. waves drawn as stripes). With --grid it writes a PNG
whose rows alternate ground truth (demo/world.py's render) and the model's generation of the same
scenes, one pair of rows per value (at most --grid_columns scenes each).
Example: python demo/draws.py --model_id demo/model --attribute style --per_value 16 --grid results/draws-style.png
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import repo_path  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402

SEED = 500  # scenes of value i come from dataset(per_value, SEED + i): apart from the other evaluation seeds


def value_confusions(predicted: list[int], values: tuple[str, ...], per_value: int) -> dict[str, dict]:
    """Per value: {"accuracy": fraction named right, "named": {other value: count}} from predictions
    laid out value by value, ``per_value`` each, in the order of ``values``."""
    table = {}
    for i, value in enumerate(values):
        named = collections.Counter(values[k] for k in predicted[i * per_value:(i + 1) * per_value])
        table[value] = {"accuracy": named[value] / per_value, "named": {k: n for k, n in named.most_common() if k != value}}
    return table


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DRAWS_KEYS = ("model", "attribute", "per_value", "tables")


def check_args(args) -> None:
    """UsageError (one sentence) for a bad option, before the model is loaded or anything is written: an unknown
    attribute, a non-positive count, a NaN guidance, an unknown device, a --grid that is not an image path, or an
    --out that is a folder or an existing file other than a table of this script."""
    from demo.checks import device_name, integer, number, output_file, read_json
    from demo.world import ATTRIBUTES
    from utils.config import check_model_id

    if args.attribute not in ATTRIBUTES:
        raise UsageError(f"unknown --attribute {args.attribute!r}; use one of {', '.join(ATTRIBUTES)}")
    for option in ("per_value", "num_inference_steps", "grid_columns"):
        integer(getattr(args, option), f"--{option}")
    for guidance in args.guidance_scales:
        number(guidance, "--guidance_scales")
    device_name(args.device)
    check_model_id(repo_path(args.model_id))
    if args.grid is not None:
        output_file(args.grid, "--grid", IMAGE_SUFFIXES)
    if args.out is not None and output_file(args.out, "--out", (".json",)).exists():
        try:
            earlier = read_json(args.out, "a table of draws.py")
        except UsageError:
            earlier = None
        if not (isinstance(earlier, dict) and set(DRAWS_KEYS) <= set(earlier)):
            raise UsageError(f"--out {args.out} exists and is not a table of draws.py; pass a new path (nothing of yours is replaced)")


def main(argv=None) -> dict:
    """Parse ``argv``; generate, judge and tabulate every value (and write the grid); return the table per guidance scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_id", default="demo/model", help="a diffusers pipeline folder or hub id of a demo-world model")
    parser.add_argument("--judge", default=None, help="judge weights (default: demo/judge.safetensors)")
    parser.add_argument("--attribute", default="style", help="shape, colour, background, size or style")
    parser.add_argument("--per_value", type=int, default=16, help="scenes per value")
    parser.add_argument("--num_inference_steps", type=int, default=20)
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[5.0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--grid", default=None, help="write the truth/generation grid (first guidance scale) to this PNG")
    parser.add_argument("--grid_columns", type=int, default=8)
    parser.add_argument("--out", default=None, help="write the tables and each guidance scale's mean accuracy as JSON here")
    args = parser.parse_args(argv)
    check_args(args)
    import torch
    from PIL import Image

    from demo.judge import judge_file, load_judge
    from demo.measure import generate, judge_images
    from demo.run_demo import image_grid
    from demo.world import ATTRIBUTES, dataset, render
    from utils.model_loading import load_pipeline, resolve_device
    from utils.storage import save_image, write_text

    judge = load_judge(judge_file(args.judge))  # a missing or corrupt judge is refused before the model loads
    pipe = load_pipeline(repo_path(args.model_id), resolve_device(args.device), torch.float32)
    values = ATTRIBUTES[args.attribute]
    scenes = [item for i, value in enumerate(values) for item in dataset(args.per_value, SEED + i, **{args.attribute: value})]
    tables, means = {}, {}
    for n, guidance in enumerate(args.guidance_scales):
        config = {"num_inference_steps": args.num_inference_steps, "guidance_scale": guidance, "batch_size": 32}
        images = generate(pipe, scenes, config)
        table = value_confusions(judge_images(judge, images)[args.attribute].tolist(), values, args.per_value)
        tables[str(guidance)] = table
        mean = means[str(guidance)] = sum(row["accuracy"] for row in table.values()) / len(table)
        print(f"{args.attribute} at guidance {guidance}: mean {mean:.0%}")
        for value, row in table.items():
            named = ", ".join(f"{k} {c}" for k, c in row["named"].items())
            print(f"  {value}: {row['accuracy']:.0%}" + (f" (named {named})" if named else ""))
        if args.grid and n == 0:
            rows = []
            for i in range(len(values)):
                chunk = slice(i * args.per_value, i * args.per_value + min(args.per_value, args.grid_columns))
                rows.append([Image.fromarray(render(scene, seed)) for scene, seed in scenes[chunk]])
                rows.append(images[chunk])
            save_image(args.grid, image_grid(rows))
            print(f"grid (rows: truth, generation; per value in the order above): {args.grid}")
    if args.out:
        write_text(args.out, json.dumps({"model": args.model_id, "attribute": args.attribute, "per_value": args.per_value,
                                            "mean_accuracy": means, "tables": tables}, indent=2) + "\n")
    return tables


if __name__ == "__main__":
    run_cli(main)
