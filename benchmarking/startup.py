"""Start-up time of every script: --help and a bad-input check, next to the torch + diffusers import.

Each script answers --help and rejects bad input before torch and diffusers are imported, so both
take well under a second; a real run imports them once. Prints a table (seconds, best of --repeats).
Usage: python benchmarking/startup.py
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.errors import UsageError, run_cli  # noqa: E402

SCRIPTS = sorted([*REPO.glob("wanda/*.py"), *REPO.glob("benchmarking/*.py"), REPO / "demo" / "run_demo.py"])
# one input per script that its checks reject (exit code 2) before any model is touched
BAD_INPUT = {
    "wanda": ["--target", "no-such-concept"],
    "multi_concept_union": ["--targets", "Van Gogh", "no-such-concept"],
    "artist_erasure": ["--target", "Van Gogh", "--baseline", "no-such-method"],
    "nudity_eval": ["--baseline", "no-such-method"],
    "object_erase": ["--target", "zebra", "--baseline", "sd"],
    "gender_reversal": ["--target", "robot", "--baseline", "sd"],
    "eval_coco": ["--baseline", "sd"],
    "inference_mem": ["--target", "memorize_0", "--baseline", "sd"],
    "summarize": ["no-such-folder"],
    "speed": ["--random_arch", "tiny", "--pairs", "0"],
    "run_demo": ["--target", "Van Gogh"],
}


def timed(command: list[str], repeats: int) -> tuple[float, int]:
    """(fastest wall time in seconds, exit code) of ``command`` run ``repeats`` times."""
    best, code = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        code = subprocess.run(command, cwd=REPO, capture_output=True).returncode
        best = min(best, time.perf_counter() - start)
    return best, code


def main(argv=None) -> None:
    """Parse ``argv``; time every script's --help and bad input, and the heavy imports; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise UsageError(f"--repeats must be a positive integer, got {args.repeats}")
    rows = []
    for script in SCRIPTS:
        if script.name in ("startup.py", "prune_mask_size.py"):
            continue
        name = script.stem
        help_s, _ = timed([sys.executable, str(script), "--help"], args.repeats)
        bad = BAD_INPUT.get(name, BAD_INPUT["wanda"] if script.parent.name == "wanda" else None)
        bad_s, code = timed([sys.executable, str(script), *bad], args.repeats) if bad else (None, None)
        rows.append((f"{script.parent.name}/{script.name}", help_s, bad_s, code))
    imports, _ = timed([sys.executable, "-c", "import torch, diffusers, transformers; diffusers.StableDiffusionPipeline"], args.repeats)
    print("| script | --help (s) | bad input (s) | exit code |\n|---|---|---|---|")
    for name, help_s, bad_s, code in rows:
        print(f"| {name} | {help_s:.2f} | {'–' if bad_s is None else f'{bad_s:.2f}'} | {'–' if code is None else code} |")
    print(f"| import torch + diffusers + transformers | {imports:.2f} | | |")


if __name__ == "__main__":
    run_cli(main)
