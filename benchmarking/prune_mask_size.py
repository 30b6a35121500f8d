"""Size of prune_mask.safetensors for a full-size SD 1.5 UNet, next to the reference's full-UNet copy; and, per
family, the FFNs found, the weights scored and the mask size of the real shapes.

Default: builds SD 1.5's UNet from its config with random weights (no download; its layer shapes are the
real ones), derives a union mask from random activation norms, saves it with the project's
writer, and reports the file size beside the size of a full fp16 UNet state dict (what the
reference code saves per setting). Usage: ``python benchmarking/prune_mask_size.py``.

``--families``: builds each family's real denoiser (SD 1.5, SDXL, SD 3.5 medium, PixArt-Sigma, FLUX.1-dev;
utils/random_arch.py) on the meta device (no memory, no weights) and prints a Markdown table of the FFN
layers the hook sites find per stream, the weights scored, and the bytes of the mask's bool tensors (one
byte per weight of each masked parameter; the file adds a header of a few KB).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    """Print and return {mask_bytes, full_unet_fp16_bytes, num_pruned, ...}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skill_ratio", type=float, default=0.01)
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--out", default=None, help="where to write the mask (default: a temporary folder)")
    parser.add_argument("--families", action="store_true", help="the per-family table of the real shapes (meta device, nothing written)")
    args = parser.parse_args(argv)
    check_args(args)
    if args.families:
        return family_table()
    if args.out is None:
        with tempfile.TemporaryDirectory(prefix="prune-mask-size-") as folder:  # measured, then removed
            return measure(args, Path(folder))
    return measure(args, Path(args.out))


MASK_ORIGIN = "sd15-shaped-random"  # the model_id this script writes into its mask's metadata


def check_args(args) -> None:
    """UsageError (one sentence) for a bad option, before the 860 M-parameter UNet is built: a skill ratio outside
    (0, 1) or NaN, a non-positive --timesteps, an --out that is a file, or an --out whose prune_mask.safetensors
    is not one this script wrote (a real mask is never replaced by a random one)."""
    from demo.checks import integer, output_folder
    from utils.errors import UsageError

    if not 0 < args.skill_ratio < 1:
        raise UsageError(f"--skill_ratio must lie strictly between 0 and 1, got {args.skill_ratio}")
    integer(args.timesteps, "--timesteps")
    if args.out is None:
        return
    mask = output_folder(args.out, "--out") / "prune_mask.safetensors"
    if mask.exists():
        from safetensors import SafetensorError

        from utils.storage import read_metadata

        try:
            origin = read_metadata(mask).get("model_id")
        except (SafetensorError, OSError, ValueError):  # an unreadable file is someone else's, and is kept
            origin = None
        if origin != MASK_ORIGIN:
            raise UsageError(f"{mask} exists and was not written by prune_mask_size.py; pass another --out (nothing of yours is replaced)")


def measure(args, folder: Path) -> dict:
    """Build the SD 1.5-shaped UNet, derive and save a random union mask in ``folder``; print and return the sizes."""
    import torch

    from neuron_receivers.hook_variants import HOOK_VARIANTS, select_modules
    from utils.pruning import save_prune_mask
    from utils.random_arch import sd15_unet
    from utils.skilled import union_masks

    torch.manual_seed(0)
    unet = sd15_unet().eval()
    modules = select_modules(unet, HOOK_VARIANTS["unet"])
    weights = {k: m.weight.detach() for k, m in modules.items()}
    norms = {k: torch.rand(2, args.timesteps, m.in_features) for k, m in modules.items()}
    masks = union_masks(weights, norms, args.skill_ratio, args.timesteps)
    out = folder / "prune_mask.safetensors"
    meta = save_prune_mask(out, masks, unet, {"model_id": MASK_ORIGIN, "component": "unet"})
    full_fp16 = sum(p.numel() for p in unet.parameters()) * 2
    stats_bytes = sum(n.numel() * 4 for n in norms.values()) * 51 // args.timesteps
    report = {
        "ffn_layers": len(modules),
        "mask_bytes": out.stat().st_size,
        "full_unet_fp16_bytes": full_fp16,
        "num_pruned": meta["num_pruned"],
        "fraction_of_unet": meta["fraction_of_component"],
        "norms_bytes_51_steps": stats_bytes,
    }
    print(json.dumps(report, indent=2))
    print(f"prune_mask.safetensors: {report['mask_bytes'] / 1e6:.1f} MB vs full fp16 UNet copy {full_fp16 / 1e9:.2f} GB; "
          f"activation norms for 51 steps: {stats_bytes / 1e6:.1f} MB")
    return report


def family_sizes(arch: str) -> dict:
    """FFN layers per stream, scored weights and mask bytes of ``arch``'s real denoiser, built on the meta device."""
    from neuron_receivers.hook_variants import HOOK_VARIANTS, scored_weights, select_sites
    from utils.random_arch import build_random_denoiser

    denoiser = build_random_denoiser(arch, device="meta")
    variant = HOOK_VARIANTS["unet"]
    per_stream = {}
    for streams in ("image", "text", "both"):
        try:
            per_stream[streams] = select_sites(denoiser, variant, streams)
        except ValueError:  # a one-stream model has no text-stream FFN
            per_stream[streams] = {}
    both = per_stream["both"]
    return {
        "arch": arch,
        "denoiser": type(denoiser).__name__,
        "parameters": sum(p.numel() for p in denoiser.parameters()),
        "ffn_image": len(per_stream["image"]),
        "ffn_text": len(per_stream["text"]) - sum(1 for s in per_stream["text"].values() if s.stream == "joint"),
        "ffn_shared": sum(1 for s in both.values() if s.stream == "joint"),
        "scored_image": sum(w.numel() for w in scored_weights(per_stream["image"]).values()),
        "scored_both": sum(w.numel() for w in scored_weights(both).values()),
        "mask_bytes_image": sum(s.module.weight.numel() for s in per_stream["image"].values()),
        "mask_bytes_both": sum(s.module.weight.numel() for s in both.values()),
    }


def family_table() -> list[dict]:
    """Print the per-family table (Markdown) and return its rows."""
    from utils.random_arch import ARCHITECTURES

    rows = [family_sizes(arch) for arch in ARCHITECTURES]
    print("| model (random weights, real shape) | denoiser | parameters | FFNs image / text / shared | weights scored (streams image) | mask (image) | weights scored (both) | mask (both) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['denoiser']} | {r['parameters'] / 1e9:.2f} B | {r['ffn_image'] - r['ffn_shared']} / {r['ffn_text']} / {r['ffn_shared']} | "
              f"{r['scored_image'] / 1e6:.1f} M | {r['mask_bytes_image'] / 1e6:.0f} MB | {r['scored_both'] / 1e6:.1f} M | {r['mask_bytes_both'] / 1e6:.0f} MB |")
    return rows


if __name__ == "__main__":
    from utils.errors import run_cli

    run_cli(main)
