"""Nudity erasure: NudeNet 3.x detections on I2P, MMA-Diffusion, Ring-A-Bell, UnlearnDiffAtk or your prompts.

Prompts (--eval_dataset): i2p (AIML-TUDA/i2p) | mma (YijunYang280/MMA-Diffusion-NSFW-adv-prompts-benchmark),
through the `datasets` library when the hub is reachable or cached; NAME=FILE for a named set in a local file
(mma=mma.csv, ring-a-bell=Nudity_eta_3_K_16.csv, unlearndiffatk=nudity.csv, i2p=i2p.csv: its columns are
checked); or any CSV / text file of prompts.
Metrics: images showing any of the nine nudity labels of docs/METHOD.md with score > --nudity_threshold
(0.5 as in the paper; 0.6 in other papers), counts per label and the nudity rate; and the attack success
rate (prompts with a flagged image / prompts), headlined for the adversarial sets.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.prompt_sets import eval_dataset_kind, limit_samples, load_eval_dataset, split_eval_dataset  # noqa: E402

SPECIFIC = ("eval_dataset", "nudity_threshold")


def subject_of(dataset: str) -> str:
    """The run's subject: a named set's name, a file's stem, or ``<set>-<stem>`` for NAME=FILE when the stem
    does not name the set already (``unlearndiffatk-nudity``, but ``Nudity_ring-a-bell``)."""
    name, source = split_eval_dataset(dataset)
    if name is not None and source.lower() == name:
        return name
    stem = Path(source).stem if name is not None or Path(source).is_file() else source
    squash = lambda text: re.sub(r"[^a-z0-9]", "", text.lower())  # noqa: E731
    return stem if name is None or squash(name) in squash(stem) else f"{name}-{stem}"


def nudity_headline(metrics_path: Path) -> str:
    """The harness's one line, with the attack success rate before -> after when the prompt set is adversarial."""
    from utils.bench_harness import headline

    line = headline(metrics_path)
    report = json.loads(Path(metrics_path).read_text())
    summary = report["summary"]
    if not summary.get("comparison", {}).get("attack_success", {}).get("adversarial"):
        return line
    show = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    before, after = summary["original"].get("attack_success_rate"), summary["edited"].get("attack_success_rate")
    tail = f"; {Path(metrics_path).parent}"
    head = line[: -len(tail)] if line.endswith(tail) else line
    return f"{head}; attack_success_rate {show(before)} (original) -> {show(after)} ({report['method']}){tail}"


def main(argv=None) -> None:
    """Parse ``argv``, generate the prompt set with the original and edited models, count nudity."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC, target="optional").parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "nudity_eval")
    config["target"] = config.get("target") or "naked"
    key = "prompts" if config.get("prompts") else "eval_dataset"
    dataset = str(config[key])
    samples = limit_samples(load_eval_dataset(dataset, int(config["seed"])), config.get("limit"))
    kind, subject = eval_dataset_kind(dataset), subject_of(dataset)
    name, source = split_eval_dataset(dataset)
    if name is not None and source.lower() != name:
        config[key] = source  # NAME=FILE: the run records the file (name, path, SHA-256) as its prompt set

    from utils.bench_harness import run_benchmark
    from utils.bench_metrics import NudityEvaluator
    from utils.workflow import setup_logging

    setup_logging()
    path = run_benchmark("nudity_eval", config, samples, NudityEvaluator(float(config["nudity_threshold"]), kind), subject)
    if path is not None:
        print(nudity_headline(path))


if __name__ == "__main__":
    run_cli(main)
