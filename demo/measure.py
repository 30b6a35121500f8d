"""Judge a demo-world model's generations: does it draw a concept, and the other attributes right?

Shared by ``demo/run_demo.py`` (one concept, one mask) and ``demo/erasure_table.py`` (a grid of masks).
Target scenes carry the concept (``attribute=value``); "other" scenes are drawn from the whole world
without it. Detection = the fraction of target images whose ``attribute`` the judge names ``value``;
accuracy = per attribute other than the concept's, the fraction of other images the judge names right.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from demo.world import ATTRIBUTES, Scene, dataset

TARGET_SEED, OTHER_SEED = 200, 300  # the evaluation scenes never overlap the discovery pairs (seed 0)


def eval_scenes(attribute: str, value: str, count: int, draw: int = 0) -> tuple[list[tuple[Scene, int]], list[tuple[Scene, int]]]:
    """(target scenes, other scenes), ``count`` each, as (scene, render seed). ``draw`` 0 gives the scenes every
    table of demo/README.md was judged on; another integer gives other scenes (a held-out check of a chosen row)."""
    targets = dataset(count, TARGET_SEED + 1000 * draw, **{attribute: value})
    pool = dataset(4 * count, OTHER_SEED + 1000 * draw)
    others = [item for item in pool if getattr(item[0], attribute) != value][:count]
    return targets, others


def generate(pipe, scenes, config: dict[str, Any], batch: int = 64) -> list:
    """PIL images of the scenes' captions, each with its render seed (so before/after pairs match)."""
    from utils.generation import run_pipeline

    images = []
    for i in range(0, len(scenes), batch):
        chunk = scenes[i : i + batch]
        images += run_pipeline(pipe, [s.caption() for s, _ in chunk], [seed % (2**31) for _, seed in chunk], config, output_type="pil")
    return images


def judge_images(judge, images) -> dict[str, torch.Tensor]:
    """Attribute -> the judge's predicted class index for each PIL image."""
    from demo.judge import predict, to_tensor

    return predict(judge, to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in images])))


def accuracy_per_attribute(predicted: dict[str, torch.Tensor], scenes, names) -> dict[str, float]:
    """Attribute -> the fraction of ``scenes`` (scene, seed) whose attribute the judge's ``predicted`` names right."""
    return {name: float(np.mean([int(p) == scene.labels()[name] for p, (scene, _) in zip(predicted[name], scenes)])) for name in names}


def score(judge, attribute: str, value: str, target_images, targets, other_images, others) -> dict[str, Any]:
    """Detection of ``value`` on the target images and per-attribute accuracy on the other images, each headline
    with its 95% bootstrap interval over scenes (``detection_ci95``, ``other_accuracy_ci95``; utils/bootstrap.py)."""
    from utils.bootstrap import mean_interval

    rest = [name for name in ATTRIBUTES if name != attribute]
    on_targets = judge_images(judge, target_images)
    on_others = judge_images(judge, other_images)
    accuracy = accuracy_per_attribute(on_others, others, rest)
    detected = (on_targets[attribute] == ATTRIBUTES[attribute].index(value)).float().tolist()
    per_other = [float(np.mean([int(on_others[name][i]) == scene.labels()[name] for name in rest])) for i, (scene, _) in enumerate(others)]
    return {
        "detection": float(np.mean(detected)),
        "detection_ci95": mean_interval(detected),
        "other_accuracy": float(np.mean(list(accuracy.values()))),
        "other_accuracy_ci95": mean_interval(per_other),
        "other_accuracy_per_attribute": accuracy,
        # the target images' other attributes: does the concept's removal keep the rest of the scene?
        "target_other_attributes_accuracy": accuracy_per_attribute(on_targets, targets, rest),
    }


def evaluate(pipe, judge, attribute: str, value: str, targets, others, config: dict[str, Any]) -> tuple[dict[str, Any], list, list]:
    """Generate target and other scenes with the pipeline as it is now; return (scores, target images, other images)."""
    target_images = generate(pipe, targets, config)
    other_images = generate(pipe, others, config)
    return score(judge, attribute, value, target_images, targets, other_images, others), target_images, other_images


def generation_accuracy(pipe, judge, count: int, config: dict[str, Any], seed: int = 400) -> dict[str, float]:
    """The judge's accuracy per attribute on ``count`` generations of random scenes (the model's quality)."""
    scenes = dataset(count, seed)
    return accuracy_per_attribute(judge_images(judge, generate(pipe, scenes, config)), scenes, ATTRIBUTES)
