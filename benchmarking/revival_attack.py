"""The data-free revival attack against a pruned model: locate the pruned weights, complete them, revive them.

Our implementation of the attack of "Roots Beneath the Cut" (CVPR 2026, arXiv 2603.06640), from its
description (utils/revival.py): in every scored layer (the FFNs' second Linear: --hook_module unet, all
streams) locate the pruned weights, fill them by low-rank matrix completion (SoftImpute) of the layer's
surviving weights, keep the signs of the largest --sign_ratio of the completed values in each row and set
their magnitudes (1 + --margin) times the row's largest surviving weight. It sees only the edited weights.

The edited model (--ckpt_name): one of our prune masks on its base model (applied with the fill recorded in
it), a pruned UNet/transformer or pipeline folder, or a UNet state-dict checkpoint in which the zeros are found.
Locating (--locate): ``zeros`` (the attack's own step: exact zeros), or a detector for a fill that is not zero
(magnitude | row_z | col_z | residual, or negated: -row_z takes entries too close to their row's mean, which
finds a narrowed fill), taking the top --locate_fraction of each layer's entries.

Writes <out_dir>/revived.safetensors (the located positions and their new values: a delta of the mask's size),
metrics.json (the attack and its settings, what it located, its time, and against one of our masks: the
share of the located positions that were pruned and of the pruned ones located, and the locating AUC of each
simple detector) and config.yaml. Every benchmark then measures the attacked model with
``--baseline revived --ckpt_name <out_dir>/revived.safetensors``.
Example: python benchmarking/revival_attack.py --ckpt_name results/model/checker/pruned/sr0.4_tau10_sel0.7/prune_mask.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import UsageError, run_cli  # noqa: E402

DETECTORS = ("magnitude", "row_z", "col_z", "residual")
LOCATORS = ("zeros", *DETECTORS, *(f"-{name}" for name in DETECTORS))  # utils.revived.LOCATORS (torch-free here)
EDITS = ("auto", "concept-prune", "fmn", "esd")
ATTACK = "data-free revival: locate, SoftImpute completion, sign retention, magnitude above the row's largest surviving weight"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_name", required=True, help="the pruned model: prune_mask.safetensors, a pruned UNet/pipeline folder, or a UNet state dict")
    parser.add_argument("--model_id", default=None, help="its base model (default: the mask's own model_id)")
    parser.add_argument("--edit", choices=EDITS, default="auto", help="how --ckpt_name is read (auto: a mask, a folder (fmn), else a UNet state dict (esd))")
    parser.add_argument("--locate", choices=LOCATORS, default="zeros", help="how the pruned weights are found")
    parser.add_argument("--locate_fraction", type=float, default=None, help="with a detector: the share of each layer's weights taken")
    parser.add_argument("--sign_ratio", type=float, default=0.6, help="share of each row's located weights given a large magnitude")
    parser.add_argument("--margin", type=float, default=0.05, help="revived magnitude = (1 + margin) * the row's largest surviving |w|")
    parser.add_argument("--shrinkage", type=float, default=None, help="SoftImpute lambda as a fraction of the largest singular value (default: utils.revival's)")
    parser.add_argument("--rank", type=int, default=None, help="cap of the SVD rank (randomized SVD; default: full SVD)")
    parser.add_argument("--max_iters", type=int, default=100, help="SoftImpute iterations at most")
    parser.add_argument("--hook_module", default="unet", help="which layers are attacked (a hook variant)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", help="the model's dtype while attacked (the completion runs in float32)")
    parser.add_argument("--out_dir", default=None, help="default results/revival/<model>/<edit>/<locate>")
    parser.add_argument("--res_path", default="results")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args) -> None:
    """One sentence (UsageError) for a bad option, before torch is imported."""
    from demo.checks import device_name, integer, number, output_folder

    if not Path(args.ckpt_name).exists():
        raise UsageError(f"--ckpt_name {args.ckpt_name} does not exist; pass a prune mask, a pruned model folder or a state-dict file")
    if args.locate == "zeros" and args.locate_fraction is not None:
        raise UsageError("--locate_fraction is for a detector; --locate zeros takes every exact zero")
    if args.locate != "zeros":
        if args.locate_fraction is None:
            raise UsageError(f"--locate {args.locate} needs --locate_fraction (the share of each layer's weights to take, e.g. 0.01)")
        number(args.locate_fraction, "--locate_fraction", 0.0, 1.0, open_low=True)
        if args.locate_fraction >= 1:
            raise UsageError(f"--locate_fraction must lie below 1, got {args.locate_fraction}")
    number(args.sign_ratio, "--sign_ratio", 0.0, 1.0, open_low=True)
    number(args.margin, "--margin", 0.0)
    if args.shrinkage is not None:
        number(args.shrinkage, "--shrinkage", 0.0, open_low=True)
    if args.rank is not None:
        integer(args.rank, "--rank")
    integer(args.max_iters, "--max_iters")
    device_name(args.device)
    if args.out_dir is not None:
        output_folder(args.out_dir, "--out_dir")


def edit_method(args) -> str:
    """The baselines method that reads --ckpt_name (``auto``: our mask format, a folder, else a state dict)."""
    if args.edit != "auto":
        return args.edit
    path = Path(args.ckpt_name)
    if path.is_dir():
        return "fmn"
    if path.suffix.lower() == ".safetensors":
        from utils.storage import read_metadata

        try:
            if str(read_metadata(path).get("format", "")).startswith("concept-prune prune mask"):
                return "concept-prune"
        except Exception:  # not ours: read as a state dict below, which names any problem in one sentence
            pass
    return "esd"


def base_model(args, method: str) -> str:
    """--model_id, else the mask's model; UsageError when neither names one."""
    from utils.config import repo_path

    if args.model_id:
        return repo_path(args.model_id)
    if method == "concept-prune":
        from utils.pruning import load_prune_mask

        return repo_path(str(load_prune_mask(args.ckpt_name)[1]["model_id"]))
    raise UsageError("--model_id is needed to read a pruned folder or state dict; pass its base model")


def true_masks(args, method: str, sites) -> dict | None:
    """layer -> the pruned positions of the scored weights when --ckpt_name is one of our masks, else None."""
    if method != "concept-prune":
        return None
    from utils.pruning import load_prune_mask

    masks, _ = load_prune_mask(args.ckpt_name)
    truth = {}
    for name, site in sites.items():
        mask = masks.get(f"{name}.weight")
        if mask is not None:
            truth[name] = mask if site.columns is None else mask[:, site.columns]
    return truth


def located_summary(located: dict, truth: dict | None, weights: dict) -> dict:
    """How many weights were located; against the true mask, precision, recall and each detector's locating AUC."""
    from utils.revival import DETECTORS, best_detector, locating_aucs

    summary = {"layers": len(located), "located": int(sum(int(m.sum()) for m in located.values()))}
    if truth is None:
        return summary
    pruned = int(sum(int(m.sum()) for m in truth.values()))
    hits = int(sum(int((located[k].cpu() & truth[k].cpu()).sum()) for k in truth if k in located))
    aucs = locating_aucs(weights, truth, DETECTORS)
    kind, auc = best_detector(aucs)
    summary.update(pruned=pruned, located_and_pruned=hits, precision=hits / max(summary["located"], 1), recall=hits / max(pruned, 1),
                   locating_auc=aucs, best_detector={"kind": kind, "auc_per_layer": auc})
    return summary


def main(argv=None) -> dict:
    """Attack, write revived.safetensors, metrics.json and config.yaml; return the metrics."""
    args = parse_args(argv)
    method = edit_method(args)
    model_id = base_model(args, method)

    import torch

    from neuron_receivers.hook_variants import get_variant, scored_weights
    from utils.baselines import check_edit, check_edit_fits, load_edited_pipeline
    from utils.config import dump_yaml
    from utils.model_loading import resolve_device, resolve_dtype
    from utils.paths import method_tag, model_slug
    from utils.recording import pipeline_sites
    from utils.revived import attack, locate, save_revival
    from utils.storage import write_text

    check_edit_fits(check_edit(method, args.ckpt_name), model_id)  # a broken or foreign edit: one sentence, before any work
    device = resolve_device(args.device)
    locate_folder = f"{args.locate[1:]}_negated" if args.locate.startswith("-") else args.locate  # no folder name starting with "-"
    out = Path(args.out_dir) if args.out_dir else Path(args.res_path) / "revival" / model_slug(model_id) / method_tag(method, args.ckpt_name) / locate_folder
    pipe, info = load_edited_pipeline(method, args.ckpt_name, model_id, device, resolve_dtype(args.dtype, device))
    _, sites = pipeline_sites(pipe, get_variant(args.hook_module), "both")
    weights = scored_weights(sites)
    settings = {"sign_ratio": args.sign_ratio, "margin": args.margin, "shrinkage": args.shrinkage, "rank": args.rank, "max_iters": args.max_iters}
    started = time.perf_counter()
    located = locate(weights, args.locate, args.locate_fraction)
    values = attack(weights, located, **settings)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    metrics = {
        "format": "concept-prune revival metrics v1",
        "attack": {"name": ATTACK, "locate": args.locate, "locate_fraction": args.locate_fraction, **settings},
        "edit": {"method": method, "ckpt": str(args.ckpt_name), "model_id": model_id, "fill": info.get("fill")},
        "hook_module": args.hook_module,
        "device": str(device),
        "seconds": round(seconds, 3),
        **located_summary(located, true_masks(args, method, sites), weights),
    }
    metadata = {"model_id": model_id, "edit_method": method, "edit_ckpt": str(Path(args.ckpt_name).resolve()),
                "hook_module": args.hook_module, "streams": "both", "attack": metrics["attack"]}
    save_revival(out / "revived.safetensors", located, values, metadata)
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text(out / "config.yaml", dump_yaml({**vars(args), "model_id": model_id, "edit": method}))
    line = f"revival attack ({args.locate}): {metrics['located']:,} weights located in {metrics['layers']} layers, {seconds:.1f} s"
    if "recall" in metrics:
        line += f"; {100 * metrics['recall']:.1f}% of the pruned weights found, {100 * metrics['precision']:.1f}% of the located were pruned"
    print(f"{line} -> {out / 'revived.safetensors'}")
    return metrics


if __name__ == "__main__":
    run_cli(main)
