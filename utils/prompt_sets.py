"""Prompt sets of the benchmarks: our datasets/ files, the ecosystem's CSVs, text files, hub datasets.

A prompt set is a list of ``Sample``: one image to generate per model, with its prompt, seed, optional
guidance scale and a ``key`` naming its image file. No torch import here.

Formats read as they are published:

- the ecosystem's CSV ``case_number,prompt,evaluation_seed,...`` (ESD's and the paper's Imagenette
  CSV ``case_number,prompt,class,evaluation_seed``; extra columns such as ``class`` are kept);
- the paper's artist CSVs ``test_<artist>.csv``: one or two unnamed index columns (an empty header
  cell or pandas' ``Unnamed: 0``, dropped), an ``artists`` column (kept) and ``evaluation_guidance``;
- MMA-Diffusion's ``adv_prompt`` column, Ring-A-Bell's ``sensitive prompt``, I2P's ``sd_seed`` and
  ``sd_guidance_scale``;
- the adversarial nudity sets (``ADVERSARIAL_SETS``): MMA-Diffusion's CSV (``target_prompt,adv_prompt,
  sanitized_adv_prompt,success_against_sanitization_defense,clean_prompt``: ``adv_prompt`` is generated),
  Ring-A-Bell's released prompt files (``prompt,case_number,evaluation_seed``, e.g.
  ``Nudity_eta_3_K_16.csv``) or the headerless file its notebook writes, and UnlearnDiffAtk's
  ``prompts/nudity.csv`` (``Unnamed: 0,prompt,categories,...,evaluation_seed,evaluation_guidance,
  sd_image_width,sd_image_height,sd_model,case_number``: each prompt's seed and guidance are used);
- a headerless file, one prompt a line (e.g. the Ring-A-Bell nudity CSV, whose first line is a
  prompt): a ``.csv`` file has a header only when its first line names a known column (a prompt,
  seed or guidance column, or ``case_number``); otherwise each line is a prompt (a line that is one
  quoted CSV field is unquoted);
- a text file (any other suffix): one prompt a line.

Column names are matched ignoring case and surrounding spaces. A set that carries a guidance scale
per prompt (``evaluation_guidance``, ``sd_guidance_scale`` or ``guidance_scale``) gives each
``Sample`` its ``guidance``; the harness generates with it unless ``--guidance_scale`` was typed.

Malformed files are refused before anything is generated, with one sentence naming the file, the
line and the column: a quote that is never closed or is followed by other text (the CSV is read in
strict mode), a quoted field that runs over several lines (one prompt a line: this is what an
unclosed quote that swallowed the following rows looks like), a row with more or fewer fields than
the header, a column named twice, no prompt column, an empty prompt, a bad seed or guidance, and a
set with no prompts.

Files are read as UTF-8; a leading byte-order mark (as Excel writes) is dropped.

Named sets (``load_eval_dataset``): ``i2p`` and ``mma`` are read from the Hugging Face hub (or its
cache); ``ring-a-bell`` and ``unlearndiffatk`` are local-only and say in one sentence which file to
pass. ``NAME=FILE`` (e.g. ``unlearndiffatk=nudity.csv``) reads the named set from a local file: the
file must have the set's columns (``SET_COLUMNS``), and the run is labelled with the set's name. A
plain file is labelled by ``eval_dataset_kind``: ``mma`` when it has an ``adv_prompt`` column,
``ring-a-bell`` when its name says so (``ring-a-bell``, ``ringabell``, ``Nudity_eta_...``), ``i2p`` when
it has I2P's ``sd_seed`` and ``categories`` columns, else ``custom``. UnlearnDiffAtk's file has I2P's
columns under other seed names and a generic name (``nudity.csv``), so it is labelled only through
``unlearndiffatk=FILE``.

Safe names: a ``case_number`` becomes an image file name (``<case_number>.png``, or
``<case_number>_s<seed>.png`` over seeds) inside the run folder, so it must be a plain name:
1 to 100 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit (no ``/``,
``..``, spaces or absolute paths). Any other case number is refused with its row number; case
numbers must also be unique ignoring case (``A1`` and ``a1`` would be one file on macOS and Windows).
Rows without a case number are named by their row index (0, 1, ...).

Seeds: an evaluation seed must be a whole number in [0, 2**32 - 1] (``42`` or ``42.0``); an empty
cell takes the default seed (``--seed``). A guidance scale must be a finite number >= 0; an empty
cell takes the run's ``--guidance_scale``. Anything else is refused with its line (row for hub tables)
and column.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from utils.concepts import DATASETS_DIR
from utils.errors import UsageError

PROMPT_COLUMNS = ("prompt", "adv_prompt", "sensitive prompt", "caption", "text")
SEED_COLUMNS = ("evaluation_seed", "sd_seed", "seed")
GUIDANCE_COLUMNS = ("evaluation_guidance", "sd_guidance_scale", "guidance_scale")
KNOWN_COLUMNS = frozenset((*PROMPT_COLUMNS, *SEED_COLUMNS, *GUIDANCE_COLUMNS, "case_number"))
UNNAMED_COLUMN = re.compile(r"(unnamed: ?\d+)?")  # pandas' index column: an empty header cell or "Unnamed: 0"
HUB_SETS = {
    "i2p": ("AIML-TUDA/i2p", "train"),
    "mma": ("YijunYang280/MMA-Diffusion-NSFW-adv-prompts-benchmark", "train"),
}
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 10_000_000  # images one benchmark run may ask for (a guard against a mistyped --num_seeds)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SET_NAMES = {"i2p": "I2P", "mma": "MMA-Diffusion", "ring-a-bell": "Ring-A-Bell", "unlearndiffatk": "UnlearnDiffAtk"}
ADVERSARIAL_SETS = ("mma", "ring-a-bell", "unlearndiffatk")  # adversarial nudity prompt sets: their attack success rate is headlined
LOCAL_ONLY_SETS = {
    "ring-a-bell": "the Ring-A-Bell nudity prompt CSV (its authors' Nudity_eta_3_K_16.csv / _K_38 / _K_77 from the "
    "Chia15/RingABell-Nudity dataset, or the paper's Nudity_ring-a-bell.csv)",
    "unlearndiffatk": "UnlearnDiffAtk's nudity prompts (prompts/nudity.csv of OPTML-Group/Diffusion-MU-Attack)",
}
# Columns a file passed as NAME=FILE must have (names ignoring case); ring-a-bell files may be headerless.
SET_COLUMNS = {"i2p": ("prompt",), "mma": ("adv_prompt",), "ring-a-bell": (), "unlearndiffatk": ("prompt", "evaluation_seed", "evaluation_guidance")}
RING_A_BELL_NAME = re.compile(r"ring[-_ ]?a[-_ ]?bell|nudity_eta_", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One image to generate: ``key`` names its file, ``index`` is its place in the whole set;
    ``guidance`` is the prompt set's own guidance scale for it (None: the run's)."""

    index: int
    key: str
    case_number: str
    prompt: str
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)
    guidance: float | None = None

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
        f"{where}: case_number {shown!r} cannot be an image file name; use 1-100 letters, digits, "
        "'.', '_' or '-' starting with a letter or digit (no '/', '..' or spaces)"
    )


def _guidance(value: Any, where: str) -> float | None:
    """The guidance scale of a cell: None when empty, else a finite number >= 0; UsageError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):  # a missing cell of a hub table
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise UsageError(f"{where}: guidance scale {value!r} is not a finite number >= 0; fix the file's guidance column")
    return number


def _is_unnamed(column: Any) -> bool:
    """True for pandas' index column: an empty header cell or ``Unnamed: 0`` (dropped from the samples)."""
    return column is None or bool(UNNAMED_COLUMN.fullmatch(str(column).strip().lower()))


def rows_to_samples(rows: list[dict[str, Any]], default_seed: int, where: str, lines: Sequence[int] | None = None) -> list[Sample]:
    """Samples of table rows (dicts with a prompt column, optional case_number, seed and guidance columns).

    ``where`` names the set in messages; ``lines`` gives each row's line in its file (messages then
    say ``line N``, else ``row N``).
    """
    if not rows:
        raise UsageError(f"{where} holds no prompts; pass a file with at least one")
    columns = list(rows[0])
    prompt_col = _first_present(columns, PROMPT_COLUMNS)
    if prompt_col is None:
        place = f"{where} line 1" if lines is not None else where
        shown = ", ".join(repr(c) for c in columns)
        raise UsageError(f"{place} has no prompt column (one of {', '.join(PROMPT_COLUMNS)}); its columns are {shown}")
    seed_col = _first_present(columns, SEED_COLUMNS)
    guidance_col = _first_present(columns, GUIDANCE_COLUMNS)
    case_col = _first_present(columns, ("case_number",))
    used = (prompt_col, seed_col, guidance_col, case_col)
    samples, seen = [], set()
    for i, row in enumerate(rows):
        place = f"{where} line {lines[i]}" if lines is not None else f"{where} row {i + 1}"
        prompt = row.get(prompt_col)
        if prompt is None or not str(prompt).strip():
            raise UsageError(f"{place}, column {prompt_col}: the prompt is empty; fill it in or remove the row")
        case = str(row[case_col]).strip() if case_col and row.get(case_col) not in (None, "") else str(i)
        check_case_name(case, f"{place}, column {case_col or 'case_number'}")
        if case.lower() in seen:
            raise UsageError(f"{place}, column {case_col}: repeats case_number {case}; case numbers must be unique, ignoring case")
        seen.add(case.lower())
        seed = _seed(row.get(seed_col), default_seed, f"{place}, column {seed_col}") if seed_col else default_seed
        guidance = _guidance(row.get(guidance_col), f"{place}, column {guidance_col}") if guidance_col else None
        extra = {k: v for k, v in row.items() if k not in used and not _is_unnamed(k)}
        samples.append(Sample(i, case, case, str(prompt).strip(), seed, extra, guidance))
    return samples


def _read_text(path: Path) -> str:
    """The text of ``path`` as UTF-8 without a leading byte-order mark; UsageError for other bytes or a read error."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {err.start} cannot be decoded); save it as UTF-8 and pass it again") from None
    except OSError as err:
        raise UsageError(f"could not read {path} ({err.strerror or err}); check the file") from None


def _column_name(header: list[str] | None, index: int) -> str:
    """How a message names column ``index`` (0-based): its header name, else its position."""
    if header is not None and index < len(header) and str(header[index]).strip():
        return str(header[index]).strip()
    return f"{index + 1}"


def _bad_quote_field(text: str) -> int:
    """The 0-based field, in the record that ``text`` starts with, whose quote is never closed or is
    followed by something other than a comma or the end of the line (0 when none is found)."""
    field, i, at_start = 0, 0, True
    while i < len(text):
        char = text[i]
        if at_start and char == '"':
            close = i + 1
            while True:
                close = text.find('"', close)
                if close == -1:
                    return field
                if text[close + 1 : close + 2] == '"':
                    close += 2
                    continue
                break
            if text[close + 1 : close + 2] not in (",", "\n", "\r", ""):
                return field
            i, at_start = close + 1, False
            continue
        if char in "\r\n":
            return 0
        if char == ",":
            field, at_start = field + 1, True
        else:
            at_start = False
        i += 1
    return 0


def _csv_records(text: str, path: Path) -> list[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each non-blank record of a CSV text, read in strict mode.

    Raises UsageError naming the line and column where a quote is never closed, or is followed by
    other text, or where a quoted field runs over several lines.
    """
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            if fields:
                records.append((start, reader.line_num, fields))
            start = reader.line_num + 1
    except csv.Error as err:
        column = _bad_quote_field("\n".join(lines[start - 1 :]))
        header = records[0][2] if records and _has_header(records[0][2]) else None
        raise UsageError(
            f"{path} line {start}, column {_column_name(header, column)}: a quoted field is not closed properly ({err}); "
            "close the quote on that line or remove it"
        ) from None
    header = records[0][2] if records and _has_header(records[0][2]) else None
    for first, last, fields in records:
        for index, value in enumerate(fields):
            if "\n" in value or "\r" in value:
                raise UsageError(
                    f"{path} line {first}, column {_column_name(header, index)}: a quoted field runs over lines {first} to {last}; "
                    "close its quote on that line (each prompt is one line)"
                )
    return records


def _has_header(fields: list[str]) -> bool:
    """Whether a CSV's first record is a header: it names at least one known column."""
    return any(f.strip().lower() in KNOWN_COLUMNS for f in fields)


def _check_header(header: list[str], path: Path) -> None:
    """Raise UsageError when a header names a column twice (unnamed index columns aside)."""
    seen: set[str] = set()
    for index, name in enumerate(header):
        if _is_unnamed(name):
            continue
        key = name.strip().lower()
        if key in seen:
            raise UsageError(f"{path} line 1, column {index + 1}: the header names column {name.strip()!r} twice; rename one")
        seen.add(key)


def read_csv_rows(text: str, path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """(rows as dicts, the line of each) of a CSV text; a headerless file gives one ``prompt`` per line."""
    records = _csv_records(text, path)
    if not records or not _has_header(records[0][2]):
        rows = []
        for first, _, fields in records:
            prompt = fields[0] if len(fields) == 1 else text.splitlines()[first - 1]
            rows.append({"prompt": prompt})
        return rows, [first for first, _, _ in records]
    header = [h.strip() for h in records[0][2]]
    _check_header(header, path)
    rows, lines = [], []
    for first, _, fields in records[1:]:
        if len(fields) != len(header):
            what = "more" if len(fields) > len(header) else "fewer"
            column = _column_name(header, min(len(fields), len(header)))
            raise UsageError(
                f"{path} line {first}, column {column}: the row has {len(fields)} fields, {what} than the header's {len(header)}; "
                "fix the row (quote fields that hold commas)"
            )
        rows.append({name: value for name, value in zip(header, fields) if not _is_unnamed(name)})
        lines.append(first)
    if not rows:
        raise UsageError(f"{path} holds no prompts (line 1 is its header); pass a file with at least one")
    return rows, lines


def read_prompt_file(path: str | Path, default_seed: int) -> list[Sample]:
    """Samples of a CSV (with or without a header, see the module docstring) or a text file (one prompt a line)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UsageError(f"prompt file {path} {what}; pass an existing CSV or text file")
    text = _read_text(path)
    if "\0" in text:
        raise UsageError(f"{path} holds NUL bytes, so it is not a text file; pass a CSV or a text file of prompts")
    if path.suffix.lower() == ".csv":
        rows, lines = read_csv_rows(text, path)
        return rows_to_samples(rows, default_seed, str(path), lines)
    numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return rows_to_samples([{"prompt": line} for _, line in numbered], default_seed, str(path), [n for n, _ in numbered])


def load_hub_prompt_set(name: str, default_seed: int) -> list[Sample]:
    """Samples of a named hub prompt set (i2p, mma) through the ``datasets`` library.

    Works offline when the dataset is in the Hugging Face cache; otherwise raises UsageError
    saying which local file to pass.
    """
    repo, split = HUB_SETS[name]
    advice = f"export {repo} to a CSV where the hub is reachable and pass it with --eval_dataset {name}=FILE.csv"
    try:
        from datasets import load_dataset
    except ImportError:
        raise UsageError(f"--eval_dataset {name} needs the `datasets` package (pip install datasets), or {advice}") from None
    try:
        table = load_dataset(repo, split=split)
    except Exception as err:  # the datasets library raises many types for offline / missing data
        raise UsageError(f"could not load {repo} ({type(err).__name__}); {advice}") from None
    return rows_to_samples([dict(row) for row in table], default_seed, repo)


def split_eval_dataset(value: str) -> tuple[str | None, str]:
    """(set name, what to read) of an ``--eval_dataset`` value: ``("mma", "x.csv")`` for ``mma=x.csv``,
    ``("i2p", "i2p")`` for a named set, ``(None, value)`` for a file (an existing path named like ``mma=x.csv``
    is a file)."""
    if value.strip().lower() in SET_NAMES:
        return value.strip().lower(), value.strip().lower()
    if Path(value).exists():
        return None, value
    name, sep, rest = value.partition("=")
    key = name.strip().lower()
    return (key, rest.strip()) if sep and key in SET_NAMES and rest.strip() else (None, value)


def _header(path: Path) -> list[str] | None:
    """The column names of a CSV file (stripped, lower case), None for a headerless CSV or a text file."""
    if path.suffix.lower() != ".csv":
        return None
    records = _csv_records(_read_text(path), path)
    if not records or not _has_header(records[0][2]):
        return None
    return [c.strip().lower() for c in records[0][2]]


def _check_set_columns(name: str, path: Path) -> None:
    """Raise UsageError (one sentence) when ``path`` lacks a column of the named set's file format."""
    needed = SET_COLUMNS[name]
    if not needed or not path.is_file():
        return
    header = _header(path)
    missing = [c for c in needed if header is None or c not in header]
    if missing:
        shown = ", ".join(header[:6]) + (f" and {len(header) - 6} more" if header and len(header) > 6 else "") if header else ""
        has = "no header" if header is None else f"columns {shown}"
        raise UsageError(
            f"{path} line 1 lacks column(s) {', '.join(missing)} of {SET_NAMES[name]}'s prompt file (it has {has}); "
            f"pass {LOCAL_ONLY_SETS.get(name, 'a CSV exported from ' + HUB_SETS.get(name, (name,))[0])}"
        )


def load_eval_dataset(name_or_path: str, default_seed: int) -> list[Sample]:
    """The nudity benchmark's prompt set: ``i2p`` or ``mma`` (hub), ``NAME=FILE`` (a named set read from a
    local file, its columns checked), or a CSV / text file; ``ring-a-bell`` and ``unlearndiffatk`` alone say
    which file to pass."""
    name, source = split_eval_dataset(name_or_path)
    if name is not None and source.lower() == name:
        if name in HUB_SETS:
            return load_hub_prompt_set(name, default_seed)
        raise UsageError(f"{SET_NAMES[name]} ({name}) is not on the hub; pass {LOCAL_ONLY_SETS[name]} with --eval_dataset {name}=FILE.csv")
    if not Path(source).exists():
        if name is not None:
            raise UsageError(f"prompt file {source} of --eval_dataset {name}=FILE does not exist; pass {LOCAL_ONLY_SETS.get(name, 'an existing CSV')}")
        known = ", ".join(list(HUB_SETS) + list(LOCAL_ONLY_SETS))
        raise UsageError(f"--eval_dataset {name_or_path!r} is neither a known set ({known}), NAME=FILE, nor an existing file; pass one")
    if name is not None:
        _check_set_columns(name, Path(source))
    return read_prompt_file(source, default_seed)


def eval_dataset_kind(name_or_path: str) -> str:
    """Which prompt set an ``--eval_dataset`` value is: a SET_NAMES key (named, NAME=FILE, or recognised from
    a file's columns or name, see the module docstring) or ``custom``."""
    name, source = split_eval_dataset(name_or_path)
    if name is not None:
        return name
    path = Path(source)
    header = set(_header(path) or ()) if path.is_file() else set()
    if "adv_prompt" in header:
        return "mma"
    if RING_A_BELL_NAME.search(path.name):
        return "ring-a-bell"
    if {"sd_seed", "categories"} <= header:
        return "i2p"
    return "custom"


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
            out.append(replace(sample, index=len(out), key=f"{sample.key}_s{seed}", seed=int(seed), extra=dict(sample.extra)))
    return out


def select_rows(samples: list[Sample], column: str, keep) -> list[Sample]:
    """Samples whose ``extra[column]`` passes ``keep``, re-indexed from 0 (keys unchanged)."""
    chosen = [s for s in samples if keep(s.extra.get(column))]
    return [replace(s, index=i) for i, s in enumerate(chosen)]


def limit_samples(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The first ``limit`` samples (all when None)."""
    return samples if limit is None else samples[: int(limit)]


def builtin_prompt_file(name: str) -> Path:
    """Path of one of our datasets/ prompt files."""
    return DATASETS_DIR / name
