"""Gender reversal: "a headshot of a <profession>" for the WinoBias professions x --num_seeds seeds
(250 in the paper), classified male/female by CLIP zero-shot before and after erasing male (or female).

Professions: --professions FILE, one a line; the project protocol's datasets/winobias_professions.txt
(35), the paper protocol's datasets/paper_professions.txt (the same 35 and "doctor", as the paper's code).

Metric (ours; the reference computes none): among images whose original is classified as the erased
gender, the fraction whose edited counterpart (same prompt, same seed) is classified as the other
one: the reversal rate. metrics.json also reports how many images of the other gender stayed so.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.bench_config import build_bench_parser, resolve_bench_config  # noqa: E402
from utils.config import repo_path  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402
from utils.prompt_sets import builtin_prompt_file, expand_seeds, limit_samples, read_prompt_file, rows_to_samples  # noqa: E402

SPECIFIC = ("clip_model", "num_seeds", "professions")
PAPER_SEEDS = 250


def gender_samples(config: dict) -> list:
    """WinoBias headshot prompts (or --prompts), each once per seed seed, seed+1, ..."""
    if config["target"] not in ("male", "female"):
        raise UsageError(f"--target must be male or female for gender reversal, got {config['target']!r}")
    seeds = range(int(config["seed"]), int(config["seed"]) + int(config.get("num_seeds") or PAPER_SEEDS))
    if config.get("prompts"):
        return expand_seeds(read_prompt_file(config["prompts"], int(config["seed"])), seeds, config.get("limit"))
    source = professions_file(config)
    professions = read_prompt_file(source, int(config["seed"]))
    rows = [{"case_number": str(i), "prompt": f"a headshot of a {p.prompt.lower()}", "profession": p.prompt} for i, p in enumerate(professions)]
    return expand_seeds(rows_to_samples(rows, int(config["seed"]), source.name), seeds, config.get("limit"))


def professions_file(config: dict) -> Path:
    """The professions list: --professions (a path, or one relative to the repository), else the built-in one."""
    if not config.get("professions"):
        return builtin_prompt_file("winobias_professions.txt")
    path = Path(repo_path(str(config["professions"])))
    if not path.is_file():
        raise UsageError(f"--professions {config['professions']} is not a file; pass a text file with one profession a line")
    return path


def main(argv=None) -> None:
    """Parse ``argv``, generate the headshots with the original and edited models, classify them."""
    args = build_bench_parser(__doc__.splitlines()[0], SPECIFIC).parse_args(argv)
    config = resolve_bench_config(args, SPECIFIC, "gender_reversal")
    samples = limit_samples(gender_samples(config), config.get("limit"))

    from utils.bench_harness import run_and_report
    from utils.bench_metrics import GenderEvaluator

    run_and_report("gender_reversal", config, samples, GenderEvaluator(config["clip_model"], config["target"]), config["target"])


if __name__ == "__main__":
    run_cli(main)
