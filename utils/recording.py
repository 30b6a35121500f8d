"""Step 1: record the activation norms of a concept's prompt pairs, or reuse stored ones that match."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from neuron_receivers.hook_variants import HookVariant, Site, component_name, denoiser_of, scored_weights, select_sites, site_columns
from neuron_receivers.norm_recorder import ActivationNormRecorder
from neuron_receivers.trace import StopGeneration, trace_steps
from utils import distributed
from utils.concepts import Concept, PromptPair
from utils.generation import count_unet_calls, run_pipeline
from utils.errors import UsageError
from utils.model_loading import dtype_name
from utils.norms_store import load_norms, reusable, save_norms
from utils.storage import atomic_directory, check_replaceable, save_image

log = logging.getLogger(__name__)

PREVIEW_FILES = r"pair_\d+_(base|target)\.png"  # what a preview folder holds


def norms_fingerprint(pipe, config: dict[str, Any], concept: Concept, variant: HookVariant) -> dict[str, Any]:
    """Everything the activation norms depend on, as a JSON-able dict: the model (and a content digest of
    each of its components, see utils.fingerprint), the prompts and seeds, and every sampling setting."""
    from utils.fingerprint import pipeline_content

    model_id = config["model_id"]
    return {
        "model_id": str(Path(model_id).resolve()) if Path(model_id).is_dir() else model_id,
        "model_content": pipeline_content(pipe, model_id, config.get("res_path")),
        "prompts": [[p.base, p.target, p.seed] for p in concept.pairs],
        "num_inference_steps": int(config["num_inference_steps"]),
        "guidance_scale": float(config["guidance_scale"]),
        "height": config.get("height"),
        "width": config.get("width"),
        "hook_module": variant.name,
        "dtype": dtype_name(denoiser_of(pipe).dtype),
        "device_type": pipe.device.type,
        "scheduler": type(pipe.scheduler).__name__,
    }


def pipeline_sites(pipe, variant: HookVariant, streams: str | None) -> tuple[str, dict[str, Site]]:
    """(the pipeline attribute ``variant`` scores, name -> Site of every scored Linear in it on ``streams``,
    default image). Raise UsageError in one sentence when the pipeline has no such layer."""
    try:
        name = component_name(pipe, variant)
        return name, select_sites(getattr(pipe, name), variant, streams or "image")
    except ValueError as err:
        raise UsageError(f"{err}; pass another --hook_module or --streams, or a model built of those blocks") from None


def _batches(pairs: tuple[PromptPair, ...], size: int) -> list[tuple[PromptPair, ...]]:
    return [pairs[i : i + size] for i in range(0, len(pairs), size)]


def record_norms(
    pipe,
    concept: Concept,
    config: dict[str, Any],
    variant: HookVariant,
    stop_at: int | None,
    preview_dir: Path | None = None,
    num_preview: int = 0,
) -> dict[str, torch.Tensor]:
    """Generate every pair (base and target in one batch) and return layer -> norms [2, steps, in].

    stop_at: number of leading denoiser calls to record (generation stops there), None for all.
    The scored sites are the variant's on ``config["streams"]`` (see pipeline_sites); layers come in
    execution order. With ``preview_dir``, the first ``num_preview`` pairs' images are saved there (from the
    recorded run, or generated in full when it stopped early or some are not this process's).

    Under ``accelerate launch`` each process records its contiguous share of the pairs (the main process
    the first ones) and the sums are added across processes (utils.distributed.all_reduce_sum), so every
    process returns the norms of all pairs; more processes than pairs is refused (UsageError).
    """
    processes = distributed.world_size()
    if processes > 1 and processes > len(concept.pairs):
        raise UsageError(f"{processes} processes but {len(concept.pairs)} prompt pair(s) to record, and each process records at least one; pass --num_processes {len(concept.pairs)} or fewer to accelerate launch")
    _, sites = pipeline_sites(pipe, variant, config.get("streams"))
    modules = {name: site.module for name, site in sites.items()}
    recorder = ActivationNormRecorder(num_groups=2)
    if not variant.per_step:
        stop_at = 0  # a text encoder runs before the first denoiser call
    layer_order: list[str] = []
    preview: list[tuple[int, Any, Any]] = []
    offset, stop = distributed.share_bounds(len(concept.pairs))  # offset: index of this process's first pair
    batches = _batches(concept.pairs[offset:stop], int(config["batch_size"]))
    for batch in tqdm(batches, desc=f"recording {concept.name}", unit="batch", disable=not distributed.is_main()):
        prompts = [p.base for p in batch] + [p.target for p in batch]
        seeds = [p.seed for p in batch] * 2
        recorder.set_batch_groups([0] * len(batch) + [1] * len(batch))
        wanted = [i for i in range(len(batch)) if offset + i < num_preview] if preview_dir is not None else []
        images = None
        with trace_steps(denoiser_of(pipe), modules, on_input=recorder, stop_at=stop_at, fixed_step=None if variant.per_step else 0,
                         columns=site_columns(sites)) as trace:
            try:  # images only for a batch that holds preview pairs (the VAE decodes them), latents otherwise
                images = run_pipeline(pipe, prompts, seeds, config, output_type="pil" if wanted else "latent")
            except StopGeneration:
                pass
        if not layer_order:
            layer_order = trace.layer_order
        if images is not None and wanted:
            preview += [(offset + i, images[i], images[len(batch) + i]) for i in wanted]
        offset += len(batch)
    distributed.all_reduce_sum(recorder.sums)  # every process now holds the sums of all pairs
    missing = sorted(set(modules) - set(layer_order))
    if missing:
        raise RuntimeError(f"{len(missing)} selected layers never ran, e.g. {missing[0]}")
    if preview_dir is not None and num_preview > 0 and len(preview) < min(num_preview, len(concept.pairs)):
        preview = _generate_preview(pipe, concept, config, num_preview)
    if preview_dir is not None:  # the folder is replaced whole: no image of an earlier recording stays beside these
        with atomic_directory(preview_dir, "preview folder", PREVIEW_FILES) as folder:
            for index, base_image, target_image in preview:
                save_image(folder / f"pair_{index:03d}_base.png", base_image)
                save_image(folder / f"pair_{index:03d}_target.png", target_image)
    return recorder.norms(layer_order)


def _generate_preview(pipe, concept: Concept, config: dict[str, Any], num_preview: int) -> list[tuple[int, Any, Any]]:
    pairs = concept.pairs[:num_preview]
    prompts = [p.base for p in pairs] + [p.target for p in pairs]
    images = run_pipeline(pipe, prompts, [p.seed for p in pairs] * 2, config, output_type="pil")
    return [(i, images[i], images[len(pairs) + i]) for i in range(len(pairs))]


def ensure_norms(
    pipe,
    concept: Concept,
    config: dict[str, Any],
    variant: HookVariant,
    path: Path,
    steps_needed: int | None,
    preview_dir: Path | None = None,
) -> tuple[dict[str, torch.Tensor], bool]:
    """Load the norms at ``path`` when they fit this run, else record and save them.

    steps_needed: leading denoiser calls needed (None = all). Returns (norms, reused).
    """
    main = distributed.is_main()  # under accelerate launch the main process decides and writes; see record_norms
    fingerprint = norms_fingerprint(pipe, config, concept, variant) if main else None  # digests read (and cached) once
    _, sites = pipeline_sites(pipe, variant, config.get("streams"))
    widths = {name: weight.shape[1] for name, weight in scored_weights(sites).items()}
    ok, reason = reusable(path, fingerprint, steps_needed, widths) if main else (False, "the main process decides")
    ok = distributed.main_decides(ok)  # every process reuses, or every process records
    if ok:
        log.info("reusing %s (%s)", path, reason)
        norms, _ = load_norms(path, device=pipe.device)
        return norms, True
    log.info("recording activation norms: %s", reason)
    total_calls = count_unet_calls(pipe, int(config["num_inference_steps"])) if variant.per_step else 1
    stop_at = steps_needed if steps_needed is not None and steps_needed < total_calls else None
    preview_dir = preview_dir if main else None
    num_preview = int(config.get("num_preview") or 0) if preview_dir is not None else 0
    if preview_dir is not None:
        check_replaceable(preview_dir, "preview folder", PREVIEW_FILES)  # before hours of recording, not after
    norms = record_norms(pipe, concept, config, variant, stop_at, preview_dir, num_preview)
    if main:
        save_norms(path, norms, fingerprint, complete=stop_at is None, config=config)
    return norms, False
