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
- a model's own concepts: a ``ConceptSource`` named in the YAML config (``concept_source:
  module:attribute``, top level or in the model's ``model_defaults`` entry) and imported when a script
  runs; e.g. the demo world's values (``demo/concepts.py``). With ``own_concepts_only`` the model is
  asked only those and custom prompt files.

Every pair except gender uses the run's seed for both prompts (the reference resets the global
seed to ``seed`` before every generation).
"""
from __future__ import annotations

import csv
import importlib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from utils.errors import UsageError

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"
MEMORIZE_PATTERN = re.compile(r"^memorize_\d+$")
BUILT_IN_KINDS = ("art", "naked", "object", "gender", "memorize")  # the paper's concepts, from datasets/


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


@dataclass(frozen=True)
class ConceptSource:
    """A model's own concepts, plugged in by a config's ``concept_source: module:attribute``.

    build: (target name, seed) -> its Concept, or None when the name is not one of them.
    label: what its concepts are called in messages (``a {label} value``, ``a {label} target``).
    model, world: how messages name the model and what it knows ("the demo model", "the demo world").
    examples: a few target names, for messages.
    """

    build: Callable[[str, int], "Concept | None"]
    label: str = "own"
    model: str = "the model"
    world: str = "its own concepts"
    examples: tuple[str, ...] = ()


def load_concept_source(spec: str | None) -> ConceptSource | None:
    """The ConceptSource that ``spec`` (``module:attribute``, e.g. ``demo.concepts:DEMO_WORLD``) names, imported
    now; a plain function (target, seed) -> Concept or None is wrapped in one. None for no spec; UsageError
    when it cannot be imported or is neither."""
    if not spec:
        return None
    module_name, _, attribute = str(spec).partition(":")
    hint = "set concept_source in the config to module:attribute of a ConceptSource (see utils/concepts.py)"
    try:
        found: Any = getattr(importlib.import_module(module_name), attribute) if attribute else None
    except (ImportError, AttributeError) as err:
        raise UsageError(f"concept_source {spec!r} cannot be imported ({err.__class__.__name__}: {err}); {hint}") from None
    if isinstance(found, ConceptSource):
        return found
    if callable(found):
        return ConceptSource(build=found)
    raise UsageError(f"concept_source {spec!r} is not a ConceptSource or a function; {hint}")


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


def known_targets(datasets_dir: Path = DATASETS_DIR, source: ConceptSource | None = None) -> list[str]:
    """Every built-in target name (memorize_i is also accepted, with its prompt file), then the
    ``source``'s concepts in words when given."""
    names = [*artist_phrases(datasets_dir), "naked", *object_names(datasets_dir), "male", "female", "memorize_<i>"]
    if source is not None:
        names.append(f"a {source.label} value ({', '.join([*source.examples, '...'])})")
    return names


def concept_kind(target: str, datasets_dir: Path = DATASETS_DIR, source: ConceptSource | None = None) -> str | None:
    """The kind of a built-in target (else of the ``source``'s concept of that name), or None when the name is neither."""
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
    own = source.build(target, 0) if source is not None else None
    return own.kind if own is not None else None


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
    source: ConceptSource | None = None,
) -> Concept:
    """Return the concept ``target`` with its prompt pairs; raise UsageError for unknown input.

    A custom concept is any name given together with ``base_prompts`` and ``target_prompts`` files.
    A name that is not built in is looked up in ``source`` (the model's own concepts) when given.
    """
    if not target:
        own = f"{_own_value(source)} on {source.model} (e.g. {', '.join(source.examples[:2])}), or " if source is not None else ""
        raise UsageError(f"no concept given; pass --target: {own}on Stable Diffusion e.g. 'Van Gogh', naked, parachute, male")
    if (base_prompts is None) != (target_prompts is None):
        raise UsageError("a custom concept needs both --base_prompts and --target_prompts files")
    if base_prompts is not None:
        return custom_concept(target, seed, base_prompts, target_prompts)
    kind = concept_kind(target, datasets_dir)
    if kind is None:
        own = source.build(target, seed) if source is not None else None
        if own is not None:
            return own
        raise UsageError(
            f"unknown target {target!r}; choose one of {', '.join(known_targets(datasets_dir, source))}, "
            "or give a custom concept with --base_prompts and --target_prompts"
        )
    return Concept(target, kind, tuple(built_in_pairs(kind, target, seed, target_file, datasets_dir)))


def custom_concept(name: str, seed: int, base_prompts: str, target_prompts: str) -> Concept:
    """The custom concept ``name`` of two prompt files of equal length, one prompt a line; UsageError otherwise."""
    bases = _read_lines(Path(base_prompts), "base prompts")
    targets = _read_lines(Path(target_prompts), "target prompts")
    if not bases or not targets:
        raise UsageError("the --base_prompts and --target_prompts files must each hold at least one prompt")
    if len(bases) != len(targets):
        raise UsageError(
            f"--base_prompts has {len(bases)} prompts but --target_prompts has {len(targets)}; give one base prompt per target prompt"
        )
    return Concept(name, "custom", tuple(PromptPair(b, t, seed) for b, t in zip(bases, targets)))


def built_in_pairs(kind: str, target: str, seed: int, target_file: str | None, datasets_dir: Path) -> list[PromptPair]:
    """The prompt pairs of the built-in concept ``target`` of ``kind`` (the paper's templates, see the module's doc)."""
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
    else:  # memorize
        prompts = _read_lines(_resolve_prompt_file(target_file or target, datasets_dir), "memorized prompts")
        if not prompts:
            raise UsageError(f"the prompt file for {target} is empty; give one prompt a line")
        pairs = [PromptPair("", p, seed) for p in prompts]
    return pairs


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


def _own_value(source: ConceptSource) -> str:
    return f"a {source.label} value"


def check_fits_model(concept: Concept, config: dict[str, Any], source: ConceptSource | None = None) -> Concept:
    """``concept`` unchanged; UsageError when the config says its model knows only its own concepts
    (``own_concepts_only``) and ``concept`` is a built-in one of the paper's models (an artist, nudity, an
    object, a gender, a memorized image) rather than one of ``source``'s or a custom one."""
    if not config.get("own_concepts_only") or concept.kind not in BUILT_IN_KINDS:
        return concept
    model = source.model if source is not None else "a model"
    world = source.world if source is not None else "its own concepts"
    own = f", or a {source.label} target such as {' or '.join(source.examples[:2])}" if source is not None and source.examples else ""
    raise UsageError(f"{concept.name!r} is a concept of the paper's Stable Diffusion models, but the model is {model} "
                     f"({config.get('model_id')}), which knows only {world}; "
                     f"pass --model_id CompVis/stable-diffusion-v1-4 (or another SD model){own}")


def concept_for_config(config: dict[str, Any], target: str | None, target_file: str | None = None,
                       base_prompts: str | None = None, target_prompts: str | None = None) -> Concept:
    """The concept ``target`` (or the custom one of the prompt files) for a run of ``config``: built with the
    config's concept source (``concept_source``) and checked against its ``own_concepts_only``."""
    source = load_concept_source(config.get("concept_source"))
    concept = build_concept(target, int(config["seed"]), target_file, base_prompts, target_prompts, source=source)
    return check_fits_model(concept, config, source)


def concept_from_args(args, config: dict[str, Any]) -> Concept:
    """The concept a wanda script's parsed ``--target/--target_file/--base_prompts/--target_prompts`` name,
    for a run of the resolved ``config`` (see concept_for_config)."""
    return concept_for_config(config, args.target, args.target_file, args.base_prompts, args.target_prompts)
