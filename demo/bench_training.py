"""Training speed of the demo model: seconds per UNet/text step with and without the FFN selectivity
penalty, and what that makes of the shipped recipe (demo/train_shipped.sh).

Each setting is one short real run of demo/train_model.py (``--steps N``, the shipped VAE, a small
latent cache); its step time is measured after the first 10 steps (warm-up). The recipe
estimate is the recipe's plain and selectivity steps (read from train_shipped.sh) at those rates, plus
--fixed_seconds (the VAE stage and the five runs' start-ups, measured by train_shipped.sh: 661 s + 5 x 20 s
by default).
Example: python demo/bench_training.py --steps 60
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import REPO_ROOT  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402

SHIPPED_RECIPE = REPO_ROOT / "demo" / "train_shipped.sh"


def recipe_steps(script: Path = SHIPPED_RECIPE) -> tuple[int, int]:
    """(plain, selectivity) UNet/text steps of the recipe: the ``--steps "$(steps N)"`` of each ``stage``
    line of demo/train_shipped.sh, counted as selectivity steps where the line passes --ffn_selectivity."""
    plain = selectivity = 0
    for line in script.read_text().splitlines():
        found = re.search(r'--steps "\$\(steps (\d+)\)"', line)
        if line.startswith("stage ") and found:
            if "--ffn_selectivity" in line:
                selectivity += int(found.group(1))
            else:
                plain += int(found.group(1))
    return plain, selectivity



def step_seconds(arch: str, steps: int, selectivity: float, folder: Path, device: str) -> dict:
    """One short training run; returns its report (``seconds_per_step``, ``train_seconds``, ...)."""
    from demo.train_model import main as train

    argv = ["--arch", arch, "--latent_channels", "12", "--vae_from", str(REPO_ROOT / "demo" / "model"), "--images", "2048",
            "--steps", str(steps), "--minutes", "600", "--device", device, "--latent_cache", str(folder / "cache"),
            "--ffn_selectivity", str(selectivity), "--out", str(folder / f"{arch}-{selectivity}")]
    return train(argv)


def check_args(args) -> None:
    """UsageError (one sentence) for a bad option before any training run: too few steps to time, an unknown arch
    or device, a NaN or negative --fixed_seconds, an --out that is a folder or not .json."""
    from demo.checks import device_name, integer, number, output_file
    from demo.train_model import ARCHS

    integer(args.steps, "--steps", 11)  # the first 10 steps are not timed
    if args.arch not in ARCHS:
        raise UsageError(f"unknown --arch {args.arch!r}; use one of {', '.join(sorted(ARCHS))}")
    device_name(args.device)
    number(args.fixed_seconds, "--fixed_seconds", 0)
    if args.out is not None:
        output_file(args.out, "--out", (".json",))


def main(argv=None) -> dict:
    """Parse ``argv``, time plain and selectivity steps, print them and the recipe estimate; return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="low2")
    parser.add_argument("--steps", type=int, default=60, help="steps per run (the first 10 are not timed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fixed_seconds", type=float, default=661 + 5 * 20, help="the recipe's time outside the UNet/text steps")
    parser.add_argument("--out", default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    check_args(args)
    import torch

    figures = {"arch": args.arch, "threads": torch.get_num_threads(), "device": args.device, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for selectivity in (0.0, 0.3):
            report = step_seconds(args.arch, args.steps, selectivity, Path(tmp), args.device)
            figures["runs"][f"selectivity {selectivity}"] = {"seconds_per_step": report["seconds_per_step"], "run_seconds": report["train_seconds"]}
    rates = [figures["runs"][f"selectivity {s}"]["seconds_per_step"] for s in (0.0, 0.3)]
    plain_steps, selectivity_steps = recipe_steps()
    figures["recipe_minutes"] = (args.fixed_seconds + plain_steps * rates[0] + selectivity_steps * rates[1]) / 60
    print(f"{args.arch} on {args.device}, {figures['threads']} threads; seconds per step after 10 warm-up steps:")
    for name, run in figures["runs"].items():
        print(f"  {name}: {run['seconds_per_step']:.3f} s/step (whole run {run['run_seconds']:.0f} s)")
    print(f"  shipped recipe ({plain_steps} plain + {selectivity_steps} selectivity steps + {args.fixed_seconds:.0f} s): {figures['recipe_minutes']:.0f} min")
    if args.out:
        from utils.storage import write_text

        write_text(args.out, json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    run_cli(main)
