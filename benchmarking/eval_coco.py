"""COCO: image quality kept after erasure: CLIP score of images against their COCO captions, and FID.

Prompts: --coco_captions (or --prompts), a CSV (case_number,prompt,evaluation_seed; e.g. a COCO-30k
sample) or a text file of captions. Metric: CLIP score per image averaged over images (the reference
averages over batches); FID against --coco_images (real COCO images) with pytorch-fid's Inception
when its weights are available (--fid_weights or the torch hub cache), else reported as skipped.
A --fid_weights file that is missing or does not load, or a --coco_images folder with fewer than two
images, is refused before the first image is generated.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.prompt_sets import limit_samples, read_prompt_file  # noqa: E402

SPECIFIC = ("clip_model", "coco_captions", "coco_images", "fid_weights")


def main(argv=None) -> None:
    """Parse ``argv``, generate the captions with the original and edited models, score them."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC, target="optional").parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "eval_coco")
    captions = config.get("prompts") or config.get("coco_captions")
    if not captions:
        raise UsageError("pass the COCO captions with --coco_captions FILE (a CSV case_number,prompt,evaluation_seed or a text file)")
    if config.get("coco_images") and not Path(config["coco_images"]).is_dir():
        raise UsageError(f"--coco_images {config['coco_images']} is not a folder; pass the folder of real COCO images")
    samples = limit_samples(read_prompt_file(captions, int(config["seed"])), config.get("limit"))

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import CocoEvaluator

    evaluator = CocoEvaluator(config["clip_model"], config.get("coco_images"), config.get("fid_weights"),
                              cache_dir=Path(config["res_path"]) / ".cache" / "fid")  # reference statistics shared by every run
    run_and_report("eval_coco", config, samples, evaluator, config.get("target") or "coco")


if __name__ == "__main__":
    run_cli(main)
