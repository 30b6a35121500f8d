"""Prompt sets of the benchmarks: our datasets/ files, the ecosystem's CSVs, text files, hub datasets.

A prompt set is a list of ``Sample``: one image to generate per model, with its prompt, seed and
a ``key`` naming its image file. The ecosystem's CSV format is ``case_number,prompt,evaluation_seed,...``
(extra columns are kept); the prompt column may also be called ``adv_prompt`` (MMA-Diffusion) or
``sensitive prompt`` (Ring-A-Bell), the seed ``sd_seed`` (I2P). No torch import here.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.concepts import DATASETS_DIR
from utils.errors import UsageError

PROMPT_COLUMNS = ("prompt", "adv_prompt", "sensitive prompt", "caption", "text")
SEED_COLUMNS = ("evaluation_seed", "sd_seed", "seed")
HUB_SETS = {
    "i2p": ("AIML-TUDA/i2p", "train"),
    "mma": ("YijunYang280/MMA-Diffusion-NSFW-adv-prompts-benchmark", "train"),
}
LOCAL_ONLY_SETS = {"ring-a-bell": "the Ring-A-Bell prompt CSV (e.g. Nudity_ring-a-bell_*.csv from its authors)"}


@dataclass(frozen=True)
class Sample:
    """One image to generate: ``key`` names its file, ``index`` is its place in the whole set."""

    index: int
    key: str
    case_number: str
    prompt: str
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The sample as a JSON-ready dict (for metrics.json)."""
        return {"key": self.key, "case_number": self.case_number, "prompt": self.prompt, "seed": self.seed, **self.extra}


def _first_present(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _seed(text: str, default: int, where: str) -> int:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        if text in (None, ""):
            return default
        raise UsageError(f"{where}: seed {text!r} is not an integer; fix the file's seed column") from None


def rows_to_samples(rows: list[dict[str, Any]], default_seed: int, where: str) -> list[Sample]:
    """Samples of table rows (dicts with a prompt column, optional case_number and seed columns)."""
    if not rows:
        raise UsageError(f"{where} holds no prompts; pass a file with at least one")
    columns = list(rows[0])
    prompt_col = _first_present(columns, PROMPT_COLUMNS)
    if prompt_col is None:
        raise UsageError(f"{where} has no prompt column (one of {', '.join(PROMPT_COLUMNS)}); its columns are {', '.join(columns)}")
    seed_col = _first_present(columns, SEED_COLUMNS)
    case_col = _first_present(columns, ("case_number",))
    samples, seen = [], set()
    for i, row in enumerate(rows):
        prompt = row.get(prompt_col)
        if prompt is None or not str(prompt).strip():
            raise UsageError(f"{where} row {i + 1} has an empty prompt; fill it in or remove the row")
        case = str(row[case_col]).strip() if case_col and row.get(case_col) not in (None, "") else str(i)
        if case in seen:
            raise UsageError(f"{where} repeats case_number {case}; case numbers must be unique")
        seen.add(case)
        seed = _seed(row.get(seed_col), default_seed, where) if seed_col else default_seed
        extra = {k: v for k, v in row.items() if k not in (prompt_col, seed_col, case_col) and k is not None}
        samples.append(Sample(i, case, case, str(prompt).strip(), seed, extra))
    return samples


def read_prompt_file(path: str | Path, default_seed: int) -> list[Sample]:
    """Samples of a CSV (header with a prompt column) or a text file (one prompt a line)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"prompt file {path} does not exist; pass an existing CSV or text file")
    if path.suffix.lower() == ".csv":
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                columns = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as err:
            raise UsageError(f"{path} is not a readable CSV ({err}); fix the file") from None
        if any(None in row for row in rows):
            raise UsageError(f"{path} has a row with more fields than its header ({', '.join(columns)}); fix the file")
        return rows_to_samples(rows, default_seed, str(path))
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows_to_samples([{"prompt": line} for line in lines], default_seed, str(path))


def load_hub_prompt_set(name: str, default_seed: int) -> list[Sample]:
    """Samples of a named hub prompt set (i2p, mma) through the ``datasets`` library.

    Works offline when the dataset is in the Hugging Face cache; otherwise raises UsageError
    saying which local file to pass.
    """
    repo, split = HUB_SETS[name]
    advice = f"export {repo} to a CSV where the hub is reachable and pass it with --eval_dataset FILE.csv"
    try:
        from datasets import load_dataset
    except ImportError:
        raise UsageError(f"--eval_dataset {name} needs the `datasets` package (pip install datasets), or {advice}") from None
    try:
        table = load_dataset(repo, split=split)
    except Exception as err:  # the datasets library raises many types for offline / missing data
        raise UsageError(f"could not load {repo} ({type(err).__name__}); {advice}") from None
    return rows_to_samples([dict(row) for row in table], default_seed, repo)


def load_eval_dataset(name_or_path: str, default_seed: int) -> list[Sample]:
    """The nudity benchmark's prompt set: ``i2p``, ``mma``, ``ring-a-bell`` or a CSV / text file."""
    key = name_or_path.lower()
    if key in HUB_SETS:
        return load_hub_prompt_set(key, default_seed)
    if key in LOCAL_ONLY_SETS:
        raise UsageError(f"ring-a-bell is not on the hub; pass {LOCAL_ONLY_SETS[key]} with --eval_dataset FILE.csv")
    if not Path(name_or_path).exists():
        known = ", ".join(list(HUB_SETS) + list(LOCAL_ONLY_SETS))
        raise UsageError(f"--eval_dataset {name_or_path!r} is neither a known set ({known}) nor an existing file; pass one")
    return read_prompt_file(name_or_path, default_seed)


def expand_seeds(samples: list[Sample], seeds: list[int]) -> list[Sample]:
    """Each sample once per seed, keyed ``<case>_s<seed>``, indexed in (prompt, seed) order."""
    out = []
    for sample in samples:
        for seed in seeds:
            out.append(Sample(len(out), f"{sample.key}_s{seed}", sample.case_number, sample.prompt, int(seed), dict(sample.extra)))
    return out


def select_rows(samples: list[Sample], column: str, keep) -> list[Sample]:
    """Samples whose ``extra[column]`` passes ``keep``, re-indexed from 0 (keys unchanged)."""
    chosen = [s for s in samples if keep(s.extra.get(column))]
    return [Sample(i, s.key, s.case_number, s.prompt, s.seed, s.extra) for i, s in enumerate(chosen)]


def limit_samples(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The first ``limit`` samples (all when None)."""
    return samples if limit is None else samples[: int(limit)]


def builtin_prompt_file(name: str) -> Path:
    """Path of one of our datasets/ prompt files."""
    return DATASETS_DIR / name
