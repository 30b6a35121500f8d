"""Peak memory of the FID reference pass: it must not grow with the number of reference images.

    python benchmarking/fid_memory.py                      # 2,000 and 8,000 images, 80x64, fitted to 64x64
    python benchmarking/fid_memory.py --counts 500 2000    # other counts

Writes the largest count of small synthetic PNGs (``--width`` x ``--height``, random noise) into a
temporary folder, then measures each count in a fresh Python process: ``reference_statistics``
(``utils/evaluators/fid.py``: fit to the generation size, clean-fid's 299x299 resize, features streamed
in batches into running sums, statistics cached) over the first N images, reporting the process's
peak RSS (``getrusage``) and its RSS before the pass. The temporary folder is removed at the end.

The feature extractor is pytorch-fid's Inception when its weights are found (``--fid_weights`` or the
torch hub cache) and ``--stand_in`` is not given; otherwise a tiny random stand-in with the same input
(3x299x299) and feature width (2048) (``utils.tiny_evaluators.tiny_inception``). The output says which.
The memory behaviour measured is the pass's, not the network's: with the stand-in a run takes about a
minute on 2 CPU cores.

Exit code 0 when the peak RSS at the largest count exceeds the one at the smallest by less than
``--tolerance_mb`` (default 32 MB), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import UsageError, run_cli  # noqa: E402


def rss_mb() -> float:
    """This process's current resident set size in MB (from /proc/self/statm; the peak where /proc is absent)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, IndexError, ValueError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (``ru_maxrss``: KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """Write ``count`` random-noise PNGs of ``size`` (width, height) into ``folder``; return their paths."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{i:06d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


def make_extractor(fid_weights: str | None, stand_in: bool, batch_size: int):
    """(extractor, description): pytorch-fid's Inception when its weights load, else the tiny random stand-in."""
    from utils.evaluators.fid import FeatureExtractor, FIDUnavailable, InceptionFID
    from utils.tiny_evaluators import tiny_inception

    if not stand_in:
        try:
            return InceptionFID(fid_weights, "cpu", batch_size), "pytorch-fid InceptionV3 with the FID weights"
        except FIDUnavailable as err:
            reason = f" (real weights unavailable: {err.reason.split(';')[0]})"
    else:
        reason = " (--stand_in)"
    identity = {"model": "tiny random Inception stand-in (utils.tiny_evaluators.tiny_inception, 2048-d)"}
    return FeatureExtractor(tiny_inception(), identity, "cpu", batch_size), "tiny random Inception stand-in" + reason


def measure_one(folder: Path, count: int, gen_size: int, batch_size: int, fid_weights: str | None, stand_in: bool) -> dict:
    """Run the reference pass over the first ``count`` images of ``folder`` in this process; return its figures."""
    import torch

    from utils.evaluators.fid import reference_statistics

    torch.set_num_threads(max(1, torch.get_num_threads()))
    paths = sorted(folder.glob("*.png"))[:count]
    if len(paths) < count:
        raise UsageError(f"{folder} holds {len(paths)} images, fewer than {count}; write more first")
    extractor, described = make_extractor(fid_weights, stand_in, batch_size)
    with tempfile.TemporaryDirectory(prefix="fid-memory-cache-") as cache:
        before = rss_mb()
        start = time.perf_counter()
        mu, sigma, info = reference_statistics(paths, extractor, (gen_size, gen_size), Path(cache), batch_size)
        seconds = time.perf_counter() - start
    return {
        "images": count,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "seconds": round(seconds, 1),
        "feature_dims": int(mu.shape[0]),
        "extractor": described,
        "reused": info["reused"],
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Peak RSS of the FID reference pass at several image counts (it must not grow with the count).")
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 8000], help="image counts to measure (default 2000 8000)")
    parser.add_argument("--width", type=int, default=80, help="width of the synthetic images (default 80)")
    parser.add_argument("--height", type=int, default=64, help="height of the synthetic images (default 64)")
    parser.add_argument("--gen_size", type=int, default=64, help="generation size the images are fitted to (default 64)")
    parser.add_argument("--batch_size", type=int, default=50, help="images per feature batch (default 50)")
    parser.add_argument("--fid_weights", default=None, help="pytorch-fid Inception weights file (default: the torch hub cache)")
    parser.add_argument("--stand_in", action="store_true", help="use the tiny random Inception stand-in even when real weights are found")
    parser.add_argument("--tolerance_mb", type=float, default=32.0, help="allowed peak RSS growth from the smallest to the largest count (default 32)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: measure one count in this process
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    """Write the images, measure every count in its own process, print the figures; 0 when RSS does not grow."""
    args = build_parser().parse_args(argv)
    if min(args.counts) < 2 or min(args.width, args.height, args.gen_size, args.batch_size) < 1:
        raise UsageError("counts must be at least 2 and sizes and the batch size at least 1; pass e.g. --counts 2000 8000")
    if args.one is not None:
        print(json.dumps(measure_one(Path(args.folder), args.one, args.gen_size, args.batch_size, args.fid_weights, args.stand_in)))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="fid-memory-images-"))
    try:
        print(f"writing {max(args.counts)} synthetic {args.width}x{args.height} PNGs into {folder}", flush=True)
        write_images(folder, max(args.counts), (args.width, args.height))
        results = []
        for count in sorted(args.counts):
            command = [sys.executable, str(Path(__file__).resolve()), "--one", str(count), "--folder", str(folder)]
            command += ["--gen_size", str(args.gen_size), "--batch_size", str(args.batch_size)]
            command += (["--fid_weights", args.fid_weights] if args.fid_weights else []) + (["--stand_in"] if args.stand_in else [])
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise UsageError(f"measuring {count} images failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    growth = results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"]
    print(f"extractor: {results[0]['extractor']}")
    for r in results:
        print(f"{r['images']:>7} images: peak RSS {r['peak_rss_mb']:.1f} MB (before the pass {r['rss_before_mb']:.1f} MB), {r['seconds']:.1f} s")
    verdict = "does not grow" if growth < args.tolerance_mb else "GROWS"
    print(f"peak RSS growth from {results[0]['images']} to {results[-1]['images']} images: {growth:+.1f} MB ({verdict}; tolerance {args.tolerance_mb:g} MB)")
    return 0 if growth < args.tolerance_mb else 1


if __name__ == "__main__":
    code = 0

    def _main(argv=None):
        global code
        code = main(argv)

    run_cli(_main)
    sys.exit(code)
