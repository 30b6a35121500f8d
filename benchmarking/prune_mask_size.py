"""Size of prune_mask.safetensors for a full-size SD 1.5 UNet, next to the reference's full-UNet copy.

Builds SD 1.5's UNet from its config with random weights (no download; its layer shapes are the
real ones), derives a union mask from random activation norms, saves it with the project's
writer, and reports the file size beside the size of a full fp16 UNet state dict (what the
reference code saves per setting). Usage: ``python benchmarking/prune_mask_size.py``.
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
    args = parser.parse_args(argv)

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
    out = Path(args.out or tempfile.mkdtemp()) / "prune_mask.safetensors"
    meta = save_prune_mask(out, masks, unet, {"model_id": "sd15-shaped-random", "component": "unet"})
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


if __name__ == "__main__":
    main()
