"""Time to a pruned model, phase by phase, and the hooks' overhead over plain generation.

For a model (hub id, local folder, or --random_arch: the real shapes of SD 1.5, SDXL, SD 3.5 medium,
PixArt-Sigma or FLUX.1-dev with random weights, which cost what the real ones cost; or a tiny model of a
family for the CPU: tiny = the 16-FFN SD 1.x one, tiny-sd2 | tiny-sdxl | tiny-sd3 | tiny-pixart-sigma |
tiny-flux) and N prompt pairs ("a photo of a X" / "a X in the style of Van Gogh"), measures:

- the phases of "time to a pruned model", each timing the function wanda/save_union_over_time.py calls:
  load, record (the first tau denoiser calls, generation stopped there), union_masks (utils.skilled.union_masks:
  the skilled masks of every step and layer, united), save (utils.pruning.save_prune_mask);
- the physical limit of that time: plain_tau, the same batches' first tau denoiser calls without any hook
  (text encoding included, generation stopped there), and how far record + union_masks + save lie above it;
- plain generation of the same prompts and steps without hooks (latent output), recording over
  all steps with hooks, and their ratio (the hooks' overhead);
- peak device memory, peak host RSS, the size of the statistics for all steps and of
  prune_mask.safetensors.

Prints one table and writes the numbers to JSON (--out). Runs on the CPU (float32) or CUDA (float16;
--dtype bfloat16 for the transformer families). The first-FFN-of-the-image-stream scoring (hook variant unet,
streams image) is what is timed. Examples:
  python benchmarking/speed.py --random_arch tiny --pairs 8 --num_inference_steps 50 --timesteps 10
  python benchmarking/speed.py --random_arch flux-dev --dtype bfloat16 --pairs 4 --num_inference_steps 28 --skip_plain
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import UsageError, run_cli  # noqa: E402

REAL_SHAPES = ("sd15", "sdxl", "sd3.5-medium", "pixart-sigma", "flux-dev")  # utils.random_arch.ARCHITECTURES
TINY = {"tiny": None, "tiny-sd2": "sd2", "tiny-sdxl": "sdxl", "tiny-sd3": "sd3", "tiny-pixart-sigma": "pixart-sigma", "tiny-flux": "flux"}
ARCHS = REAL_SHAPES + tuple(TINY)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_id", help="hub id or local diffusers folder")
    source.add_argument("--random_arch", choices=ARCHS, help="a real family's shapes with random weights, or a tiny model of a family (tiny: SD 1.x)")
    parser.add_argument("--pairs", type=int, default=8, help="prompt pairs")
    parser.add_argument("--num_inference_steps", type=int, default=50)
    parser.add_argument("--timesteps", type=int, default=10, help="tau: UNet calls recorded for the pruned model")
    parser.add_argument("--skill_ratio", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=None, help="prompt pairs per pipeline call (default: all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=1, help="time plain and hooked generation this many times each, keep the fastest")
    parser.add_argument("--skip_plain", action="store_true", help="skip plain and hooked full-length generation (time to pruned model only)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the model's)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the model's)")
    parser.add_argument("--check_fp32", action="store_true", help="also record in float32 and report how many of its selected weights the run's masks share")
    parser.add_argument("--check_syncs", action="store_true", help="CUDA: run the recorder's hook under torch's sync debug mode 'error' (fails on a host sync)")
    parser.add_argument("--out", default=None, help="JSON file to write (default results/speed/<model>_<device>.json)")
    args = parser.parse_args(argv)
    check_args(args)
    return args


DTYPES = ("auto", "float32", "float16", "bfloat16")


def check_args(args) -> None:
    """UsageError (one sentence) for a bad option, before torch is imported or anything is written: counts, the
    skill ratio, image size, device and dtype names, and an --out that is a folder or another file of the user's."""
    from demo.checks import device_name, integer, output_file, read_json

    for key in ("pairs", "num_inference_steps", "timesteps", "repeats"):
        integer(getattr(args, key), f"--{key}")
    if not 0 < args.skill_ratio < 1:  # NaN fails this too
        raise UsageError(f"--skill_ratio must lie strictly between 0 and 1, got {args.skill_ratio}")
    if args.batch_size is not None:
        integer(args.batch_size, "--batch_size")
    for key in ("height", "width"):
        value = getattr(args, key)
        if value is not None and (integer(value, f"--{key}") % 8):
            raise UsageError(f"--{key} must be a multiple of 8, got {value}")
    device_name(args.device)
    if args.dtype not in DTYPES:
        raise UsageError(f"unknown --dtype {args.dtype!r}; choose one of {', '.join(DTYPES)}")
    if args.out is not None and output_file(args.out, "--out", (".json",)).exists():
        try:
            earlier = read_json(args.out, "a report of speed.py")
        except UsageError:
            earlier = None
        if not (isinstance(earlier, dict) and "phases_s" in earlier):
            raise UsageError(f"--out {args.out} exists and is not a report of speed.py; pass a new path (nothing of yours is replaced)")


def prompt_pairs(count: int, seed: int = 0):
    """``count`` (base, target) pairs of the Van Gogh kind, cycling through datasets/art_things.txt."""
    from utils.concepts import DATASETS_DIR, Concept, PromptPair

    things = [t.strip() for t in (DATASETS_DIR / "art_things.txt").read_text().splitlines() if t.strip()]
    pairs = [PromptPair(f"a photo of a {t}", f"a {t} in the style of Van Gogh", seed) for t in (things * (count // len(things) + 1))[:count]]
    return Concept("speed", "custom", tuple(pairs))


class Clock:
    """Wall-clock phases, synchronising CUDA before each reading."""

    def __init__(self, device) -> None:
        self.device, self.phases = device, {}

    def now(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def measure(self, name: str, fn):
        """Run ``fn`` once, keep its time under ``name``; return its result."""
        return self.interleave({name: fn}, 1)[name]

    def interleave(self, runs: dict, repeats: int) -> dict:
        """Time each of ``runs`` (name -> fn) in turn, ``repeats`` rounds; keep each one's fastest; return last results."""
        results = {}
        for _ in range(repeats):
            for name, fn in runs.items():
                start = self.now()
                results[name] = fn()
                elapsed = self.now() - start
                self.phases[name] = min(elapsed, self.phases.get(name, elapsed))
        return results


def load(args, device, dtype):
    """The pipeline named by --model_id or built by --random_arch."""
    from utils.model_loading import load_pipeline

    if args.model_id:
        return load_pipeline(args.model_id, device, dtype)
    if args.random_arch in REAL_SHAPES:
        from utils.random_arch import build_random_pipeline

        return build_random_pipeline(args.random_arch, device, dtype)
    if TINY[args.random_arch] is None:
        from utils.tiny_pipeline import build_tiny_pipeline

        pipe = build_tiny_pipeline("sd1", seed=0)
    else:
        from utils.tiny_families import build_tiny_family

        pipe = build_tiny_family(TINY[args.random_arch], seed=0)
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prepare(args):
    """The measurement's fixed inputs: (device, dtype, concept, sampling config, hook variant)."""
    from neuron_receivers.hook_variants import get_variant
    from utils.model_loading import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    batch = args.batch_size or args.pairs
    size = 32 if args.random_arch in TINY and TINY[args.random_arch] else None  # the tiny families' native size
    config = {"num_inference_steps": args.num_inference_steps, "guidance_scale": 7.5, "batch_size": batch, "streams": "image",
              "height": args.height or size, "width": args.width or size}
    return device, resolve_dtype(args.dtype, device), prompt_pairs(args.pairs), config, get_variant("unet")


def load_and_warm_up(clock: Clock, args, dtype, config, variant):
    """Load the model (timed as "load"), check --timesteps against its denoiser calls, run one short untimed
    generation (CUDA context, kernels, allocator); return (pipe, denoiser calls, scored sites)."""
    import torch

    from utils.generation import count_unet_calls, run_pipeline
    from utils.recording import pipeline_sites

    pipe = clock.measure("load", lambda: load(args, clock.device, dtype))
    calls = count_unet_calls(pipe, args.num_inference_steps)
    if args.timesteps > calls:
        raise UsageError(f"--timesteps {args.timesteps} exceeds the {calls} denoiser calls of {args.num_inference_steps} steps")
    _, sites = pipeline_sites(pipe, variant, config["streams"])
    run_pipeline(pipe, ["warm up"], [0], dict(config, num_inference_steps=2))
    if clock.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(clock.device)
    return pipe, calls, sites


def generate_pairs(pipe, concept, config, stop_at: int | None = None) -> None:
    """Plain generation of every pair (base and target in one batch, latents only, no hook), or, with ``stop_at``,
    each generation stopped after that many denoiser calls (the call counter its only hook)."""
    from contextlib import nullcontext

    from neuron_receivers.hook_variants import denoiser_of
    from neuron_receivers.trace import StopGeneration, trace_steps
    from utils.generation import run_pipeline

    batch = config["batch_size"]
    for i in range(0, len(concept.pairs), batch):
        pairs = concept.pairs[i : i + batch]
        with nullcontext() if stop_at is None else trace_steps(denoiser_of(pipe), {}, stop_at=stop_at):
            try:
                run_pipeline(pipe, [p.base for p in pairs] + [p.target for p in pairs], [p.seed for p in pairs] * 2, config)
            except StopGeneration:
                pass


def time_generation(clock: Clock, pipe, concept, config, variant, repeats: int) -> int:
    """Time plain generation of all steps and recording of all steps (interleaved, fastest of ``repeats``);
    return the bytes of the statistics of all steps."""
    from utils.recording import record_norms

    plain = lambda: generate_pairs(pipe, concept, config)  # noqa: E731
    hooked = lambda: record_norms(pipe, concept, config, variant, None)  # noqa: E731
    full = clock.interleave({"plain_generation": plain, "hooked_generation": hooked}, repeats)["hooked_generation"]
    return sum(n.numel() * n.element_size() for n in full.values())


def time_plain_tau(clock: Clock, pipe, concept, config, args) -> None:
    """Time the physical limit of recording ("plain_tau"): the same batches' first tau denoiser calls with no
    hook but the call counter that stops the generation there."""
    clock.measure("plain_tau", lambda: generate_pairs(pipe, concept, config, stop_at=args.timesteps))


def time_to_pruned_model(clock: Clock, pipe, concept, config, variant, sites, args):
    """Time what wanda/save_union_over_time.py runs once the model is loaded: record the first tau calls
    ("record"), derive and unite the skilled masks with ``utils.skilled.union_masks`` ("union_masks") and
    write them with ``utils.pruning.save_prune_mask`` ("save", to a temporary folder removed afterwards).
    Returns (masks of the scored weights, the mask file's metadata, its size in bytes)."""
    from neuron_receivers.hook_variants import denoiser_of, full_masks, scored_weights
    from utils.pruning import save_prune_mask
    from utils.recording import record_norms
    from utils.skilled import union_masks

    weights = scored_weights(sites)
    norms = clock.measure("record", lambda: record_norms(pipe, concept, config, variant, args.timesteps))
    masks = clock.measure("union_masks", lambda: union_masks(weights, norms, args.skill_ratio, args.timesteps))
    metadata = {"model_id": args.model_id or f"random-{args.random_arch}", "component": "unet" if getattr(pipe, "unet", None) is not None else "transformer"}
    scored = sum(w.numel() for w in weights.values())
    with tempfile.TemporaryDirectory(prefix="speed-") as out_dir:
        mask_path = Path(out_dir) / "prune_mask.safetensors"
        meta = clock.measure("save", lambda: save_prune_mask(mask_path, full_masks(sites, masks), denoiser_of(pipe), metadata, num_scored=scored))
        return masks, meta, mask_path.stat().st_size


PRUNED_MODEL_PHASES = ("record", "union_masks", "save")


def build_report(args, clock: Clock, pipe, sites, dtype, calls: int, config, stats_bytes, meta, mask_bytes: int, agreement, syncs_checked) -> dict:
    """The JSON report of one run (see the module docstring for what each figure is)."""
    import torch

    from utils.model_loading import dtype_name

    device, phases, plain = clock.device, clock.phases, not args.skip_plain
    return {
        "model": args.model_id or f"random {args.random_arch}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": dtype_name(dtype),
        "pairs": args.pairs,
        "num_inference_steps": args.num_inference_steps,
        "unet_calls": calls,
        "pipeline": type(pipe).__name__,
        "ffn_layers": len(sites),
        "scored_weights": int(meta["num_scored"]),
        "timesteps": args.timesteps,
        "skill_ratio": args.skill_ratio,
        "batch_pairs": config["batch_size"],
        "phases_s": phases,
        "time_to_pruned_model_s": sum(phases[k] for k in PRUNED_MODEL_PHASES),
        "above_physical_limit": sum(phases[k] for k in PRUNED_MODEL_PHASES) / phases["plain_tau"] - 1.0,
        "hook_overhead": phases["hooked_generation"] / phases["plain_generation"] - 1.0 if plain else None,
        "plain_images_per_s": 2 * args.pairs / phases["plain_generation"] if plain else None,
        "peak_device_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "peak_host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "statistics_bytes_all_steps": stats_bytes,
        "prune_mask_bytes": mask_bytes,
        "num_pruned": meta["num_pruned"],
        "fraction_of_unet": meta["fraction_of_component"],
        "fp32_agreement": agreement,
        "hook_has_no_host_sync": syncs_checked,
        "versions": {"torch": torch.__version__},
    }


def write_report(report: dict, args, device) -> Path:
    """Write the report as JSON to --out (default results/speed/<model>_<device>.json); return the path."""
    from utils.paths import model_slug
    from utils.storage import write_text

    out = Path(args.out or Path("results") / "speed" / f"{model_slug(args.model_id) if args.model_id else args.random_arch}_{device.type}.json")
    write_text(out, json.dumps(report, indent=2) + "\n")
    return out


def main(argv=None) -> dict:
    """Measure, print the table, write the JSON; return the report."""
    args = parse_args(argv)
    if args.model_id:
        from utils.config import check_model_id

        check_model_id(args.model_id)
    device, dtype, concept, config, variant = prepare(args)
    clock = Clock(device)
    pipe, calls, sites = load_and_warm_up(clock, args, dtype, config, variant)
    stats_bytes = None if args.skip_plain else time_generation(clock, pipe, concept, config, variant, args.repeats)
    time_plain_tau(clock, pipe, concept, config, args)
    masks, meta, mask_bytes = time_to_pruned_model(clock, pipe, concept, config, variant, sites, args)
    agreement = fp32_agreement(pipe, concept, config, variant, masks, sites, args) if args.check_fp32 else None
    syncs_checked = check_no_host_syncs(device) if args.check_syncs else None
    report = build_report(args, clock, pipe, sites, dtype, calls, config, stats_bytes, meta, mask_bytes, agreement, syncs_checked)
    out = write_report(report, args, device)
    print(format_table(report))
    print(f"-> {out}")
    return report


def fp32_agreement(pipe, concept, config, variant, masks, sites, args) -> dict:
    """Record again with the model in float32 and compare its union masks with ``masks``.

    Returns {"selected_fp32", "selected_run", "shared", "shared_fraction_of_fp32"}.
    """
    import torch

    from neuron_receivers.hook_variants import scored_weights
    from utils.recording import record_norms
    from utils.skilled import union_masks

    pipe.to(torch.float32)
    weights = scored_weights(sites)
    reference = union_masks(weights, record_norms(pipe, concept, config, variant, args.timesteps), args.skill_ratio, args.timesteps)
    selected = sum(int(m.sum()) for m in reference.values())
    shared = sum(int((reference[k] & masks[k].to(reference[k].device)).sum()) for k in reference)
    return {"selected_fp32": selected, "selected_run": sum(int(m.sum()) for m in masks.values()), "shared": shared, "shared_fraction_of_fp32": shared / max(selected, 1)}


def check_no_host_syncs(device) -> bool:
    """Feed the recorder float16 CUDA activations under sync debug mode 'error'; True when no call synchronised."""
    import torch

    from neuron_receivers.norm_recorder import ActivationNormRecorder

    if device.type != "cuda":
        return None
    recorder = ActivationNormRecorder(num_groups=2)
    recorder.set_batch_groups([0, 1])
    x = torch.randn(4, 1024, 1280, device=device, dtype=torch.float16)
    recorder(0, "layer", x)  # first call of a batch: allocates, copies the group ids once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1, 20):
            recorder(step % 3, "layer", x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize(device)
    return True


def format_table(report: dict) -> str:
    """The report as a two-column Markdown table."""
    mb = lambda b: "–" if b is None else f"{b / 1e6:.1f} MB"  # noqa: E731
    rows = [("model", f"{report['model']} ({report['pipeline']}, {report['ffn_layers']} FFNs, {report['scored_weights']:,} scored weights)"),
            ("device / dtype", f"{report['device']} / {report['dtype']}"),
            ("prompt pairs / steps (denoiser calls) / tau", f"{report['pairs']} / {report['num_inference_steps']} ({report['unet_calls']}) / {report['timesteps']}")]
    rows += [(f"{name} (s)", f"{seconds:.3f}") for name, seconds in report["phases_s"].items()]
    rows += [
        ("time to pruned model: record + union_masks + save (s)", f"{report['time_to_pruned_model_s']:.3f}"),
        ("above the physical limit (tau plain denoiser calls)", f"{100 * report['above_physical_limit']:+.1f}%"),
        ("hook overhead (hooked / plain - 1)", "–" if report["hook_overhead"] is None else f"{100 * report['hook_overhead']:+.1f}%"),
        ("plain generation (images/s, latents)", "–" if report["plain_images_per_s"] is None else f"{report['plain_images_per_s']:.2f}"),
        ("peak device memory", mb(report["peak_device_memory_bytes"])),
        ("peak host RSS", mb(report["peak_host_rss_bytes"])),
        ("statistics, all steps", mb(report["statistics_bytes_all_steps"])),
        ("prune_mask.safetensors", mb(report["prune_mask_bytes"])),
        ("pruned weights", f"{report['num_pruned']:,} ({100 * report['fraction_of_unet']:.3f}% of the denoiser)"),
    ]
    if report.get("fp32_agreement"):
        a = report["fp32_agreement"]
        rows.append(("masks vs a float32 recording (shared / float32's selected)", f"{a['shared']:,} / {a['selected_fp32']:,} = {100 * a['shared_fraction_of_fp32']:.2f}%"))
    if report.get("hook_has_no_host_sync") is not None:
        rows.append(("recorder hook free of host syncs", str(report["hook_has_no_host_sync"])))
    return "\n".join(["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


if __name__ == "__main__":
    run_cli(main)
