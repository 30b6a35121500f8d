"""The steps shared by the wanda/ scripts once their input is checked: load, get norms, derive masks, save."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch

from neuron_receivers.hook_variants import HookVariant, denoiser_of, full_masks, get_variant, scored_weights
from utils import distributed
from utils.concepts import Concept
from utils.config import NESTED_KEYS, dump_yaml
from utils.errors import UsageError
from utils.generation import count_unet_calls
from utils.model_loading import dtype_name, load_pipeline, resolve_dtype
from utils.paths import concept_dir, norms_path, record_config_path
from utils.recording import ensure_norms, pipeline_sites
from utils.storage import write_text


class _CurrentStderrHandler(logging.Handler):
    """Writes each record to whatever ``sys.stderr`` is at the time (works under redirection)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def setup_logging() -> None:
    """Send this project's INFO messages to stderr, one line each (idempotent)."""
    for name in ("utils", "neuron_receivers"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not any(isinstance(h, _CurrentStderrHandler) for h in logger.handlers):
            logger.addHandler(_CurrentStderrHandler())


def check_step_count(pipe, num_inference_steps: int) -> None:
    """Raise UsageError when the scheduler cannot take ``num_inference_steps`` (more than it was trained with)."""
    trained = getattr(pipe.scheduler.config, "num_train_timesteps", None)
    if trained is not None and num_inference_steps > int(trained):
        raise UsageError(f"--num_inference_steps {num_inference_steps} exceeds the {trained} timesteps the model's scheduler was trained with; pass at most {trained}")


class Session:
    """A loaded pipeline with the run's config, hook variant and scored sites."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.device = distributed.process_device(str(config["device"]))  # under accelerate launch: this process's GPU
        if not distributed.is_main():  # the other processes of a launched run compute silently
            for name in ("utils", "neuron_receivers"):
                logging.getLogger(name).setLevel(logging.WARNING)
        self.dtype = resolve_dtype(str(config["dtype"]), self.device)
        self.variant: HookVariant = get_variant(config["hook_module"])
        self.pipe = load_pipeline(config["model_id"], self.device, self.dtype, bool(config.get("safety_checker")), config.get("scheduler"))
        check_step_count(self.pipe, int(config["num_inference_steps"]))
        self.component_name, self.sites = pipeline_sites(self.pipe, self.variant, config.get("streams"))
        self.component = getattr(self.pipe, self.component_name)
        self.modules = {name: site.module for name, site in self.sites.items()}
        self.denoiser = denoiser_of(self.pipe)
        self.total_calls = count_unet_calls(self.pipe, int(config["num_inference_steps"])) if self.variant.per_step else 1

    def resolved_config(self, **extra: Any) -> dict[str, Any]:
        """The config with device and dtype resolved, plus ``extra`` keys; the per-kind and per-model
        tables (concept_defaults, model_defaults) are left out: their chosen values are in the config."""
        resolved = {k: v for k, v in self.config.items() if k not in NESTED_KEYS}
        resolved.update(device=str(self.device), dtype=dtype_name(self.dtype))
        resolved.update(extra)
        return resolved

    def check_steps(self, steps: int | None) -> None:
        """Raise UsageError when ``steps`` exceeds the denoiser calls of one generation."""
        if steps is not None and steps > self.total_calls:
            raise UsageError(
                f"--timesteps {steps} exceeds the {self.total_calls} recorded steps (denoiser calls) of one generation "
                f"with num_inference_steps={self.config['num_inference_steps']}"
                + ("" if self.variant.per_step else f" for hook variant {self.variant.name}")
                + "; pass a smaller --timesteps"
            )

    def effective_tau(self, tau: int) -> int:
        """The paper's default tau, capped at the denoiser calls of one generation (logged when capped).

        Only for defaults: a --timesteps the user gave is checked by ``check_steps`` instead.
        """
        if not self.variant.per_step:
            return 1
        if self.config.get("timesteps") is None and tau > self.total_calls:
            logging.getLogger("utils.workflow").info("default tau %d capped at the %d denoiser calls of one generation", tau, self.total_calls)
            return self.total_calls
        return tau

    def norms(self, concept: Concept, steps_needed: int | None, preview: bool = False) -> dict[str, torch.Tensor]:
        """The concept's norms (layer -> [2, steps, in]), reused from disk when they match, else recorded."""
        self.check_steps(steps_needed)
        if not self.variant.per_step:
            steps_needed = 1
        path = norms_path(self.config["res_path"], self.config["model_id"], concept.name, self.variant.name)
        preview_dir = concept_dir(self.config["res_path"], self.config["model_id"], concept.name) / "preview" if preview else None
        norms, reused = ensure_norms(self.pipe, concept, self.resolved_config(), self.variant, path, steps_needed, preview_dir)
        if not reused and distributed.is_main():
            config_path = record_config_path(self.config["res_path"], self.config["model_id"], concept.name, self.variant.name)
            write_text(config_path, dump_yaml(self.resolved_config(target=concept.name)))
        return norms

    def weights(self) -> dict[str, torch.Tensor]:
        """layer -> the scored part of every selected Linear's weight (all of it, or a Flux single block's MLP
        columns): views that share the model's storage (see hook_variants.scored_weights)."""
        return scored_weights(self.sites)


def save_run_config(folder: Path, config: dict[str, Any]) -> None:
    """Write the resolved config as ``config.yaml`` in ``folder`` (on the main process only, see utils.distributed)."""
    if distributed.is_main():
        write_text(Path(folder) / "config.yaml", dump_yaml(config))


def union_for_concept(session: Session, concept: Concept, skill_ratio: float, tau: int, select_ratio: float) -> dict[str, torch.Tensor]:
    """layer -> bool mask of the scored part of its weight: the concept's skilled weights united over its first
    ``tau`` steps (``full_masks`` widens a column-sliced one to its whole weight)."""
    from utils.skilled import union_masks

    norms = session.norms(concept, tau)
    return union_masks(session.weights(), norms, skill_ratio, tau, select_ratio)


def save_mask_and_export(session: Session, masks: dict[str, torch.Tensor], out_path: Path, settings: dict[str, Any], export_dir: str | None) -> dict[str, Any] | None:
    """Save ``masks`` as ``prune_mask.safetensors`` (+ config.yaml); optionally export the pruned component.

    Returns the mask file's metadata (counts included); None on the other processes of a launched run,
    which write nothing.
    """
    from utils.pruning import apply_prune_mask, export_component, save_prune_mask

    metadata = {
        "model_id": session.config["model_id"],
        "component": session.component_name,
        "hook_module": session.variant.name,
        "pipeline_class": type(session.pipe).__name__,
        "fill": str(session.config.get("fill") or "zero"),
        "fill_seed": int(session.config["seed"]),
        "fill_scale": float(session.config.get("fill_scale") or 1.0),
        **settings,
        "config": session.resolved_config(),
    }
    whole = full_masks(session.sites, masks)  # a Flux single block's mask covers its whole proj_out, False outside the MLP columns
    if not distributed.is_main():
        return None
    meta = save_prune_mask(out_path, whole, session.component, metadata, num_scored=sum(int(m.numel()) for m in masks.values()))
    save_run_config(out_path.parent, session.resolved_config(**settings))
    if export_dir:
        apply_prune_mask(session.pipe, {f"{k}.weight": v for k, v in whole.items()}, session.component_name, metadata["fill"], metadata["fill_seed"], metadata["fill_scale"])
        export_component(session.pipe, session.component_name, export_dir)
    return meta


def describe_mask(meta: dict[str, Any], path: Path) -> str:
    """One line: how many weights the mask prunes and where it is."""
    return (
        f"pruned {meta['num_pruned']:,} weights = {100 * meta['fraction_of_component']:.3f}% of the "
        f"{meta['component']} ({100 * meta['num_pruned'] / max(meta['num_scored'], 1):.2f}% of the scored layers) -> {path}"
    )
