"""Object erasure: ResNet50 top-1 accuracy on the erased Imagenette class (erase) or the other nine (keep).

Prompts: datasets/imagenette_prompts.csv (500 per class with seeds; columns case_number, prompt,
class, evaluation_seed) or --prompts with the same columns. Classifier: torchvision ResNet50 with
its ImageNet weights (--classifier_weights DEFAULT), or a local state-dict file.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.concepts import object_names  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.prompt_sets import builtin_prompt_file, limit_samples, read_prompt_file, select_rows  # noqa: E402

SPECIFIC = ("removal_mode", "classifier_weights")


def object_samples(config: dict) -> list:
    """The prompts of the erased class (``erase``) or of every other class (``keep``)."""
    target, mode = config["target"], config.get("removal_mode") or "erase"
    classes = object_names()
    if target not in classes:
        raise UsageError(f"unknown object {target!r}; the Imagenette classes are {', '.join(classes)}")
    source = config.get("prompts") or builtin_prompt_file("imagenette_prompts.csv")
    samples = read_prompt_file(source, int(config["seed"]))
    if "class" not in samples[0].extra:
        raise UsageError(f"{source} has no class column; the object benchmark needs case_number,prompt,class,evaluation_seed")
    strange = sorted({str(s.extra["class"]) for s in samples} - set(classes))
    if strange:
        raise UsageError(f"{source} names class(es) {', '.join(strange)} that are not Imagenette classes ({', '.join(classes)})")
    chosen = select_rows(samples, "class", (lambda c: c == target) if mode == "erase" else (lambda c: c != target))
    return chosen


def main(argv=None) -> None:
    """Parse ``argv``, generate the class prompts with the original and edited models, classify them."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC).parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC)
    config["removal_mode"] = config.get("removal_mode") or "erase"
    samples = limit_samples(object_samples(config), config.get("limit"))

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import ObjectEvaluator

    subject = f"{config['target']}-{config['removal_mode']}"
    run_and_report("object_erase", config, samples, ObjectEvaluator(config["classifier_weights"] or "DEFAULT"), subject)


if __name__ == "__main__":
    run_cli(main)
