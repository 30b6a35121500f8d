"""The harness every benchmarking/ script runs: generate original and edited images, score, report.

``run_benchmark`` takes the resolved config, the prompt set and an ``Evaluator`` and:

0. checks everything it will need before it writes or generates anything: the run folder
   (``--out_dir`` must be a folder, empty, new or an earlier run of the same benchmark),
   the image names (each inside the run folder, unique), the edit (``baselines.check_edit``: the
   checkpoint is readable, and ``check_edit_fits``: its tensors fit the model) and the judge
   (``Evaluator.check``: its model loads);
1. splits the prompts into fixed batches of ``batch_size`` (by global index) and hands the batches
   to the processes (``utils.distributed.share``: accelerate's split rule; one process without a launcher),
   so every image comes out of the same batch whatever the number of processes;
2. generates the images missing from ``original/`` and then ``edited/`` (each model is loaded once,
   only when it has work, and freed before the next; ``--baseline sd`` generates once), each image
   with its prompt's own seed and guidance scale (see below), saved as ``<key>.png``: a rerun
   resumes where it stopped (see "Resuming");
3. scores every image read back from disk, batch by batch, and gathers the per-prompt values on
   rank 0, which writes ``metrics.json`` (schema below), ``grid.png`` and ``config.yaml``.

metrics.json::

    {"format": "concept-prune benchmark metrics v1", "benchmark", "subject", "target",
     "method", "ckpt_name", "metric": <headline key of summary.original / summary.edited>,
     "summary": {"original": {...}, "edited": {...}, "comparison": {...}},
     "num_prompts", "per_prompt": [{"key", "case_number", "prompt", "seed", <columns>,
                                    "original": {...}, "edited": {...}}, ...],
     "settings": {sampling settings}, "models": {"original", "edited", "evaluator"},
     "versions": {package: version}}

Nothing in it depends on the number of processes, so a run on 8 GPUs writes the file a
one-process run writes. ``per_prompt`` records the guidance scale each image was made with
(``guidance_scale``); ``settings.guidance_source`` says whether it came from the prompt set.

Guidance: a prompt set that carries a guidance scale per prompt (``evaluation_guidance``,
``sd_guidance_scale``; ``Sample.guidance``) is generated with it, as ESD and UCE do, unless
``--guidance_scale`` was typed on the command line (``"guidance_scale"`` in the config's
``typed_options``, the option names the user typed); prompts without one use ``guidance_scale``.
A batch that mixes guidance scales is generated in one pipeline call per scale.

Resuming: every image records what made it, as JSON in a PNG text chunk named ``concept-prune``
(``recipe``): the prompt text, seed, guidance scale, steps, height and width, dtype, device type,
safety checker, the model id and the SHA-256 content digest of its folder (a local folder or the
hub id's snapshot in the Hugging Face cache), and the edit (method, checkpoint path and its
content digest). File digests are cached by (path, size, mtime) in ``<res_path>/.cache`` (in the
run folder's ``.cache`` with ``--out_dir``), so an unchanged model costs one ``stat`` per file.
A rerun reuses an image only when all of this matches (the model and the checkpoint are compared
by content when both digests are known, else by id and path); any other image, one without a
record (made before records were kept), and a damaged one (e.g. cut off by a kill) is generated
again, and the run logs how many and which settings differed. So a rerun with another prompt
file, prompt text, ``--seed``, guidance, size, dtype, device, model or edit in the same folder
regenerates exactly the images those settings change (an edit of another checkpoint keeps the
originals). The only setting still refused is another benchmark: a run folder holds one
benchmark's run.
"""
from __future__ import annotations

import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from utils import distributed
from utils.config import dump_yaml
from utils.errors import UsageError
from utils.generation import run_pipeline, side_by_side
from utils.model_loading import dtype_name, load_pipeline, resolve_dtype
from utils.paths import benchmark_run_dir
from utils.prompt_sets import Sample
from utils.storage import save_image, write_text

log = logging.getLogger(__name__)

FORMAT = "concept-prune benchmark metrics v1"
RUN_FILES = ("config.yaml", "metrics.json", "grid.png")
# Recorded in metrics.json's settings; "protocol" only when the config has one.
SETTING_KEYS = ("model_id", "num_inference_steps", "guidance_scale", "seed", "height", "width", "device", "dtype", "batch_size", "safety_checker", "protocol")
RECIPE_CHUNK = "concept-prune"  # the PNG text chunk holding what made an image (JSON)
RECIPE_FORMAT = 1
# Compared by content when both sides know it, else by the id or path next to it.
CONTENT_KEYS = {"model_digest": "model_id", "edit_digest": "edit_file"}
VERSIONED_PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "safetensors", "nudenet", "pytorch-fid")


class Evaluator:
    """What a benchmark measures. Subclasses set ``metric`` and implement the three methods."""

    metric = "score"
    image_folders: dict[str, Path] | None = None  # side -> the folder its images are in, set by run_benchmark

    def setup(self, device: torch.device) -> None:
        """Load the judge model(s) onto ``device`` (called once, after generation)."""

    def check(self) -> None:
        """Raise UsageError when the judge cannot work (called before the first image is generated).

        The default loads the judge on the CPU with ``setup`` and lets it go again, so a missing or
        broken judge model is refused at once instead of after hours of generation.
        """
        kept = dict(vars(self))
        try:
            self.setup(torch.device("cpu"))
        finally:
            vars(self).clear()
            vars(self).update(kept)

    def score(self, paths: Sequence[Path], samples: Sequence[Sample]) -> list[dict[str, Any]]:
        """Per-image values (JSON-ready dicts) of the images at ``paths``, one per sample."""
        raise NotImplementedError

    def summarize(self, records: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
        """``{"original": {...}, "edited": {...}, "comparison": {...}}`` from all per-prompt records."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """The judge's model ids and settings, for metrics.json."""
        return {}


def package_versions() -> dict[str, str]:
    """Versions of python and the packages that shape the numbers (absent ones left out)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def batches(samples: Sequence[Sample], size: int) -> list[list[Sample]]:
    """Consecutive batches of ``size`` samples (the last may be shorter)."""
    return [list(samples[i : i + size]) for i in range(0, len(samples), size)]


def image_path(folder: Path, sample: Sample) -> Path:
    """Where the image of ``sample`` lives in ``folder``; UsageError when its name would lead elsewhere.

    Prompt sets give safe names (``prompt_sets.check_case_name``); this guard holds for any key.
    """
    path = folder / f"{sample.key}.png"
    if path.name != f"{sample.key}.png" or path.parent != folder or sample.key in ("", ".", ".."):
        raise UsageError(f"the image name {sample.key!r} of prompt {sample.index + 1} would lie outside {folder}; give it a plain case_number")
    return path


def read_image(path: Path) -> tuple[bool, dict[str, Any] | None]:
    """(whether ``path`` is an image that decodes fully, the recipe recorded in it or None).

    A missing image is (False, None); a damaged one (e.g. cut off by a kill) is logged and (False, None).
    Raises UsageError when something other than a file (e.g. a folder) has the image's name.
    """
    if not path.exists():
        return False, None
    if not path.is_file():
        raise UsageError(f"{path} is not a file but should be a generated image; move it away and run again")
    try:
        with Image.open(path) as image:
            image.load()
            text = getattr(image, "text", {}).get(RECIPE_CHUNK)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        log.warning("%s is damaged (%s); generating it again", path, str(err)[:80])
        return False, None
    try:
        recipe = json.loads(text) if text else None
    except ValueError:
        recipe = None
    return True, recipe if isinstance(recipe, dict) else None


def image_done(path: Path) -> bool:
    """True when ``path`` is an image that decodes fully (whatever made it); see ``read_image``."""
    return read_image(path)[0]


def recipe_differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """The settings in which an image's recorded recipe ``old`` differs from ``new`` (``recipe`` when none is recorded).

    A model or checkpoint is compared by its content digest when both recipes have one, else by its id or path.
    """
    if old is None:
        return ["recipe"]
    skip = {named for digest, named in CONTENT_KEYS.items() if old.get(digest) and new.get(digest)}
    skip |= {digest for digest in CONTENT_KEYS if not (old.get(digest) and new.get(digest))}
    keys = [k for k in dict.fromkeys([*new, *old]) if k not in skip]
    return [k for k in keys if old.get(k) != new.get(k)]


def content_digest(path: str | None, cache) -> str | None:
    """SHA-256 content digest of a file, or of every file under a folder (``fingerprint.folder_digest``); None for None."""
    if not path:
        return None
    from utils.fingerprint import folder_digest

    target = Path(path).expanduser()
    return folder_digest(target, cache) if target.is_dir() else cache.digest(target)


def digest_cache(config: dict[str, Any], run_dir: Path):
    """The file-digest cache: under ``res_path`` for runs in the results tree, in the run folder with ``--out_dir``."""
    from utils.fingerprint import CACHE_NAME, DigestCache

    root = run_dir if config.get("out_dir") else Path(str(config.get("res_path") or "results"))
    return DigestCache(root / CACHE_NAME)


def model_digest(model_id: str, cache) -> str | None:
    """Content digest of the model's folder (a local folder or the hub id's cached snapshot); None when not on disk."""
    from utils.fingerprint import model_folder

    folder = model_folder(str(model_id))
    return content_digest(str(folder), cache) if folder is not None else None


def folder_recipes(config: dict[str, Any], run_dir: Path) -> dict[str, dict[str, Any]]:
    """What every image of ``original/`` and of ``edited/`` shares: sampling settings, model and edit.

    ``config`` holds the resolved settings (``device`` as a device type, ``dtype`` by name).
    """
    cache = digest_cache(config, run_dir)
    shared = {key: config.get(key) for key in ("num_inference_steps", "height", "width", "dtype", "device")}
    shared["safety_checker"] = bool(config.get("safety_checker"))
    shared.update(model_id=str(config["model_id"]), model_digest=model_digest(config["model_id"], cache))
    original = {**shared, "method": "sd", "edit_file": None, "edit_digest": None}
    ckpt = config.get("ckpt_name")
    edited = {**shared, "method": config["baseline"], "edit_file": str(ckpt) if ckpt else None, "edit_digest": content_digest(ckpt, cache)}
    cache.save()
    return {"original": original, "edited": original if config["baseline"] == "sd" else edited}


def guidance_typed(config: dict[str, Any]) -> bool:
    """Whether ``--guidance_scale`` was typed on the command line (``typed_options`` of the config)."""
    return "guidance_scale" in (config.get("typed_options") or ())


def sample_guidance(sample: Sample, config: dict[str, Any]) -> float:
    """The guidance scale of ``sample``: the prompt set's own, unless --guidance_scale was typed; else the config's."""
    if sample.guidance is not None and not guidance_typed(config):
        return float(sample.guidance)
    return float(config["guidance_scale"])


def image_recipe(shared: dict[str, Any], sample: Sample, config: dict[str, Any]) -> dict[str, Any]:
    """Everything that made the image of ``sample``: its prompt, seed and guidance plus its folder's ``shared`` recipe."""
    recipe = {"format": RECIPE_FORMAT, "prompt": sample.prompt, "seed": int(sample.seed), "guidance_scale": sample_guidance(sample, config), **shared}
    return json.loads(json.dumps(recipe))  # as it reads back from the file


def check_keys(samples: Sequence[Sample]) -> None:
    """Raise UsageError when two samples share an image name (ignoring case, as macOS and Windows do)."""
    seen: dict[str, Sample] = {}
    for sample in samples:
        other = seen.setdefault(sample.key.lower(), sample)
        if other is not sample:
            raise UsageError(f"prompts {other.index + 1} and {sample.index + 1} would share the image {sample.key}.png; give them distinct case_numbers")


def check_run_dir(run_dir: Path) -> None:
    """Raise UsageError unless ``run_dir`` can be the run folder: a folder (or one that can be made) that is new,
    empty (hidden entries such as .DS_Store aside), or holds a config.yaml of an earlier run; its fixed entries
    must be of the right kind."""
    for parent in [run_dir, *run_dir.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out_dir {run_dir}: {parent} is a file, not a folder; pass a folder for the results")
            break
    if not run_dir.is_dir():
        return
    if any(not p.name.startswith(".") for p in run_dir.iterdir()) and not (run_dir / "config.yaml").is_file():
        raise UsageError(f"--out_dir {run_dir} holds other files and no config.yaml of a benchmark run; pass a new or empty folder")
    for name in ("original", "edited"):
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise UsageError(f"{run_dir / name} is a file, but the run keeps its images there; pass another --out_dir")
    for name in RUN_FILES:
        if (run_dir / name).exists() and not (run_dir / name).is_file():
            raise UsageError(f"{run_dir / name} is a folder, but the run writes a file there; pass another --out_dir")


def _quiet_loading_bars() -> None:
    """Turn off diffusers' and transformers' per-file loading bars (the run shows its own per prompt)."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _check_resume(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a run folder that holds another benchmark's run (or a config.yaml that is not a run's).

    Every other setting may change: each image records what made it, and images made otherwise are
    generated again (module docstring, "Resuming"). ``config`` holds ``benchmark``.
    """
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    import yaml

    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        old = None
    if not isinstance(old, dict) or "benchmark" not in old:
        raise UsageError(f"{saved} is not the config.yaml of a benchmark run; pass another --out_dir")
    if str(old["benchmark"]) != str(config.get("benchmark")):
        raise UsageError(
            f"{run_dir} holds a run of another benchmark ({old['benchmark']}); pass another --out_dir or delete that folder"
        )


def images_to_make(batches_: list[list[Sample]], folder: Path, shared: dict[str, Any], config: dict[str, Any]) -> list[list[Sample]]:
    """The samples of ``batches_`` whose image in ``folder`` is missing, damaged or made otherwise; logs what differed."""
    from collections import Counter

    differing: Counter = Counter()
    todo = []
    for batch in batches_:
        missing = []
        for sample in batch:
            done, recorded = read_image(image_path(folder, sample))
            if done:
                changed = recipe_differences(recorded, image_recipe(shared, sample, config))
                if not changed:
                    continue
                differing.update(changed)
            missing.append(sample)
        if missing:
            todo.append(missing)
    if differing:
        count = sum(len(b) for b in todo)
        log.warning("%s: images made with other settings (%s) are generated again (%d to make)", folder, ", ".join(sorted(differing)), count)
    return todo


def by_guidance(batch: list[Sample], config: dict[str, Any]) -> list[tuple[float, list[Sample]]]:
    """``batch`` split by guidance scale (first appearance order): one pipeline call per scale."""
    groups: dict[float, list[Sample]] = {}
    for sample in batch:
        groups.setdefault(sample_guidance(sample, config), []).append(sample)
    return list(groups.items())


def _generate_missing(load, samples: list[list[Sample]], folder: Path, config: dict[str, Any], shared: dict[str, Any], label: str, show: bool) -> None:
    """Generate the images of ``samples`` (this rank's batches) not yet in ``folder`` as ``shared`` and each
    sample say; load the model only if needed. Each image is saved with its recipe."""
    from tqdm.auto import tqdm

    todo = images_to_make(samples, folder, shared, config)
    if not todo:
        return
    folder.mkdir(parents=True, exist_ok=True)
    pipe = load()
    with tqdm(total=sum(len(b) for b in todo), desc=f"{label} images", unit="prompt", disable=not show) as bar:
        for batch in todo:
            for guidance, group in by_guidance(batch, config):
                images = run_pipeline(pipe, [s.prompt for s in group], [s.seed for s in group], dict(config, guidance_scale=guidance), output_type="pil")
                for sample, image in zip(group, images):
                    save_image(image_path(folder, sample), image, {RECIPE_CHUNK: json.dumps(image_recipe(shared, sample, config), sort_keys=True)})
                bar.update(len(group))
    del pipe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _score_folder(evaluator: Evaluator, batches_: list[list[Sample]], folder: Path) -> list[list[dict[str, Any]]]:
    return [evaluator.score([image_path(folder, s) for s in batch], batch) for batch in batches_]


def save_grid(path: Path, samples: Sequence[Sample], original: Path, edited: Path, rows: int) -> None:
    """``grid.png``: one row per sample (original | edited), the first ``rows`` samples."""
    pairs = [side_by_side([Image.open(image_path(original, s)).convert("RGB"), Image.open(image_path(edited, s)).convert("RGB")]) for s in samples[:rows]]
    if not pairs:
        return
    gap = 4
    canvas = Image.new("RGB", (max(p.width for p in pairs), sum(p.height for p in pairs) + gap * (len(pairs) - 1)), "white")
    y = 0
    for pair in pairs:
        canvas.paste(pair, (0, y))
        y += pair.height + gap
    save_image(path, canvas)


def check_inputs(run_dir: Path, config: dict[str, Any], samples: Sequence[Sample], evaluator: Evaluator) -> None:
    """Everything a run needs, checked before it writes or generates anything; UsageError at the first problem.

    The run folder and the image names first (cheap), then the edit's checkpoint and its fit to the
    model (no weights loaded), then the judge (loaded once on the CPU).
    """
    from utils.baselines import check_edit, check_edit_fits

    check_run_dir(run_dir)
    _check_resume(run_dir, config)
    check_keys(samples)
    for folder in (run_dir / "original", run_dir / "edited"):
        for sample in samples:
            image_path(folder, sample)
    edit = check_edit(config["baseline"], config.get("ckpt_name"))
    check_edit_fits(edit, str(config["model_id"]))
    evaluator.check()


def start_run(benchmark: str, config: dict[str, Any], samples: list[Sample], evaluator: Evaluator, subject: str):
    """Check the inputs (before anything is written) and create the run folder with its config.yaml (rank 0).

    Returns (device, dtype, the resolved config, the run folder); the process group is utils.distributed.
    """
    if not samples:
        raise UsageError("the prompt set is empty after filtering; check --target, --prompts and --limit")
    _quiet_loading_bars()
    device = distributed.process_device(str(config["device"]))
    dtype = resolve_dtype(str(config["dtype"]), device)
    resolved = dict(config, device=device.type, dtype=dtype_name(dtype))
    run_dir = benchmark_run_dir(config, benchmark, subject)
    check_inputs(run_dir, dict(resolved, benchmark=benchmark, subject=subject), samples, evaluator)
    distributed.barrier()
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", dump_yaml(dict(resolved, benchmark=benchmark, subject=subject)))
    return device, dtype, resolved, run_dir


def generate_images(config: dict[str, Any], resolved: dict[str, Any], run_dir: Path, mine: list[list[Sample]], device, dtype, show: bool) -> None:
    """Generate this process's missing images of the original model, then of the edited one (none for --baseline sd,
    whose edited images are the original ones); each model is loaded only when an image of it is missing."""
    from utils.baselines import load_edited_pipeline

    safety = bool(config.get("safety_checker"))

    def load_original():
        log.info("loading the original model %s", config["model_id"])
        return load_pipeline(config["model_id"], device, dtype, safety)

    def load_edited():
        log.info("loading the edited model (%s, %s)", config["baseline"], config.get("ckpt_name"))
        pipe, _ = load_edited_pipeline(config["baseline"], config.get("ckpt_name"), config["model_id"], device, dtype, safety)
        return pipe

    recipes = folder_recipes(resolved, run_dir)
    _generate_missing(load_original, mine, run_dir / "original", resolved, recipes["original"], "original", show)
    if config["baseline"] != "sd":
        _generate_missing(load_edited, mine, run_dir / "edited", resolved, recipes["edited"], "edited", show)


def score_images(evaluator: Evaluator, mine: list[list[Sample]], original_dir: Path, edited_dir: Path, config: dict[str, Any], device) -> list[tuple[int, dict[str, Any]]]:
    """(sample index, per-prompt record with the original and edited scores) of this process's samples."""
    evaluator.setup(device)
    original_scores = _score_folder(evaluator, mine, original_dir)
    edited_scores = original_scores if edited_dir == original_dir else _score_folder(evaluator, mine, edited_dir)
    local = []
    for batch, orig, edit in zip(mine, original_scores, edited_scores):
        for sample, o, e in zip(batch, orig, edit):
            local.append((sample.index, {**sample.record(), "guidance_scale": sample_guidance(sample, config), "original": o, "edited": e}))
    return local


def metrics_report(benchmark: str, subject: str, config: dict[str, Any], resolved: dict[str, Any], samples: Sequence[Sample],
                   evaluator: Evaluator, records: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """metrics.json of a run: what was compared, the evaluator's summary, every prompt's record, settings, versions."""
    return {
        "format": FORMAT,
        "benchmark": benchmark,
        "subject": subject,
        "target": config.get("target"),
        "method": config["baseline"],
        "ckpt_name": config.get("ckpt_name"),
        "metric": evaluator.metric,
        "summary": evaluator.summarize(records, run_dir),
        "num_prompts": len(records),
        "per_prompt": records,
        "settings": run_settings(resolved, samples),
        "models": {"original": config["model_id"], "edited": edited_description(config), "evaluator": evaluator.info()},
        "versions": package_versions(),
    }


def run_benchmark(
    benchmark: str,
    config: dict[str, Any],
    samples: list[Sample],
    evaluator: Evaluator,
    subject: str,
) -> Path | None:
    """Generate, score and report one benchmark run; return the metrics.json path (None on ranks > 0).

    config: the resolved benchmark config; samples: the prompt set (after --limit).
    """
    device, dtype, resolved, run_dir = start_run(benchmark, config, samples, evaluator, subject)
    mine = list(distributed.share(batches(samples, int(config["batch_size"]))))
    original_dir = run_dir / "original"
    edited_dir = original_dir if config["baseline"] == "sd" else run_dir / "edited"
    evaluator.image_folders = {"original": original_dir, "edited": edited_dir}  # --baseline sd: one folder for both
    generate_images(config, resolved, run_dir, mine, device, dtype, distributed.is_main())
    gathered = distributed.gather(score_images(evaluator, mine, original_dir, edited_dir, config, device))
    if not distributed.is_main():
        distributed.barrier()
        return None
    records = [record for _, record in sorted(gathered, key=lambda item: item[0])]
    metrics_path = run_dir / "metrics.json"
    report = metrics_report(benchmark, subject, config, resolved, samples, evaluator, records, run_dir)
    write_text(metrics_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    save_grid(run_dir / "grid.png", samples, original_dir, edited_dir, int(config.get("grid_rows") or 0))
    distributed.barrier()
    return metrics_path


PROMPT_SOURCE_KEYS = ("prompts", "eval_dataset", "coco_captions", "dataset_path", "professions")  # first one given wins


def prompt_set_identity(config: dict[str, Any]) -> dict[str, Any]:
    """Which prompt set a run used: the first prompt source the config names (``source``: its option), with
    the file's ``name``, ``path`` and ``sha256`` (a dataset folder: of its prompts.csv); a named set that is
    not a file (``i2p``) by its name; ``{"name": "default"}`` when the benchmark's own file in datasets/ is used."""
    from utils.fingerprint import file_sha256

    for key in PROMPT_SOURCE_KEYS:
        value = config.get(key)
        if not value:
            continue
        path = Path(str(value))
        file = path / "prompts.csv" if path.is_dir() else path
        if not file.is_file():
            return {"name": str(value), "source": key}
        return {"name": path.name, "path": str(path), "source": key, "sha256": file_sha256(file)}
    return {"name": "default"}


def run_settings(resolved: dict[str, Any], samples: Sequence[Sample]) -> dict[str, Any]:
    """metrics.json's ``settings``: SETTING_KEYS (``protocol`` only when set), the prompt set (prompt_set_identity)
    and where the guidance came from."""
    settings = {k: resolved.get(k) for k in SETTING_KEYS if k != "protocol" or resolved.get("protocol") is not None}
    settings["prompt_set"] = prompt_set_identity(resolved)
    from_set = any(s.guidance is not None for s in samples) and not guidance_typed(resolved)
    settings["guidance_source"] = "prompt set (guidance_scale where a prompt has none)" if from_set else "guidance_scale"
    return settings


def edited_description(config: dict[str, Any]) -> dict[str, Any]:
    """What the edited model is (read from files, so it is the same whether or not this run loaded it).

    For a ConceptPrune mask this adds the mask's metadata (settings, pruned counts); for a revived model
    (benchmarking/revival_attack.py) the edit it attacked, the attack and its settings, and that edit's mask.
    """
    description: dict[str, Any] = {"method": config["baseline"], "ckpt_name": config.get("ckpt_name")}
    if config["baseline"] == "concept-prune" and config.get("ckpt_name"):
        from utils.storage import read_metadata

        description["mask"] = read_metadata(config["ckpt_name"])
    if config["baseline"] == "revived" and config.get("ckpt_name"):
        from utils.storage import read_metadata

        meta = read_metadata(config["ckpt_name"])
        description.update(edit_method=meta.get("edit_method"), edit_ckpt=meta.get("edit_ckpt"), attack=meta.get("attack"))
        if meta.get("edit_method") == "concept-prune":
            description["mask"] = read_metadata(meta["edit_ckpt"])
    return description


def headline(metrics_path: Path) -> str:
    """One line: the benchmark's headline metric before -> after, and where the results are."""
    report = json.loads(Path(metrics_path).read_text())
    key = report["metric"]
    before, after = report["summary"]["original"].get(key), report["summary"]["edited"].get(key)
    show = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    return f"{report['benchmark']} ({report['subject']}, {report['num_prompts']} prompts): {key} {show(before)} (original) -> {show(after)} ({report['method']}); {Path(metrics_path).parent}"


def run_and_report(benchmark: str, config: dict[str, Any], samples: list[Sample], evaluator: Evaluator, subject: str) -> Path | None:
    """``run_benchmark`` with logging set up and the headline printed by rank 0; returns metrics.json's path."""
    from utils.workflow import setup_logging

    setup_logging()
    path = run_benchmark(benchmark, config, samples, evaluator, subject)
    if path is not None:
        print(headline(path))
    return path
