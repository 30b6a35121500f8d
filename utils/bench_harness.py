"""The harness every benchmarking/ script runs: generate original and edited images, score, report.

``run_benchmark`` takes the resolved config, the prompt set and an ``Evaluator`` and:

0. checks everything it will need before it writes or generates anything: the run folder
   (``--out_dir`` must be a folder, empty, new or an earlier run of the same benchmark and settings),
   the image names (each inside the run folder, unique), the edit (``baselines.check_edit``: the
   checkpoint is readable, and ``check_edit_fits``: its tensors fit the model) and the judge
   (``Evaluator.check``: its model loads);
1. splits the prompts into fixed batches of ``batch_size`` (by global index) and hands the batches
   to the processes (``accelerate``'s ``split_between_processes``; one process without a launcher),
   so every image comes out of the same batch whatever the number of processes;
2. generates the images missing from ``original/`` and then ``edited/`` (each model is loaded once,
   only when it has work, and freed before the next; ``--baseline sd`` generates once), each image
   with its prompt's own seed, saved as ``<key>.png``: a rerun resumes where it stopped (an image
   counts as done only when it decodes fully; a damaged one, e.g. of a killed run, is made again);
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
one-process run writes.
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

from utils.config import dump_yaml
from utils.errors import UsageError
from utils.generation import run_pipeline, side_by_side
from utils.model_loading import dtype_name, load_pipeline, resolve_device, resolve_dtype
from utils.paths import benchmark_run_dir
from utils.prompt_sets import Sample
from utils.storage import save_image, write_text

log = logging.getLogger(__name__)

FORMAT = "concept-prune benchmark metrics v1"
GENERATION_KEYS = ("model_id", "baseline", "ckpt_name", "num_inference_steps", "guidance_scale", "height", "width", "dtype", "safety_checker")
# Settings that decide which prompt and seed an image name stands for: a resumed run must share them.
PROMPT_KEYS = ("benchmark", "subject", "seed", "prompts", "eval_dataset", "coco_captions", "dataset_path")
RUN_FILES = ("config.yaml", "metrics.json", "grid.png")
SETTING_KEYS = ("model_id", "num_inference_steps", "guidance_scale", "seed", "height", "width", "device", "dtype", "batch_size", "safety_checker")
VERSIONED_PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "safetensors", "nudenet", "pytorch-fid")


class Evaluator:
    """What a benchmark measures. Subclasses set ``metric`` and implement the three methods."""

    metric = "score"

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


def image_done(path: Path) -> bool:
    """True when ``path`` is an image that decodes fully; a damaged one (e.g. cut off by a kill) is logged and not done.

    Raises UsageError when something other than a file (e.g. a folder) has the image's name.
    """
    if not path.exists():
        return False
    if not path.is_file():
        raise UsageError(f"{path} is not a file but should be a generated image; move it away and run again")
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        log.warning("%s is damaged (%s); generating it again", path, str(err)[:80])
        return False


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


class _Processes:
    """The process group: accelerate's PartialState, or one process when accelerate is not launching."""

    def __init__(self, device_name: str) -> None:
        from accelerate import PartialState

        self.state = PartialState(cpu=device_name == "cpu")
        self.rank, self.world = self.state.process_index, self.state.num_processes
        self.is_main = self.state.is_main_process

    def device(self, device_name: str) -> torch.device:
        if self.world > 1 and device_name in ("auto", "cuda"):
            return self.state.device
        return resolve_device(device_name)

    def share(self, items: list) -> list:
        """This process's contiguous part of ``items``."""
        with self.state.split_between_processes(items) as part:
            return list(part)

    def gather(self, items: list) -> list:
        """Every process's ``items``, concatenated in rank order (on every rank)."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def barrier(self) -> None:
        self.state.wait_for_everyone()


def _quiet_loading_bars() -> None:
    """Turn off diffusers' and transformers' per-file loading bars (the run shows its own per prompt)."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _check_resume(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse to mix images of other generation settings, another benchmark or another prompt set into a resumed run.

    ``config`` holds the resolved settings plus ``benchmark`` and ``subject``.
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
    changed = [k for k in (*GENERATION_KEYS, *PROMPT_KEYS) if k in old and str(old[k]) != str(config.get(k))]
    if changed:
        raise UsageError(
            f"{run_dir} holds images made with other settings ({', '.join(changed)}); "
            "pass another --out_dir or delete that folder"
        )


def _generate_missing(load, samples: list[list[Sample]], folder: Path, config: dict[str, Any], label: str, show: bool) -> None:
    """Generate the images of ``samples`` (this rank's batches) not yet in ``folder``; load the model only if needed."""
    from tqdm.auto import tqdm

    todo = [[s for s in batch if not image_done(image_path(folder, s))] for batch in samples]
    todo = [batch for batch in todo if batch]
    if not todo:
        return
    folder.mkdir(parents=True, exist_ok=True)
    pipe = load()
    with tqdm(total=sum(len(b) for b in todo), desc=f"{label} images", unit="prompt", disable=not show) as bar:
        for batch in todo:
            images = run_pipeline(pipe, [s.prompt for s in batch], [s.seed for s in batch], config, output_type="pil")
            for sample, image in zip(batch, images):
                save_image(image_path(folder, sample), image)
            bar.update(len(batch))
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
    from utils.baselines import load_edited_pipeline

    if not samples:
        raise UsageError("the prompt set is empty after filtering; check --target, --prompts and --limit")
    _quiet_loading_bars()
    procs = _Processes(str(config["device"]))
    device = procs.device(str(config["device"]))
    dtype = resolve_dtype(str(config["dtype"]), device)
    resolved = dict(config, device=device.type, dtype=dtype_name(dtype))
    run_dir = benchmark_run_dir(config, benchmark, subject)
    check_inputs(run_dir, dict(resolved, benchmark=benchmark, subject=subject), samples, evaluator)
    procs.barrier()
    if procs.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", dump_yaml(dict(resolved, benchmark=benchmark, subject=subject)))
    mine = procs.share(batches(samples, int(config["batch_size"])))
    original_dir = run_dir / "original"
    identity = config["baseline"] == "sd"
    edited_dir = original_dir if identity else run_dir / "edited"
    safety = bool(config.get("safety_checker"))

    def load_original():
        log.info("loading the original model %s", config["model_id"])
        return load_pipeline(config["model_id"], device, dtype, safety)

    def load_edited():
        log.info("loading the edited model (%s, %s)", config["baseline"], config.get("ckpt_name"))
        pipe, _ = load_edited_pipeline(config["baseline"], config.get("ckpt_name"), config["model_id"], device, dtype, safety)
        return pipe

    _generate_missing(load_original, mine, original_dir, config, "original", procs.is_main)
    if not identity:
        _generate_missing(load_edited, mine, edited_dir, config, "edited", procs.is_main)

    evaluator.setup(device)
    original_scores = _score_folder(evaluator, mine, original_dir)
    edited_scores = original_scores if identity else _score_folder(evaluator, mine, edited_dir)
    local = []
    for batch, orig, edit in zip(mine, original_scores, edited_scores):
        for sample, o, e in zip(batch, orig, edit):
            local.append((sample.index, {**sample.record(), "original": o, "edited": e}))
    gathered = procs.gather(local)
    if not procs.is_main:
        procs.barrier()
        return None
    records = [record for _, record in sorted(gathered, key=lambda item: item[0])]
    report = {
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
        "settings": {k: resolved.get(k) for k in SETTING_KEYS},
        "models": {"original": config["model_id"], "edited": edited_description(config), "evaluator": evaluator.info()},
        "versions": package_versions(),
    }
    metrics_path = run_dir / "metrics.json"
    write_text(metrics_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    save_grid(run_dir / "grid.png", samples, original_dir, edited_dir, int(config.get("grid_rows") or 0))
    procs.barrier()
    return metrics_path


def edited_description(config: dict[str, Any]) -> dict[str, Any]:
    """What the edited model is (read from files, so it is the same whether or not this run loaded it).

    For a ConceptPrune mask this adds the mask's metadata (settings, pruned counts).
    """
    description: dict[str, Any] = {"method": config["baseline"], "ckpt_name": config.get("ckpt_name")}
    if config["baseline"] == "concept-prune" and config.get("ckpt_name"):
        from utils.storage import read_metadata

        description["mask"] = read_metadata(config["ckpt_name"])
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
