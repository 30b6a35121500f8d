"""Summarize benchmark runs: read metrics.json files and print the paper-style comparison tables.

Give files or folders (searched recursively for metrics.json). Every run is keyed by its base model,
benchmark, subject, method, prompt set and protocol. One table per benchmark, metric, protocol and
base model (runs of different protocols or base models never share a table, so never a column): a row
per method (the unedited model first, as "original"), a column per subject (and prompt set, when a
subject was run on several), each cell the metric of that method's images with its 95% bootstrap
interval when metrics.json has one (``<metric>_ci95: [low, high]``). Runs that share a key are all
shown in their cell, numbered, with their files listed under the table; none is dropped.
--out PREFIX also writes PREFIX.md (the tables) and PREFIX.csv (one row per run).
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.errors import UsageError, run_cli  # noqa: E402
from utils.paths import method_tag  # noqa: E402
from utils.storage import write_text  # noqa: E402

CSV_COLUMNS = (
    "benchmark", "subject", "target", "method", "metric", "original", "edited", "change", "num_prompts", "model", "path",
    "protocol", "prompt_set", "original_ci95_low", "original_ci95_high", "edited_ci95_low", "edited_ci95_high",
)
OLD_CSV_HEADER = "benchmark,subject,target,method,metric,original,edited,change,num_prompts,model,path"
UNRECORDED = "unrecorded"  # the protocol of a metrics.json written before runs recorded one
DEFAULT_PROMPT_SET = "default"  # the benchmark's own prompt set in datasets/
PROMPT_SOURCE_KEYS = ("prompts", "eval_dataset", "coco_captions", "dataset_path", "professions")
KEY_FIELDS = ("model", "benchmark", "subject", "method", "prompt_set", "protocol")


def find_metrics(paths: list[str]) -> list[Path]:
    """metrics.json files named by ``paths`` or found under the folders among them, sorted."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.rglob("metrics.json") if p.is_file())  # a folder may be named metrics.json too
        else:
            raise UsageError(f"{name} does not exist; pass metrics.json files or folders holding them")
    if not found:
        raise UsageError(f"no metrics.json under {', '.join(paths)}; run a benchmarking script first")
    return found


TEXT_FIELDS = ("benchmark", "subject", "metric")


def _number(value) -> bool:
    """Whether ``value`` is a real number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_row(row: dict) -> dict:
    """``row`` when its fields have the types the tables need (text names, numbers or None for the values, a whole
    number of prompts, intervals of two numbers); else TypeError naming the field."""
    for key in TEXT_FIELDS + ("method", "protocol", "prompt_set"):
        if not isinstance(row[key], str):
            raise TypeError(f"{key} is {row[key]!r}, not text")
    for key in ("original", "edited"):
        if row[key] is not None and not _number(row[key]):
            raise TypeError(f"{key} {row['metric']} is {row[key]!r}, not a number")
        interval = row[f"{key}_ci95"]
        if interval is not None and not (isinstance(interval, (list, tuple)) and len(interval) == 2 and all(_number(v) for v in interval)):
            raise TypeError(f"{key} {row['metric']}_ci95 is {interval!r}, not [low, high]")
    if isinstance(row["num_prompts"], bool) or not isinstance(row["num_prompts"], int):
        raise TypeError(f"num_prompts is {row['num_prompts']!r}, not a whole number")
    return row


def protocol_of(report: dict) -> str:
    """The run's protocol (``paper``, ``project``, ...): top level or ``settings``; UNRECORDED when neither has one."""
    settings = report.get("settings") or {}
    return report.get("protocol") or settings.get("protocol") or UNRECORDED


def _short_name(value) -> str:
    """A prompt source shown briefly: a path's file (or folder) name, anything else as text."""
    text = str(value)
    return Path(text).name or text if ("/" in text or "\\" in text) else text


def prompt_set_of(report: dict) -> str:
    """The run's prompt set: ``prompt_set`` (text, or a mapping with a name/path and a hash) at the top level or
    in ``settings``, else the prompt sources among the settings (``--prompts``, ``--eval_dataset``, ...), else
    DEFAULT_PROMPT_SET."""
    settings = report.get("settings") or {}
    given = report.get("prompt_set") or settings.get("prompt_set")
    if isinstance(given, dict):
        name = next((given[k] for k in ("name", "path", "source", "file") if given.get(k)), DEFAULT_PROMPT_SET)
        digest = next((str(given[k]) for k in ("sha256", "hash", "digest") if given.get(k)), "")
        return _short_name(name) + (f"@{digest[:8]}" if digest else "")
    if given:
        return _short_name(given)
    sources = [_short_name(settings[k]) for k in PROMPT_SOURCE_KEYS if settings.get(k)]
    return "+".join(sources) or DEFAULT_PROMPT_SET


def read_run(path: Path) -> dict:
    """One row of the long table from a metrics.json file (UsageError when it is not one: unreadable, not UTF-8,
    not JSON, or missing a field or holding one of the wrong type)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        metric = report["metric"]
        before, after = report["summary"]["original"], report["summary"]["edited"]
        original, edited = before.get(metric), after.get(metric)
        row = {
            "benchmark": report["benchmark"],
            "subject": report["subject"],
            "target": report.get("target"),
            "method": method_tag(report["method"], report.get("ckpt_name")),
            "metric": metric,
            "original": original,
            "edited": edited,
            "change": None,
            "num_prompts": report["num_prompts"],
            "model": str(report["models"]["original"]),
            "path": str(path),
            "protocol": protocol_of(report),
            "prompt_set": prompt_set_of(report),
            "original_ci95": before.get(f"{metric}_ci95"),
            "edited_ci95": after.get(f"{metric}_ci95"),
        }
        _check_row(row)
        row["change"] = None if original is None or edited is None else edited - original
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} cannot be read as text ({type(err).__name__}); pass metrics.json files written by benchmarking/*.py") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"{path} is not a benchmark metrics.json ({type(err).__name__}: {err}); pass files written by benchmarking/*.py") from None
    return row


def run_key(row: dict) -> tuple[str, ...]:
    """What identifies a run: base model, benchmark, subject, method, prompt set and protocol."""
    return tuple(row[field] for field in KEY_FIELDS)


def _cell(value) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_interval(value, interval) -> str:
    """A number and, when there is one, its 95% interval: ``20 [18.5, 21.2]``."""
    if value is None or interval is None:
        return _cell(value)
    return f"{_cell(value)} [{_cell(float(interval[0]))}, {_cell(float(interval[1]))}]"


def _column(row: dict, several_sets: bool) -> str:
    """A table column's title: the subject, with its prompt set when the subject was run on several."""
    return f"{row['subject']} ({row['prompt_set']})" if several_sets else row["subject"]


def _cell_text(entries: list[tuple[str, str]]) -> str:
    """A cell's text from its (value text, source label) entries: the value alone when there is one value,
    else every entry with its source (``0.2 (1); 0.25 (2)``), so that no run's value is hidden."""
    if not entries:
        return "–"
    if all(label == "" for _, label in entries):
        return "; ".join(dict.fromkeys(text for text, _ in entries))
    return "; ".join(f"{text} ({label})" for text, label in entries)


def group_table(rows: list[dict]) -> list[str]:
    """The Markdown lines of one table (rows of one benchmark, metric, protocol and base model).

    Runs sharing a key are numbered (1), (2), ... in their cell and listed with their files under the table.
    The original row shows one value per column, or each run's value with its method when they differ.
    """
    sets_per_subject: dict[str, set[str]] = {}
    for r in rows:
        sets_per_subject.setdefault(r["subject"], set()).add(r["prompt_set"])
    titles = {id(r): _column(r, len(sets_per_subject[r["subject"]]) > 1) for r in rows}
    columns = sorted(set(titles.values()))
    shared: dict[tuple[str, ...], list[dict]] = {}
    for r in rows:
        shared.setdefault(run_key(r), []).append(r)
    numbered = [r for group in shared.values() if len(group) > 1 for r in group]
    number = {id(r): str(i + 1) for i, r in enumerate(numbered)}
    cells: dict[tuple[str, str], list[tuple[str, str]]] = {}
    originals: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        column = titles[id(r)]
        cells.setdefault((r["method"], column), []).append((_with_interval(r["edited"], r["edited_ci95"]), number.get(id(r), "")))
        label = r["method"] + (f" {number[id(r)]}" if id(r) in number else "")
        originals.setdefault(column, []).append((_with_interval(r["original"], r["original_ci95"]), label))
    for column, entries in originals.items():
        distinct = len({text for text, _ in entries}) > 1
        cells[("original", column)] = entries if distinct else [(entries[0][0], "")]
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method in ["original", *sorted({r["method"] for r in rows})]:
        lines.append(f"| {method} | " + " | ".join(_cell_text(cells.get((method, c), [])) for c in columns) + " |")
    if numbered:
        lines.append("")
        lines += [f"({number[id(r)]}) {r['path']} ({r['num_prompts']} prompts)" for r in numbered]
    return lines


def comparison_tables(rows: list[dict]) -> str:
    """Markdown: one table per (benchmark, metric, protocol, base model); methods as rows (original first),
    subjects (with their prompt sets when a subject has several) as columns."""
    out = []
    groups = sorted({(r["benchmark"], r["metric"], r["protocol"], r["model"]) for r in rows})
    for benchmark, metric, protocol, model in groups:
        group = [r for r in rows if (r["benchmark"], r["metric"], r["protocol"], r["model"]) == (benchmark, metric, protocol, model)]
        out.append(f"### {benchmark}: {metric} (protocol {protocol}; base model {model})\n")
        single = {r["prompt_set"] for r in group}
        if len(single) == 1:
            out.append(f"Prompt set: {single.pop()}.\n")
        out += group_table(group)
        out.append("")
    return "\n".join(out)


def csv_row(row: dict) -> dict:
    """The CSV record of a run: its fields, its intervals split into low and high columns."""
    record = {key: row.get(key) for key in CSV_COLUMNS}
    for side in ("original", "edited"):
        interval = row.get(f"{side}_ci95") or (None, None)
        record[f"{side}_ci95_low"], record[f"{side}_ci95_high"] = interval
    return record


def long_csv(rows: list[dict]) -> str:
    """CSV text with one row per run (columns CSV_COLUMNS)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_row(r) for r in rows)
    return buffer.getvalue()


def _written_here(path: Path, starts: tuple[str, ...]) -> bool:
    """Whether an existing ``path`` looks like this script's output: its text starts with one of ``starts`` (or is empty)."""
    try:
        with path.open(encoding="utf-8") as handle:
            head = handle.read(max(len(s) for s in starts))
    except (OSError, UnicodeDecodeError):
        return False
    return head == "" or any(head.startswith(s) for s in starts)


def output_paths(prefix: str) -> tuple[Path, Path]:
    """(PREFIX.md, PREFIX.csv) when both can be written without replacing anything of the user's: a prefix that
    names a file (not a folder), and existing files that this script wrote; else UsageError, before any reading."""
    from demo.checks import output_file

    if prefix.endswith(("/", "\\")) or Path(prefix).is_dir():
        raise UsageError(f"--out {prefix} is a folder; give a file prefix such as {prefix.rstrip('/')}/tables (writes tables.md and tables.csv)")
    paths = (Path(f"{prefix}.md"), Path(f"{prefix}.csv"))
    starts = (("### ",), (",".join(CSV_COLUMNS), OLD_CSV_HEADER))
    for path, start in zip(paths, starts):
        output_file(str(path), "--out", ())
        if path.exists() and not _written_here(path, start):
            raise UsageError(f"{path} exists and was not written by summarize.py; pass another --out prefix (nothing of yours is replaced)")
    return paths


def main(argv=None) -> None:
    """Parse ``argv``, read the runs, print the tables; write PREFIX.md / PREFIX.csv with --out."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["results/benchmarks"], help="metrics.json files or folders (default results/benchmarks)")
    parser.add_argument("--out", default=None, help="also write PREFIX.md and PREFIX.csv")
    args = parser.parse_args(argv)
    outputs = output_paths(args.out) if args.out else ()
    rows = [read_run(path) for path in find_metrics(args.paths)]
    markdown = comparison_tables(rows)
    print(markdown)
    if outputs:
        write_text(outputs[0], markdown)
        write_text(outputs[1], long_csv(rows))
        print(f"wrote {outputs[0]} and {outputs[1]}")


if __name__ == "__main__":
    run_cli(main)
