"""Object erasure: ResNet50 top-1 accuracy on the erased Imagenette class (erase) or the other nine (keep).

Prompts: datasets/imagenette_prompts.csv (500 per class with seeds; columns case_number, prompt,
class, evaluation_seed) or --prompts with the same columns. Classifier: torchvision ResNet50 with
its ImageNet weights (--classifier_weights DEFAULT), or a local state-dict file.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.concepts import object_names  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.prompt_sets import builtin_prompt_file, limit_samples, read_prompt_file, select_rows  # noqa: E402

SPECIFIC = ("removal_mode", "classifier_weights")


def object_samples(config: dict) -> list:
    """The prompts of the erased class (``erase``) or of every other class (``keep``).

    Class names (``--target`` and the ``class`` column) match ignoring case and surrounding spaces,
    so ESD's and the paper's Imagenette CSVs ("English springer") load as they are; each sample's
    class and the target are then spelled as in datasets/objects.txt.
    """
    mode = config.get("removal_mode") or "erase"
    classes = object_names()
    canonical = {c.strip().lower(): c for c in classes}
    target = canonical.get(str(config["target"]).strip().lower())
    if target is None:
        raise UsageError(f"unknown object {config['target']!r}; the Imagenette classes are {', '.join(classes)}")
    config["target"] = target
    source = config.get("prompts") or builtin_prompt_file("imagenette_prompts.csv")
    samples = read_prompt_file(source, int(config["seed"]))
    if "class" not in samples[0].extra:
        raise UsageError(f"{source} has no class column; the object benchmark needs case_number,prompt,class,evaluation_seed")
    strange = sorted({str(s.extra["class"]) for s in samples if str(s.extra["class"]).strip().lower() not in canonical})
    if strange:
        raise UsageError(f"{source} names class(es) {', '.join(strange)} that are not Imagenette classes ({', '.join(classes)})")
    samples = [replace(s, extra={**s.extra, "class": canonical[str(s.extra["class"]).strip().lower()]}) for s in samples]
    return select_rows(samples, "class", (lambda c: c == target) if mode == "erase" else (lambda c: c != target))


def main(argv=None) -> None:
    """Parse ``argv``, generate the class prompts with the original and edited models, classify them."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC).parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "object_erase")
    config["removal_mode"] = config.get("removal_mode") or "erase"
    samples = limit_samples(object_samples(config), config.get("limit"))

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import ObjectEvaluator

    subject = f"{config['target']}-{config['removal_mode']}"
    run_and_report("object_erase", config, samples, ObjectEvaluator(config["classifier_weights"] or "DEFAULT"), subject)


if __name__ == "__main__":
    run_cli(main)
