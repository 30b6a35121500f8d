"""Time of the revival attack on a full-size SD 1.5 UNet (random weights, real shapes: 16 ff.net.2 layers).

Builds SD 1.5's UNet from its config with random weights (utils/random_arch.py), zeroes --fraction of each
ff.net.2 layer's weights (the largest |W|, like skilled weights), and times the attack of
benchmarking/revival_attack.py (locate the zeros, SoftImpute completion, sign and magnitude) on the device.
Prints and returns {"seconds", "layers", "located", "rank", "max_iters", "device"}.
Example: python benchmarking/revival_speed.py --rank 64 --max_iters 100 --device cuda
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import run_cli  # noqa: E402


def main(argv=None) -> dict:
    """Build, prune, attack, time; print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.01, help="share of each layer's weights zeroed")
    parser.add_argument("--rank", type=int, default=64, help="SVD rank cap of the completion (None: full SVD)")
    parser.add_argument("--max_iters", type=int, default=100)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from demo.checks import device_name, integer, number

    number(args.fraction, "--fraction", 0.0, 1.0, open_low=True)
    integer(args.rank, "--rank")
    integer(args.max_iters, "--max_iters")
    device_name(args.device)

    import torch

    from neuron_receivers.hook_variants import HOOK_VARIANTS, scored_weights, select_sites
    from utils.model_loading import resolve_device
    from utils.random_arch import build_random_denoiser
    from utils.revived import attack, locate

    device = resolve_device(args.device)
    torch.manual_seed(0)
    unet = build_random_denoiser("sd15", device=str(device))
    weights = scored_weights(select_sites(unet, HOOK_VARIANTS["unet"]))
    with torch.no_grad():
        for weight in weights.values():
            count = max(1, round(args.fraction * weight.numel()))
            weight.view(-1)[torch.topk(weight.abs().view(-1), count).indices] = 0
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    located = locate(weights, "zeros")
    attack(weights, located, rank=args.rank, max_iters=args.max_iters)
    sync()
    report = {"seconds": round(time.perf_counter() - started, 2), "layers": len(weights), "located": int(sum(int(m.sum()) for m in located.values())),
              "rank": args.rank, "max_iters": args.max_iters, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    run_cli(main)
