"""The erasure table's reports: read, check, show as Markdown and merge the JSON that demo/erasure_table.py writes (no torch import).

A report: {"model", "settings", "generation_accuracy", "tables": {concept: rows}}; a row: skill_ratio, tau, (select_ratio),
pruned_fraction, detection, other_accuracy and other_accuracy_per_attribute (demo/erasure_measure.py writes them).
"""
from __future__ import annotations

import json
from pathlib import Path


def share(scores: dict, key: str, digits: int = 0) -> str:
    """``scores[key]`` as a percentage with ``digits`` decimals (``16%``), followed by its 95% bootstrap interval
    when ``scores`` holds one as ``<key>_ci95`` (``16% [8, 25]``). The demo tools' one way of showing a share."""
    interval = scores.get(f"{key}_ci95")
    text = f"{100 * scores[key]:.{digits}f}%"
    return text if not interval else f"{text} [{100 * interval[0]:.{digits}f}, {100 * interval[1]:.{digits}f}]"


def markdown(rows: list[dict], concept: str = "concept") -> str:
    """A concept's rows as a Markdown table: detection, then the other scenes' accuracy (mean and per attribute),
    the headline shares with their 95% intervals where the row holds them. A select_ratio column comes first when
    any row has a nonzero one; the rows without one (before, the ceiling) show "–"."""
    names = list(rows[0]["other_accuracy_per_attribute"])
    select = any(r.get("select_ratio") for r in rows)
    lines = [f"| {'select_ratio | ' if select else ''}skill_ratio | tau | pruned % of UNet | {concept} detected | other scenes: mean accuracy | "
             + " | ".join(names) + " |", "|---" * (5 + select + len(names)) + "|"]
    for r in rows:
        cells = [f"{r['select_ratio']:g}" if "select_ratio" in r else "–"] if select else []
        cells += [str(r["skill_ratio"] or "before"), str(r["tau"] or "–"), f"{100 * r['pruned_fraction']:.2f}", share(r, "detection"),
                 share(r, "other_accuracy")] + [f"{100 * r['other_accuracy_per_attribute'][n]:.0f}%" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_report(path: str | Path) -> dict:
    """Print a saved report's generation accuracy and its tables as Markdown; return the report."""
    report = read_report(path, ("model", "generation_accuracy", "tables"))
    print(f"{report['model']}: judge accuracy on its generations {report['generation_accuracy']}")
    for concept, rows in report["tables"].items():
        print(f"\n**{concept}**\n\n" + markdown(rows, concept))
    return report


# Settings that may differ between the reports that --merge joins: each report measured its own concepts.
MERGE_FREE_SETTINGS = ("concepts", "quality_prompts", "out", "device")


REPORT_KEYS = ("model", "settings", "generation_accuracy", "tables")


ROW_NUMBERS = ("pruned_fraction", "detection", "other_accuracy")


def read_report(path: str | Path, keys: tuple[str, ...] = REPORT_KEYS) -> dict:
    """A saved report (JSON with at least ``keys``, its tables rows as this script writes them); UsageError when it is
    missing, a folder, not UTF-8, not JSON, lacks one of them or holds a malformed table."""
    from demo.checks import read_json
    from utils.errors import UsageError

    if not Path(path).exists():
        raise UsageError(f"no report at {path}; give the JSON that an erasure_table.py run wrote")
    report = read_json(path, "the JSON that an erasure_table.py run wrote")
    if not isinstance(report, dict) or not set(keys) <= set(report):
        raise UsageError(f"{path} is not an erasure report (it needs {', '.join(keys)})")
    for key, kind in (("settings", dict), ("generation_accuracy", dict), ("tables", dict)):
        if key in keys and not isinstance(report[key], kind):
            raise UsageError(f"{path} is not an erasure report (its {key} is not a mapping)")
    for concept, rows in report.get("tables", {}).items():
        if not (isinstance(rows, list) and rows and all(_is_row(row) for row in rows)):
            raise UsageError(f"{path} is not an erasure report (the table of {concept} does not hold rows as erasure_table.py writes them)")
    return report


def _is_row(row) -> bool:
    """Whether ``row`` is a table row as concept_table writes it (numbers where markdown() formats numbers)."""
    def numeric(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return (isinstance(row, dict) and {"skill_ratio", "tau"} <= set(row) and all(numeric(row.get(k)) for k in ROW_NUMBERS)
            and isinstance(row.get("other_accuracy_per_attribute"), dict) and all(map(numeric, row["other_accuracy_per_attribute"].values()))
            and (numeric(row["select_ratio"]) if "select_ratio" in row else True))


def merge_reports(paths: list[str], out: str | Path) -> dict:
    """Join the reports of one model measured in separate runs (say one process per concept) into one report at ``out``.

    Tables keep the order of ``paths``; the generation accuracy (and its quality_prompts) is the first report's that
    measured one. Raises UsageError when the reports name different models, differ in a setting other than
    MERGE_FREE_SETTINGS, or both hold a table of the same concept. Returns the merged report (also written to ``out``,
    with its settings beside it as ``<out>.config.yaml``)."""
    from utils.config import dump_yaml
    from utils.errors import UsageError
    from utils.storage import write_text

    reports = [read_report(path) for path in paths]
    for report in reports:  # reports written before these settings existed: the plain union, the first judged scenes
        report["settings"].setdefault("select_ratios", [0.0])
        report["settings"].setdefault("eval_draw", 0)
    first = reports[0]
    merged = {"model": first["model"], "settings": dict(first["settings"]), "generation_accuracy": {}, "tables": {}}
    for path, report in zip(paths, reports):
        if report["model"] != first["model"]:
            raise UsageError(f"{path} measured {report['model']}, not {first['model']}; merge reports of one model only")
        differ = sorted(k for k in set(first["settings"]) | set(report["settings"])
                        if k not in MERGE_FREE_SETTINGS and first["settings"].get(k) != report["settings"].get(k))
        if differ:
            raise UsageError(f"{path} was measured with other settings ({', '.join(differ)}) than {paths[0]}; merge runs of one config only")
        for concept, rows in report["tables"].items():
            if concept in merged["tables"]:
                raise UsageError(f"{concept} has a table in two of the reports; give each concept once")
            merged["tables"][concept] = rows
        if report["generation_accuracy"] and not merged["generation_accuracy"]:
            merged["generation_accuracy"] = report["generation_accuracy"]
            merged["settings"]["quality_prompts"] = report["settings"].get("quality_prompts")
    if not merged["generation_accuracy"]:
        merged["settings"]["quality_prompts"] = 0
    merged["settings"]["concepts"] = list(merged["tables"])
    merged["settings"]["out"] = str(out)
    write_text(Path(out).with_suffix(".config.yaml"), dump_yaml(merged["settings"]))
    write_text(out, json.dumps(merged, indent=2) + "\n")
    return merged


def report_out(config: dict) -> Path:
    """Where the report goes: ``out``, else ``<model folder>-erasure.json`` beside the model."""
    model = Path(config["model_id"])
    return Path(config["out"] or model.parent / f"{model.name}-erasure.json")


def check_report_out(out: str | Path) -> Path:
    """``out`` as the report's path when writing there replaces nothing of the user's: a .json path that is no
    folder and either new or an earlier report, and whose ``.config.yaml`` beside it is no folder; else UsageError."""
    from demo.checks import output_file
    from utils.errors import UsageError

    path = output_file(str(out), "--out", (".json",))
    if path.exists():
        try:
            read_report(path, ("model", "tables"))
        except UsageError:
            raise UsageError(f"--out {out} exists and is not an erasure report; pass a new path (nothing of yours is replaced)") from None
    if path.with_suffix(".config.yaml").is_dir():
        raise UsageError(f"{path.with_suffix('.config.yaml')} is a folder, where the report's config goes; pass another --out")
    return path
