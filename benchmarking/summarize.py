"""Summarize benchmark runs: read metrics.json files and print the paper-style comparison tables.

Give files or folders (searched recursively for metrics.json). For each benchmark and metric, one
table: a row per method (the unedited model first, as "original"), a column per concept or prompt
set, each cell the metric of that method's images. --out PREFIX also writes PREFIX.md (the tables)
and PREFIX.csv (one row per run: benchmark, subject, method, metric, original, edited, change, ...).
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

CSV_COLUMNS = ("benchmark", "subject", "target", "method", "metric", "original", "edited", "change", "num_prompts", "model", "path")


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


def _check_row(row: dict) -> dict:
    """``row`` when its fields have the types the tables need (text names, numbers or None for the values, a whole
    number of prompts); else TypeError naming the field."""
    for key in TEXT_FIELDS + ("method",):
        if not isinstance(row[key], str):
            raise TypeError(f"{key} is {row[key]!r}, not text")
    for key in ("original", "edited"):
        if row[key] is not None and (isinstance(row[key], bool) or not isinstance(row[key], (int, float))):
            raise TypeError(f"{key} {row['metric']} is {row[key]!r}, not a number")
    if isinstance(row["num_prompts"], bool) or not isinstance(row["num_prompts"], int):
        raise TypeError(f"num_prompts is {row['num_prompts']!r}, not a whole number")
    return row


def read_run(path: Path) -> dict:
    """One row of the long table from a metrics.json file (UsageError when it is not one: unreadable, not UTF-8,
    not JSON, or missing a field or holding one of the wrong type)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        metric = report["metric"]
        original, edited = report["summary"]["original"].get(metric), report["summary"]["edited"].get(metric)
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
            "model": report["models"]["original"],
            "path": str(path),
        }
        _check_row(row)
        row["change"] = None if original is None or edited is None else edited - original
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} cannot be read as text ({type(err).__name__}); pass metrics.json files written by benchmarking/*.py") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"{path} is not a benchmark metrics.json ({type(err).__name__}: {err}); pass files written by benchmarking/*.py") from None
    return row


def _cell(value) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def comparison_tables(rows: list[dict]) -> str:
    """Markdown: per (benchmark, metric), methods as rows (original first) and subjects as columns."""
    out = []
    for benchmark, metric in sorted({(r["benchmark"], r["metric"]) for r in rows}):
        group = [r for r in rows if r["benchmark"] == benchmark and r["metric"] == metric]
        subjects = sorted({r["subject"] for r in group})
        methods = sorted({r["method"] for r in group})
        table = {("original", r["subject"]): r["original"] for r in group}
        table.update({(r["method"], r["subject"]): r["edited"] for r in group})
        out.append(f"### {benchmark}: {metric}\n")
        out.append("| method | " + " | ".join(subjects) + " |")
        out.append("|---" * (len(subjects) + 1) + "|")
        for method in ["original", *methods]:
            out.append(f"| {method} | " + " | ".join(_cell(table.get((method, s))) for s in subjects) + " |")
        out.append("")
    return "\n".join(out)


def long_csv(rows: list[dict]) -> str:
    """CSV text with one row per run (columns CSV_COLUMNS)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _written_here(path: Path, start: str) -> bool:
    """Whether an existing ``path`` looks like this script's output: its text starts with ``start`` (or is empty)."""
    try:
        with path.open(encoding="utf-8") as handle:
            head = handle.read(len(start))
    except (OSError, UnicodeDecodeError):
        return False
    return head in ("", start)


def output_paths(prefix: str) -> tuple[Path, Path]:
    """(PREFIX.md, PREFIX.csv) when both can be written without replacing anything of the user's: a prefix that
    names a file (not a folder), and existing files that this script wrote; else UsageError, before any reading."""
    from demo.checks import output_file

    if prefix.endswith(("/", "\\")) or Path(prefix).is_dir():
        raise UsageError(f"--out {prefix} is a folder; give a file prefix such as {prefix.rstrip('/')}/tables (writes tables.md and tables.csv)")
    paths = (Path(f"{prefix}.md"), Path(f"{prefix}.csv"))
    starts = ("### ", ",".join(CSV_COLUMNS))
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
