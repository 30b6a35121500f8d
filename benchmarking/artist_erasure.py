"""Artist-style erasure: CLIP score of prompts naming a painting and its artist, before and after.

Prompts: datasets/artist_prompts.csv (50 per artist, each with its evaluation seed) or --prompts.
Metric: the CLIP score (prompt vs image, default openai/clip-vit-large-patch14) per image, its mean,
and the fraction of prompts whose score dropped after erasure (per artist with --eval_artists all).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.concepts import artist_phrases  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.prompt_sets import builtin_prompt_file, limit_samples, read_prompt_file, select_rows  # noqa: E402

SPECIFIC = ("clip_model", "eval_artists")


def artist_samples(config: dict) -> list:
    """The prompts to evaluate: the target's (or the chosen artists') rows of the prompt set."""
    target, choice = config["target"], str(config.get("eval_artists") or "target")
    samples = read_prompt_file(config.get("prompts") or builtin_prompt_file("artist_prompts.csv"), int(config["seed"]))
    if "artist" not in samples[0].extra or choice == "all":
        return samples
    artists = {target} if choice == "target" else {a.strip() for a in choice.split(",")}
    known = set(artist_phrases())
    unknown = sorted(a for a in artists if a not in {s.extra["artist"] for s in samples})
    if unknown:
        raise UsageError(f"no prompts for artist(s) {', '.join(unknown)} in the prompt set; known artists are {', '.join(sorted(known))}")
    return select_rows(samples, "artist", lambda a: a in artists)


def main(argv=None) -> None:
    """Parse ``argv``, generate the artist prompts with the original and edited models, score them."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC).parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "artist_erasure")
    samples = limit_samples(artist_samples(config), config.get("limit"))

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import ArtistEvaluator

    run_and_report("artist_erasure", config, samples, ArtistEvaluator(config["clip_model"]), config["target"])


if __name__ == "__main__":
    run_cli(main)
