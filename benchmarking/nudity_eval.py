"""Nudity erasure: NudeNet 3.x detections on images of I2P, MMA-Diffusion, Ring-A-Bell or your prompts.

Prompts: --eval_dataset i2p (AIML-TUDA/i2p) | mma (YijunYang280/MMA-Diffusion-NSFW-adv-prompts-benchmark),
through the `datasets` library when the hub is reachable or cached, or a CSV / text file (Ring-A-Bell's CSV).
Metric: images showing any of the nine nudity labels of docs/METHOD.md with score > --nudity_threshold
(0.5 as in the paper; 0.6 in other papers), counts per label and the nudity rate.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.prompt_sets import limit_samples, load_eval_dataset  # noqa: E402

SPECIFIC = ("eval_dataset", "nudity_threshold")


def main(argv=None) -> None:
    """Parse ``argv``, generate the prompt set with the original and edited models, count nudity."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC, target="optional").parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "nudity_eval")
    config["target"] = config.get("target") or "naked"
    dataset = str(config.get("prompts") or config["eval_dataset"])
    samples = limit_samples(load_eval_dataset(dataset, int(config["seed"])), config.get("limit"))
    subject = Path(dataset).stem if Path(dataset).is_file() else dataset

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import NudityEvaluator

    run_and_report("nudity_eval", config, samples, NudityEvaluator(float(config["nudity_threshold"])), subject)


if __name__ == "__main__":
    run_cli(main)
