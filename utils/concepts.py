"""Concepts and their (base, target) prompt pairs, built from the word lists in ``datasets/``.

No torch import here. The pair templates follow the paper's reference code (see
``docs/METHOD.md``):

- art:      "a photo of a {thing}"  /  "a {thing} in the style of {artist}"
- naked:    "a photo of a {person}" /  "a photo of a naked {person}"
- object:   "a {scene}"             /  "a {object} in a {scene}"
- gender:   "a headshot of a {male word}" / "a headshot of a {female word}" for ``male``
            (erases female: female prompts turn male), the reverse for ``female``;
            one random seed per pair, drawn from the run's seed.
- memorize: target prompts from a file, base prompts empty.
- custom:   two files of equal length given by the user.
- demo:     an attribute value of the embedded demo world (``demo/world.py``; e.g. ``stripes``,
            ``circle``, ``red``): target scenes carry the value, each base scene is the same scene
            with the neutral value (style ``plain``, or another value of the attribute), one render
            seed per pair.

Every pair except gender uses the run's seed for both prompts (the reference resets the global
seed to ``seed`` before every generation).
"""
from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UsageError

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"
MEMORIZE_PATTERN = re.compile(r"^memorize_\d+$")


@dataclass(frozen=True)
class PromptPair:
    """One base prompt, its target prompt, and the seed both are generated with."""

    base: str
    target: str
    seed: int


@dataclass(frozen=True)
class Concept:
    """A named concept: its kind (art, naked, object, gender, memorize, custom) and prompt pairs."""

    name: str
    kind: str
    pairs: tuple[PromptPair, ...]


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise UsageError(f"{what} file {path} does not exist; pass an existing file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first prompt
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise UsageError(f"{what} file {path} is not UTF-8 text; pass a text file with one prompt a line")
    return [line for line in (line.strip() for line in text.splitlines()) if line]


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or any(col not in reader.fieldnames for col in columns):
            raise UsageError(f"{path} must be a CSV with the columns {', '.join(columns)}")
        return [{k: (v or "").strip() for k, v in row.items()} for row in reader]


def artist_phrases(datasets_dir: Path = DATASETS_DIR) -> dict[str, str]:
    """Map each artist target (e.g. ``Da Vinci``) to the phrase used in prompts."""
    return {row["target"]: row["style_phrase"] for row in _read_csv(datasets_dir / "artists.csv", ("target", "style_phrase"))}


def object_names(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """The 10 Imagenette object targets."""
    return _read_lines(datasets_dir / "objects.txt", "objects")


def gender_pairs(datasets_dir: Path = DATASETS_DIR) -> list[tuple[str, str]]:
    """(male word, female word) pairs."""
    return [(row["male"], row["female"]) for row in _read_csv(datasets_dir / "gender_pairs.csv", ("male", "female"))]


DEMO_PAIRS = 32  # prompt pairs of a demo-world concept


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


def known_targets(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """Every built-in target name (memorize_i is also accepted, with its prompt file)."""
    return [*artist_phrases(datasets_dir), "naked", *object_names(datasets_dir), "male", "female", "memorize_<i>",
            "a demo-world value (stripes, circle, red, ...)"]


def concept_kind(target: str, datasets_dir: Path = DATASETS_DIR) -> str | None:
    """The kind of a built-in target, or None when the name is not built in."""
    if target in artist_phrases(datasets_dir):
        return "art"
    if target == "naked":
        return "naked"
    if target in object_names(datasets_dir):
        return "object"
    if target in ("male", "female"):
        return "gender"
    if MEMORIZE_PATTERN.match(target):
        return "memorize"
    if demo_attribute(target):
        return "demo"
    return None


def _object_scenes(target: str, datasets_dir: Path) -> list[str]:
    own = [row["scene"] for row in _read_csv(datasets_dir / "object_scenes.csv", ("object", "scene")) if row["object"] == target]
    return own or _read_lines(datasets_dir / "object_scenes.txt", "scenes")


def _resolve_prompt_file(name_or_path: str, datasets_dir: Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = datasets_dir / f"{name_or_path}.txt"
    if named.is_file():
        return named
    raise UsageError(f"prompt file {name_or_path!r} not found as a path or as datasets/{name_or_path}.txt; pass an existing file")


def build_concept(
    target: str | None,
    seed: int,
    target_file: str | None = None,
    base_prompts: str | None = None,
    target_prompts: str | None = None,
    datasets_dir: Path = DATASETS_DIR,
) -> Concept:
    """Return the concept ``target`` with its prompt pairs; raise UsageError for unknown input.

    A custom concept is any name given together with ``base_prompts`` and ``target_prompts`` files.
    """
    if not target:
        raise UsageError("no concept given; pass --target: a demo-world value on the demo model (e.g. stripes, circle), "
                         "or on Stable Diffusion e.g. 'Van Gogh', naked, parachute, male")
    if (base_prompts is None) != (target_prompts is None):
        raise UsageError("a custom concept needs both --base_prompts and --target_prompts files")
    if base_prompts is not None:
        bases = _read_lines(Path(base_prompts), "base prompts")
        targets = _read_lines(Path(target_prompts), "target prompts")
        if not bases or not targets:
            raise UsageError("the --base_prompts and --target_prompts files must each hold at least one prompt")
        if len(bases) != len(targets):
            raise UsageError(
                f"--base_prompts has {len(bases)} prompts but --target_prompts has {len(targets)}; give one base prompt per target prompt"
            )
        return Concept(target, "custom", tuple(PromptPair(b, t, seed) for b, t in zip(bases, targets)))

    kind = concept_kind(target, datasets_dir)
    if kind is None:
        raise UsageError(
            f"unknown target {target!r}; choose one of {', '.join(known_targets(datasets_dir))}, "
            "or give a custom concept with --base_prompts and --target_prompts"
        )
    if kind == "art":
        artist = artist_phrases(datasets_dir)[target]
        things = _read_lines(datasets_dir / "art_things.txt", "things")
        pairs = [PromptPair(f"a photo of a {t}", f"a {t} in the style of {artist}", seed) for t in things]
    elif kind == "naked":
        people = _read_lines(datasets_dir / "naked_people.txt", "people")
        pairs = [PromptPair(f"a photo of a {p}", f"a photo of a naked {p}", seed) for p in people]
    elif kind == "object":
        scenes = _object_scenes(target, datasets_dir)
        pairs = [PromptPair(f"a {s}", f"a {target} in a {s}", seed) for s in scenes]
    elif kind == "gender":
        rng = random.Random(seed)
        pairs = []
        for male, female in gender_pairs(datasets_dir):
            base, tgt = (male, female) if target == "male" else (female, male)
            pairs.append(PromptPair(f"a headshot of a {base}", f"a headshot of a {tgt}", rng.randrange(2**31)))
    elif kind == "demo":
        pairs = demo_pairs(demo_attribute(target), target, DEMO_PAIRS, seed)
    else:  # memorize
        prompts = _read_lines(_resolve_prompt_file(target_file or target, datasets_dir), "memorized prompts")
        if not prompts:
            raise UsageError(f"the prompt file for {target} is empty; give one prompt a line")
        pairs = [PromptPair("", p, seed) for p in prompts]
    return Concept(target, kind, tuple(pairs))


MAX_SLUG = 64


def slugify(text: str) -> str:
    """A folder-safe name of one path part: lower case letters and digits of any script, ``.+-`` kept
    inside, other runs replaced by ``_``; never ``.``/``..`` or hidden. A name that keeps nothing, or
    longer than MAX_SLUG characters, ends in a digest of the whole text, so different names never share
    a folder (``梵高`` and ``莫奈`` stay apart; a 300-character name fits a file system)."""
    slug = re.sub(r"[^\w.+-]+|_+", "_", text.lower(), flags=re.UNICODE).strip("_").lstrip(".-")
    if slug and len(slug) <= MAX_SLUG:
        return slug
    import hashlib

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"{slug[: MAX_SLUG - 11].rstrip('_.+-')}-{digest}" if slug else f"concept-{digest}"


DEMO_MODEL = "demo/model"
DEMO_MODEL_KINDS = ("demo", "custom")  # what the demo model can be asked: its world's values, or the user's own prompts


def check_fits_model(concept: Concept, model_id: str) -> Concept:
    """``concept`` unchanged; UsageError when a concept of the paper's models (an artist, nudity, an
    object, a gender, a memorized image) is asked of the demo model, which knows only the demo world."""
    from utils.config import same_model

    if concept.kind not in DEMO_MODEL_KINDS and same_model(str(model_id), DEMO_MODEL):
        raise UsageError(f"{concept.name!r} is a concept of the paper's Stable Diffusion models, but the model is the demo model "
                         f"({DEMO_MODEL}), which knows only the demo world; pass --model_id CompVis/stable-diffusion-v1-4 "
                         "(or another SD model), or a demo-world target such as stripes or circle")
    return concept


def concept_from_args(args, seed: int, model_id: str | None = None) -> Concept:
    """The concept a wanda script's parsed ``--target/--target_file/--base_prompts/--target_prompts`` name,
    checked against ``model_id`` when given (see check_fits_model)."""
    concept = build_concept(args.target, seed, args.target_file, args.base_prompts, args.target_prompts)
    return check_fits_model(concept, model_id) if model_id is not None else concept
