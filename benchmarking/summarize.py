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
            found += sorted(path.rglob("metrics.json"))
        else:
            raise UsageError(f"{name} does not exist; pass metrics.json files or folders holding them")
    if not found:
        raise UsageError(f"no metrics.json under {', '.join(paths)}; run a benchmarking script first")
    return found


def read_run(path: Path) -> dict:
    """One row of the long table from a metrics.json file (UsageError when it is not one)."""
    try:
        report = json.loads(path.read_text())
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
            "change": None if original is None or edited is None else edited - original,
            "num_prompts": report["num_prompts"],
            "model": report["models"]["original"],
            "path": str(path),
        }
    except (json.JSONDecodeError, KeyError, TypeError) as err:
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


def main(argv=None) -> None:
    """Parse ``argv``, read the runs, print the tables; write PREFIX.md / PREFIX.csv with --out."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["results/benchmarks"], help="metrics.json files or folders (default results/benchmarks)")
    parser.add_argument("--out", default=None, help="also write PREFIX.md and PREFIX.csv")
    args = parser.parse_args(argv)
    rows = [read_run(path) for path in find_metrics(args.paths)]
    markdown = comparison_tables(rows)
    print(markdown)
    if args.out:
        write_text(Path(f"{args.out}.md"), markdown)
        write_text(Path(f"{args.out}.csv"), long_csv(rows))
        print(f"wrote {args.out}.md and {args.out}.csv")


if __name__ == "__main__":
    run_cli(main)
