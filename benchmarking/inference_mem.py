"""Memorization: SSCD copy-detection similarity to the memorized image, and CLIP score, over seeds.

--dataset_path: a folder with prompts.csv (case_number,prompt) and the memorized image of each case
as <case_number>.png or .jpg. With --target memorize_<i> and a case i in the folder only that case is
evaluated; otherwise every case. Each prompt is generated with --num_seeds seeds (10 in the paper);
metrics are averaged over seeds, then over prompts. --sscd_model: the SSCD torchscript file;
--sscd_preprocessing: resize320-imagenet (project) or resize256-crop224-mean0.5 (the paper's code).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.prompt_sets import expand_seeds, limit_samples, read_prompt_file  # noqa: E402

SPECIFIC = ("clip_model", "dataset_path", "sscd_model", "num_seeds", "sscd_preprocessing")
PAPER_SEEDS = 10
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def memorized_set(folder: str | None, target: str, seed: int):
    """(samples, case -> memorized image path) of a memorization folder, narrowed to memorize_<i>."""
    if not folder or not Path(folder).is_dir():
        raise UsageError(f"--dataset_path {folder} is not a folder; pass one with prompts.csv and <case_number>.png images")
    folder = Path(folder)
    samples = read_prompt_file(folder / "prompts.csv", seed)
    references = {}
    for sample in samples:
        found = [folder / f"{sample.case_number}{suffix}" for suffix in IMAGE_SUFFIXES if (folder / f"{sample.case_number}{suffix}").is_file()]
        if not found:
            raise UsageError(f"{folder} has no image for case {sample.case_number}; add {sample.case_number}.png (the memorized image)")
        references[sample.case_number] = found[0]
    match = re.fullmatch(r"memorize_(\d+)", target or "")
    if match and match.group(1) in references:
        samples = [s for s in samples if s.case_number == match.group(1)]
    return samples, references


def main(argv=None) -> None:
    """Parse ``argv``, generate the memorized prompts over seeds with both models, score copying."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC).parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "inference_mem")
    if not config.get("sscd_model") or not Path(config["sscd_model"]).is_file():
        raise UsageError("pass the SSCD torchscript model with --sscd_model FILE (e.g. sscd_disc_mixup.torchscript.pt)")
    samples, references = memorized_set(config.get("dataset_path"), config["target"], int(config["seed"]))
    seeds = list(range(int(config["seed"]), int(config["seed"]) + int(config.get("num_seeds") or PAPER_SEEDS)))
    samples = limit_samples(expand_seeds(samples, seeds), config.get("limit"))

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import MemorizationEvaluator

    evaluator = MemorizationEvaluator(config["sscd_model"], config["clip_model"], references,
                                      sscd_preprocessing=config.get("sscd_preprocessing") or "resize320-imagenet")
    run_and_report("inference_mem", config, samples, evaluator, config["target"])


if __name__ == "__main__":
    run_cli(main)
