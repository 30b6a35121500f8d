"""Prompt sets of the benchmarks: our datasets/ files, the ecosystem's CSVs, text files, hub datasets.

A prompt set is a list of ``Sample``: one image to generate per model, with its prompt, seed and
a ``key`` naming its image file. The ecosystem's CSV format is ``case_number,prompt,evaluation_seed,...``
(extra columns are kept); the prompt column may also be called ``adv_prompt`` (MMA-Diffusion) or
``sensitive prompt`` (Ring-A-Bell), the seed ``sd_seed`` (I2P). No torch import here.

Files are read as UTF-8; a leading byte-order mark (as Excel writes) is dropped.

Safe names: a ``case_number`` becomes an image file name (``<case_number>.png``, or
``<case_number>_s<seed>.png`` over seeds) inside the run folder, so it must be a plain name:
1 to 100 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit (no ``/``,
``..``, spaces or absolute paths). Any other case number is refused with its row number; case
numbers must also be unique ignoring case (``A1`` and ``a1`` would be one file on macOS and Windows).
Rows without a case number are named by their row index (0, 1, ...).

Seeds: an evaluation seed must be a whole number in [0, 2**32 - 1] (``42`` or ``42.0``); an empty
cell takes the default seed (``--seed``). Anything else is refused with its row number.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from utils.concepts import DATASETS_DIR
from utils.errors import UsageError

PROMPT_COLUMNS = ("prompt", "adv_prompt", "sensitive prompt", "caption", "text")
SEED_COLUMNS = ("evaluation_seed", "sd_seed", "seed")
HUB_SETS = {
    "i2p": ("AIML-TUDA/i2p", "train"),
    "mma": ("YijunYang280/MMA-Diffusion-NSFW-adv-prompts-benchmark", "train"),
}
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 10_000_000  # images one benchmark run may ask for (a guard against a mistyped --num_seeds)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
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


def _seed(value: Any, default: int, where: str) -> int:
    """The seed of a cell: ``default`` when empty, else a whole number in [0, MAX_SEED]; UsageError otherwise.

    ``where`` names the row in the message (e.g. ``set.csv row 3``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, float) and math.isnan(value):  # a missing cell of a hub table
        return default
    advice = f"fix the file's seed column (a whole number from 0 to {MAX_SEED})"
    try:
        number = float(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise UsageError(f"{where}: seed {value!r} is not an integer; {advice}") from None
    if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
        raise UsageError(f"{where}: seed {value!r} is not an integer; {advice}")
    if not 0 <= number <= MAX_SEED:
        raise UsageError(f"{where}: seed {value!r} is out of range; {advice}")
    return int(number)


def check_case_name(case: str, where: str) -> str:
    """``case`` when it is a safe file name (see the module docstring); UsageError naming ``where`` otherwise."""
    if SAFE_NAME.fullmatch(case) and not case.endswith("."):
        return case
    shown = case if len(case) <= 60 else case[:57] + "..."
    raise UsageError(
        f"{where} has case_number {shown!r}, which cannot be an image file name; use 1-100 letters, digits, "
        "'.', '_' or '-' starting with a letter or digit (no '/', '..' or spaces)"
    )


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
        check_case_name(case, f"{where} row {i + 1}")
        if case.lower() in seen:
            raise UsageError(f"{where} repeats case_number {case} (row {i + 1}); case numbers must be unique, ignoring case")
        seen.add(case.lower())
        seed = _seed(row.get(seed_col), default_seed, f"{where} row {i + 1}") if seed_col else default_seed
        extra = {k: v for k, v in row.items() if k not in (prompt_col, seed_col, case_col) and k is not None}
        samples.append(Sample(i, case, case, str(prompt).strip(), seed, extra))
    return samples


def _read_text(path: Path) -> str:
    """The text of ``path`` as UTF-8 without a leading byte-order mark; UsageError for other bytes or a read error."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {err.start} cannot be decoded); save it as UTF-8 and pass it again") from None
    except OSError as err:
        raise UsageError(f"could not read {path} ({err.strerror or err}); check the file") from None


def read_prompt_file(path: str | Path, default_seed: int) -> list[Sample]:
    """Samples of a CSV (header with a prompt column) or a text file (one prompt a line), read as UTF-8."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UsageError(f"prompt file {path} {what}; pass an existing CSV or text file")
    text = _read_text(path)
    if "\0" in text:
        raise UsageError(f"{path} holds NUL bytes, so it is not a text file; pass a CSV or a text file of prompts")
    if path.suffix.lower() == ".csv":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = list(reader)
            columns = reader.fieldnames or []
        except csv.Error as err:
            raise UsageError(f"{path} is not a readable CSV ({err}); fix the file") from None
        if any(None in row for row in rows):
            raise UsageError(f"{path} has a row with more fields than its header ({', '.join(columns)}); fix the file")
        return rows_to_samples(rows, default_seed, str(path))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
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


def expand_seeds(samples: list[Sample], seeds: Sequence[int], limit: int | None = None) -> list[Sample]:
    """Each sample once per seed, keyed ``<case>_s<seed>``, indexed in (prompt, seed) order; the first ``limit`` only.

    Raises UsageError when a seed lies outside [0, MAX_SEED] (e.g. --seed near the top plus --num_seeds)
    or when, without a limit, more than MAX_SAMPLES images would be asked for.
    """
    low, high = (seeds[0], seeds[-1]) if isinstance(seeds, range) and seeds.step > 0 else (min(seeds, default=0), max(seeds, default=0))
    if not (0 <= low and high <= MAX_SEED):
        bad = low if low < 0 else high
        raise UsageError(f"seed {bad} is outside [0, {MAX_SEED}]; pass a smaller --seed or --num_seeds")
    total = len(samples) * len(seeds) if limit is None else min(int(limit), len(samples) * len(seeds))
    if total > MAX_SAMPLES:
        raise UsageError(f"{len(samples)} prompts x {len(seeds)} seeds is {total:,} images, more than {MAX_SAMPLES:,}; pass a smaller --num_seeds or a --limit")
    out = []
    for sample in samples:
        for seed in seeds:
            if len(out) == total:
                return out
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
