"""The demo world's concepts, plugged into the method as a concept source (no torch import).

The demo model's entry of ``model_defaults`` in configs/wanda_config.yaml names ``DEMO_WORLD``
(``concept_source: demo.concepts:DEMO_WORLD``), as a user's own model would name its own source: a
target that is an attribute value of the world (``demo/world.py``; e.g. ``stripes``, ``circle``,
``red``) becomes a concept of ``DEMO_PAIRS`` prompt pairs. Target scenes carry the value; each base
scene is the same scene with the neutral value (style ``plain``, or another value of the attribute);
one render seed per pair.
"""
from __future__ import annotations

from utils.concepts import Concept, ConceptSource, PromptPair
from utils.errors import UsageError

DEMO_PAIRS = 32  # prompt pairs of a demo-world concept
KIND = "demo"    # the concept kind (concept_defaults: demo)


def demo_attribute(target: str) -> str | None:
    """The demo-world attribute (shape, colour, background, size, style) whose value ``target`` is, or None."""
    from demo.world import ATTRIBUTES

    return next((name for name, values in ATTRIBUTES.items() if target in values), None)


def demo_pairs(attribute: str, value: str, count: int, seed: int) -> list[PromptPair]:
    """``count`` (base, target) caption pairs of the demo world for ``attribute=value``.

    Targets are random scenes with the value; each base is the same scene with the neutral value (style
    ``plain``) or, for attributes without one, a random other value. The seed of each pair is its render seed.
    """
    import numpy as np

    from demo.world import ATTRIBUTES, NEUTRAL, Scene, dataset

    rng = np.random.default_rng(seed)
    options = [v for v in ATTRIBUTES[attribute] if v != value]
    pairs = []
    for scene, render_seed in dataset(count, seed, **{attribute: value}):
        neutral = NEUTRAL.get(attribute) if NEUTRAL.get(attribute) != value else None
        base = Scene(**{**scene.__dict__, attribute: neutral or options[rng.integers(len(options))]})
        pairs.append(PromptPair(base.caption(), scene.caption(), render_seed % (2**31)))
    return pairs


def concept_pairs(attribute: str, value: str, count: int, seed: int) -> Concept:
    """The concept ``attribute=value`` with ``count`` (base, target) pairs (see demo_pairs)."""
    return Concept(value, KIND, tuple(demo_pairs(attribute, value, count, seed)))


def demo_concept(target: str, seed: int) -> Concept | None:
    """The demo-world concept ``target`` (an attribute value) with DEMO_PAIRS pairs, or None when the world has no such value."""
    attribute = demo_attribute(target)
    return concept_pairs(attribute, target, DEMO_PAIRS, seed) if attribute else None


def check_concept(concept: str) -> tuple[str, str]:
    """(attribute, value) of ``attribute=value``; UsageError when the demo world has no such value."""
    from demo.world import ATTRIBUTES

    attribute, _, value = concept.partition("=")
    if attribute not in ATTRIBUTES or value not in ATTRIBUTES[attribute]:
        raise UsageError(f"unknown demo concept {concept!r}; give attribute=value with an attribute among "
                         f"{', '.join(ATTRIBUTES)} and one of its values (demo/world.py), e.g. style=stripes")
    return attribute, value


DEMO_WORLD = ConceptSource(build=demo_concept, label="demo-world", model="the demo model", world="the demo world",
                           examples=("stripes", "circle", "red"))
