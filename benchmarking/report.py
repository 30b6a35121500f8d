"""One static HTML page (and a Markdown fallback) from a sweep's results tree.

Usage: python benchmarking/report.py RESULTS_DIR [--out report.html] [--markdown report.md]

RESULTS_DIR is a folder written by ``benchmarking/sweep.py``: ``sweep.json`` (format "concept-prune sweep
v1"), and per concept ``before/metrics.json`` (the unedited model) and ``<run>/metrics.json`` (one setting:
skill_ratio, timesteps, select_ratio; the pruned counts, the skilled fraction per step, the scores and
``grid.png``). A "benchmarks" sweep holds ``<run>/benchmarks/<benchmark>/metrics.json`` (the benchmarks'
own file, see utils/bench_harness.py) instead of the scores.

The page is one file that opens straight from disk: images and plots are inline base64 PNGs, the CSS is
inline, and there are no scripts, fonts or links to anything outside it. Per concept it shows the unedited
scores, the before/after grid of the headline setting (the lowest detection whose other-scene accuracy is
within 2 points of the unedited model's, else the lowest detection; the page says which rule picked it),
the table of every setting with 95% intervals ("23% [15, 31]"), and plots (matplotlib, Agg): detection
against skill_ratio per tau, detection against other-scene accuracy with the Pareto front, the pruned
fraction per layer and the skilled fraction per step of the headline setting. For "benchmarks" sweeps
run with ``--protocol paper`` the paper's published numbers (benchmarking/paper_numbers.yaml) stand
next to the measured ones. --markdown writes the same tables as Markdown.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.errors import UsageError, run_cli  # noqa: E402

SWEEP_FORMAT = "concept-prune sweep v1"
PAPER_NUMBERS = REPO / "benchmarking" / "paper_numbers.yaml"
PRESERVATION_TOLERANCE = 0.02  # "within 2 points" of the unedited model's other-scene accuracy
GRID_MAX_WIDTH = 1200  # px of an upscaled grid
GRID_SCALE = 3  # 32 px cells -> 96 px
NO_PUBLISHED = "no published numbers on record for this benchmark"
RUN_NAME = re.compile(r"^sr(?P<sr>[0-9.e-]+)_tau(?P<tau>[^_]+)_sel(?P<sel>[0-9.e-]+)$")
SETTING_KEYS = ("skill_ratio", "timesteps", "select_ratio")
SETTINGS_HEADER = ("skill_ratio", "tau", "select_ratio", "pruned %", "pruned weights", "detection", "other accuracy", "Pareto", "headline")


# ---------------------------------------------------------------- formatting

def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def pct_number(value: float, digits: int = 1) -> str:
    """``value`` (a fraction) in percent with up to ``digits`` decimals, trailing zeros dropped: 0.81 -> '81'."""
    text = f"{value * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_pct(entry) -> str:
    """A metric entry ``{"value", "ci95"}`` as '23% [15, 31]' (the interval when there is one); '–' when absent."""
    if not isinstance(entry, dict) or not _num(entry.get("value")):
        return "–"
    text = f"{pct_number(entry['value'])}%"
    ci = entry.get("ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) for c in ci):
        text += f" [{pct_number(ci[0])}, {pct_number(ci[1])}]"
    return text


def fmt_fraction(value) -> str:
    """A pruned fraction in percent with 2 decimals: 0.0168 -> '1.68%'."""
    return f"{pct_number(value, 2)}%" if _num(value) else "–"


def fmt_value(value, ci=None) -> str:
    """A benchmark metric (any scale) with 4 significant digits and its interval: '31.52 [30.9, 32.1]'."""
    if not _num(value):
        return "–"
    text = f"{value:.4g}"
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) for c in ci):
        text += f" [{ci[0]:.4g}, {ci[1]:.4g}]"
    return text


def fmt_count(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "–"


def fmt_setting_value(value) -> str:
    return "–" if value is None else (f"{value:g}" if _num(value) else str(value))


# ---------------------------------------------------------------- reading

def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} is not readable JSON ({err}); rerun the sweep that wrote it") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a JSON object; rerun the sweep that wrote it")
    return data


def _setting_from_name(name: str) -> dict | None:
    """The setting a run folder's name spells (sr0.4_tau10_sel0.7), or None."""
    match = RUN_NAME.match(name)
    if not match:
        return None
    tau = match["tau"]
    return {"skill_ratio": float(match["sr"]), "timesteps": int(tau) if tau.isdigit() else tau, "select_ratio": float(match["sel"])}


def _sort_key(run: dict):
    setting = run.get("setting") or {}
    return tuple((0, setting[k]) if _num(setting.get(k)) else (1, str(setting.get(k))) for k in SETTING_KEYS) + (run["name"],)


def load_sweep(results_dir: str) -> dict:
    """The sweep: ``sweep.json`` plus, per concept, ``before`` and the sorted ``runs`` (each with its folder)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UsageError(f"{results_dir} is not a folder; pass the folder benchmarking/sweep.py wrote (it holds sweep.json)")
    if not (root / "sweep.json").is_file():
        raise UsageError(f"{results_dir} holds no sweep.json; pass the folder benchmarking/sweep.py wrote")
    sweep = _read_json(root / "sweep.json")
    if sweep.get("format") != SWEEP_FORMAT:
        raise UsageError(f"{root / 'sweep.json'} is not a '{SWEEP_FORMAT}' file; pass the folder benchmarking/sweep.py wrote")
    evaluation = sweep.get("evaluation", "demo")
    if evaluation not in ("demo", "benchmarks"):
        raise UsageError(f"{root / 'sweep.json'} names the evaluation {evaluation!r}; this report reads 'demo' and 'benchmarks' sweeps")
    concepts = []
    for concept in sweep.get("concepts") or []:
        folder = root / str(concept)
        before_path = folder / "before" / "metrics.json"
        before = _read_json(before_path) if before_path.is_file() else None
        runs = []
        for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "before") if folder.is_dir() else []:
            data = _read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
            benchmarks = {}
            for bench_file in sorted((run_dir / "benchmarks").glob("*/metrics.json")):
                benchmarks[bench_file.parent.name] = {"data": _read_json(bench_file), "dir": bench_file.parent}
            if not data and not benchmarks:
                continue
            setting = data.get("setting") or _setting_from_name(run_dir.name)
            runs.append({"name": run_dir.name, "dir": run_dir, "data": data, "setting": setting, "benchmarks": benchmarks})
        runs.sort(key=_sort_key)
        concepts.append({"name": str(concept), "dir": folder, "before": before, "runs": runs})
    if not concepts:
        raise UsageError(f"{root / 'sweep.json'} lists no concepts; rerun benchmarking/sweep.py")
    return {"root": root, "sweep": sweep, "evaluation": evaluation, "concepts": concepts}


def _metric(run_data: dict, key: str) -> float | None:
    entry = (run_data.get("metrics") or {}).get(key)
    return entry["value"] if isinstance(entry, dict) and _num(entry.get("value")) else None


# ---------------------------------------------------------------- analysis

def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (detection, other accuracy) no other point beats: lower detection, higher accuracy."""
    front = []
    for i, (d, a) in enumerate(points):
        dominated = any(d2 <= d and a2 >= a and (d2 < d or a2 > a) for j, (d2, a2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def headline(concept: dict) -> tuple[dict | None, str]:
    """The headline run of a demo concept and the sentence saying which rule picked it."""
    scored = [r for r in concept["runs"] if _metric(r["data"], "detection") is not None]
    if not scored:
        return None, "no setting has a detection score"
    def key(run):
        oa = _metric(run["data"], "other_accuracy")
        return (_metric(run["data"], "detection"), -(oa if oa is not None else -1), run["data"].get("pruned_fraction") or 0)
    base_oa = _metric(concept["before"] or {}, "other_accuracy")
    if base_oa is not None:
        kept = [r for r in scored if (_metric(r["data"], "other_accuracy") or -1) >= base_oa - PRESERVATION_TOLERANCE - 1e-12]
        if kept:
            return min(kept, key=key), (
                f"the lowest detection among the settings whose other-scene accuracy is within 2 points of the unedited "
                f"model's ({pct_number(base_oa)}%)")
        return min(scored, key=key), (
            f"the lowest detection: no setting kept the other-scene accuracy within 2 points of the unedited model's "
            f"({pct_number(base_oa)}%)")
    return min(scored, key=key), "the lowest detection (the unedited model has no other-scene accuracy to compare with)"


def settings_rows(concept: dict, chosen: dict | None) -> list[list[str]]:
    """The settings table of a demo concept, one row of formatted cells per run (see SETTINGS_HEADER)."""
    runs = concept["runs"]
    points = [(_metric(r["data"], "detection"), _metric(r["data"], "other_accuracy")) for r in runs]
    valid = [i for i, p in enumerate(points) if None not in p]
    front = {valid[k] for k in pareto_front([points[i] for i in valid])}
    rows = []
    for i, run in enumerate(runs):
        setting, metrics = run["setting"] or {}, run["data"].get("metrics") or {}
        rows.append([
            fmt_setting_value(setting.get("skill_ratio")), fmt_setting_value(setting.get("timesteps")),
            fmt_setting_value(setting.get("select_ratio")), fmt_fraction(run["data"].get("pruned_fraction")),
            fmt_count(run["data"].get("pruned_weights")), fmt_pct(metrics.get("detection")), fmt_pct(metrics.get("other_accuracy")),
            "yes" if i in front else "", "yes" if run is chosen else "",
        ])
    return rows


def before_rows(before: dict | None) -> list[list[str]]:
    """The unedited scores as rows (metric, value with interval, n)."""
    rows = []
    for key, entry in ((before or {}).get("metrics") or {}).items():
        n = entry.get("n") if isinstance(entry, dict) else None
        rows.append([key, fmt_pct(entry), str(n) if n is not None else "–"])
    return rows


def load_paper_numbers() -> dict:
    """The published numbers of benchmarking/paper_numbers.yaml: {benchmark: [entries]} (empty when none are on record)."""
    if not PAPER_NUMBERS.is_file():
        return {}
    import yaml

    data = yaml.safe_load(PAPER_NUMBERS.read_text(encoding="utf-8")) or {}
    benchmarks = data.get("benchmarks") or {}
    return {str(k): v for k, v in benchmarks.items() if v}


def _protocol(bench: dict) -> str | None:
    protocol = (bench["data"].get("settings") or {}).get("protocol")
    if protocol is None and (bench["dir"] / "config.yaml").is_file():
        import yaml

        try:
            protocol = (yaml.safe_load((bench["dir"] / "config.yaml").read_text(encoding="utf-8")) or {}).get("protocol")
        except (OSError, yaml.YAMLError):
            protocol = None
    return protocol


def published(paper: dict, benchmark: str, data: dict) -> str:
    """The paper's number for this benchmark run as text, or why there is none."""
    entries = paper.get(benchmark) or []
    subject, metric = data.get("subject"), data.get("metric")
    for entry in entries if isinstance(entries, list) else []:
        if entry.get("metric") == metric and entry.get("subject") in (None, subject) and _num(entry.get("value")):
            return f"{entry['value']:.4g} ({entry.get('source', 'ConceptPrune, arXiv 2405.19237v2')})"
    return NO_PUBLISHED


def benchmark_tables(concept: dict, paper: dict) -> dict[str, dict]:
    """Per benchmark: its headline metric, header and rows (one per run: setting, pruned %, original, edited, paper)."""
    tables: dict[str, dict] = {}
    for run in concept["runs"]:
        setting = run["setting"] or {}
        for name, bench in run["benchmarks"].items():
            data = bench["data"]
            metric = str(data.get("metric", "?"))
            summary = data.get("summary") or {}
            original, edited = summary.get("original") or {}, summary.get("edited") or {}
            protocol = _protocol(bench)
            paper_text = published(paper, name, data) if protocol == "paper" else f"not compared: protocol {protocol or 'unrecorded'}, not paper"
            table = tables.setdefault(name, {"metric": metric, "rows": [], "grids": []})
            table["rows"].append([
                fmt_setting_value(setting.get("skill_ratio")), fmt_setting_value(setting.get("timesteps")),
                fmt_setting_value(setting.get("select_ratio")), fmt_fraction(run["data"].get("pruned_fraction")),
                data.get("subject", "–") if data.get("subject") is not None else "–",
                fmt_value(original.get(metric), original.get(f"{metric}_ci95")),
                fmt_value(edited.get(metric), edited.get(f"{metric}_ci95")), paper_text,
            ])
            if (bench["dir"] / "grid.png").is_file():
                table["grids"].append((run, bench["dir"] / "grid.png"))
    for name, table in tables.items():
        table["header"] = ["skill_ratio", "tau", "select_ratio", "pruned %", "subject", f"{table['metric']} original", f"{table['metric']} edited", "paper (published)"]
    return tables


# ---------------------------------------------------------------- images and plots

def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def upscaled_grid(path: Path) -> tuple[bytes, int, int]:
    """grid.png enlarged nearest-neighbour (32 px cells -> 96 px, at most GRID_MAX_WIDTH wide): (PNG bytes, w, h)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = max(1, min(GRID_SCALE, GRID_MAX_WIDTH // max(1, image.width)))
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue(), image.width, image.height


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _errors(entries: list[dict]) -> list[list[float]]:
    low, high = [], []
    for e in entries:
        ci = e.get("ci95") if isinstance(e.get("ci95"), (list, tuple)) and len(e.get("ci95")) == 2 else [e["value"], e["value"]]
        low.append(max(0.0, e["value"] - ci[0]))
        high.append(max(0.0, ci[1] - e["value"]))
    return [low, high]


def plot_vs_skill_ratio(runs: list[dict], entry_of, ylabel: str, title: str, percent: bool) -> bytes | None:
    """The metric (with interval bars) against skill_ratio, one line per tau (and select_ratio when several)."""
    groups: dict[tuple, list] = {}
    for run in runs:
        setting, entry = run["setting"] or {}, entry_of(run)
        if not _num(setting.get("skill_ratio")) or entry is None:
            continue
        groups.setdefault((setting.get("timesteps"), setting.get("select_ratio")), []).append((setting["skill_ratio"], entry))
    if not groups:
        return None
    several_sel = len({k[1] for k in groups}) > 1
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    scale = 100 if percent else 1
    for (tau, sel), points in sorted(groups.items(), key=lambda kv: str(kv[0])):
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        ys = [p[1]["value"] * scale for p in points]
        err = [[v * scale for v in side] for side in _errors([p[1] for p in points])]
        label = f"tau {tau}" + (f", select_ratio {sel:g}" if several_sel and _num(sel) else "")
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xlabel("skill_ratio")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig, plt)


def plot_pareto(concept: dict, chosen: dict | None) -> bytes | None:
    """Detection against other-scene accuracy, every setting, the Pareto front drawn, the unedited model marked."""
    runs = [r for r in concept["runs"] if _metric(r["data"], "detection") is not None and _metric(r["data"], "other_accuracy") is not None]
    if not runs:
        return None
    points = [(_metric(r["data"], "detection") * 100, _metric(r["data"], "other_accuracy") * 100) for r in runs]
    front = sorted((points[i] for i in pareto_front(points)), key=lambda p: p[0])
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="tab:blue", label="settings", zorder=3)
    ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:red", label="Pareto front", zorder=2)
    ax.scatter([p[0] for p in front], [p[1] for p in front], facecolors="none", edgecolors="tab:red", s=120, zorder=4)
    if chosen is not None and chosen in runs:
        d, a = points[runs.index(chosen)]
        ax.scatter([d], [a], marker="*", s=260, color="gold", edgecolors="black", label="headline", zorder=5)
    before = concept["before"] or {}
    if _metric(before, "detection") is not None and _metric(before, "other_accuracy") is not None:
        ax.scatter([_metric(before, "detection") * 100], [_metric(before, "other_accuracy") * 100], marker="s", color="gray", label="unedited", zorder=3)
    ax.set_xlabel("detection of the target (%, lower = erased)")
    ax.set_ylabel("other-scene accuracy (%, higher = preserved)")
    ax.set_title(f"{concept['name']}: erasure vs preservation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig, plt)


def plot_per_layer(run: dict) -> bytes | None:
    per_layer = run["data"].get("pruned_per_layer") or {}
    if not per_layer:
        return None
    plt = _figure()
    names = list(per_layer)  # execution order, as written
    fig, ax = plt.subplots(figsize=(max(6.4, 0.35 * len(names) + 2), 4.6))
    ax.bar(range(len(names)), [per_layer[n] * 100 for n in names], color="tab:purple")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.replace(".transformer_blocks", "").replace(".attentions", ".attn") for n in names], rotation=75, ha="right", fontsize=6)
    ax.set_ylabel("weights pruned (%)")
    ax.set_title(f"pruned fraction per layer ({run['name']}), execution order")
    return _png(fig, plt)


def plot_per_step(run: dict) -> bytes | None:
    steps = run["data"].get("skilled_per_step") or []
    if not steps:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(range(len(steps)), [s * 100 for s in steps], marker="o", color="tab:green")
    ax.set_xlabel("denoising step t (< tau)")
    ax.set_ylabel("scored weights skilled (%)")
    ax.set_title(f"skilled fraction per step ({run['name']})")
    ax.grid(alpha=0.3)
    return _png(fig, plt)


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}
table{border-collapse:collapse;margin:10px 0 18px;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}tr.headline td{background:#fff6cc;font-weight:600}
.meta td{text-align:left}.note{color:#555;font-size:.92em}img{display:block;margin:8px 0;max-width:100%}
img.grid{image-rendering:pixelated}figure{margin:10px 0 22px}figcaption{color:#555;font-size:.9em}
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def html_table(header, rows, css_class: str, concept: str, highlight: set[int] = frozenset()) -> str:
    out = [f'<table class="{_esc(css_class)}" data-concept="{_esc(concept)}">', "<thead><tr>"]
    out += [f"<th>{_esc(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        out.append('<tr class="headline">' if i in highlight else "<tr>")
        out += [f"<td>{_esc(c)}</td>" for c in row]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_image(png: bytes, alt: str, caption: str, css_class: str = "plot", size: tuple[int, int] | None = None) -> str:
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (f'<figure><img class="{css_class}" src="{png_data_uri(png)}" alt="{_esc(alt)}"{dims}>'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def header_rows(sweep: dict) -> list[list[str]]:
    grid = sweep.get("grid") or {}
    grid_text = "; ".join(f"{k} {', '.join(fmt_setting_value(v) for v in vals)}" for k, vals in grid.items()) or "–"
    seconds = sweep.get("seconds")
    rows = [["name", str(sweep.get("name", "–"))], ["model", str(sweep.get("model_id", "–"))], ["grid", grid_text],
            ["evaluation", str(sweep.get("evaluation", "demo"))]]
    if sweep.get("benchmarks"):
        rows.append(["benchmarks", ", ".join(map(str, sweep["benchmarks"]))])
    rows.append(["time", f"{seconds:.0f} s ({seconds / 60:.1f} min)" if _num(seconds) else "–"])
    return rows


def build(results: dict) -> tuple[str, str]:
    """(HTML page, Markdown text) of a loaded sweep."""
    sweep = results["sweep"]
    title = f"Concept-prune sweep: {sweep.get('name', results['root'].name)}"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>", f"<h1>{_esc(title)}</h1>",
         html_table(["", ""], header_rows(sweep), "meta", ""),
         f'<p class="note">Generated {generated} from {_esc(results["root"].name)}/ by benchmarking/report.py. '
         "Intervals are 95% bootstrap intervals. Detection: share of target images where the judge sees the concept "
         "(lower = better erasure); other accuracy: the judge's accuracy on scenes without it (higher = better preservation).</p>"]
    m = [f"# {title}", "", "| | |", "|---|---|", *[f"| {k} | {_md(v)} |" for k, v in header_rows(sweep)], "",
         f"Generated {generated}. Intervals are 95% bootstrap intervals.", ""]
    paper = load_paper_numbers() if results["evaluation"] == "benchmarks" else {}
    for concept in results["concepts"]:
        name = concept["name"]
        target = (concept["before"] or {}).get("concept") or next((r["data"].get("concept") for r in concept["runs"] if r["data"].get("concept")), name)
        h.append(f'<h2 id="concept-{_esc(name)}">Concept: {_esc(name)} <small>({_esc(target)})</small></h2>')
        m += [f"## Concept: {name} ({target})", ""]
        if results["evaluation"] == "demo":
            _demo_section(concept, h, m)
        else:
            _benchmarks_section(concept, paper, h, m)
    h.append("</body></html>")
    return "\n".join(h) + "\n", "\n".join(m) + "\n"


def _md(cell) -> str:
    return str(cell).replace("|", "\\|").replace("\n", " ")


def md_table(header, rows) -> list[str]:
    return ["| " + " | ".join(_md(c) for c in header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(_md(c) for c in row) + " |" for row in rows], ""]


def _demo_section(concept: dict, h: list[str], m: list[str]) -> None:
    name = concept["name"]
    h.append("<h3>Unedited model</h3>")
    m += ["### Unedited model", ""]
    rows = before_rows(concept["before"])
    if rows:
        h.append(html_table(["metric", "value [95% interval]", "n"], rows, "before", name))
        m += md_table(["metric", "value [95% interval]", "n"], rows)
    else:
        h.append('<p class="note">No before/metrics.json: the unedited scores were not measured.</p>')
        m += ["No before/metrics.json: the unedited scores were not measured.", ""]
    chosen, rule = headline(concept)
    h.append("<h3>Headline setting</h3>")
    m += ["### Headline setting", ""]
    if chosen is not None:
        s = chosen["setting"] or {}
        line = (f"{chosen['name']} (skill_ratio {fmt_setting_value(s.get('skill_ratio'))}, tau {fmt_setting_value(s.get('timesteps'))}, "
                f"select_ratio {fmt_setting_value(s.get('select_ratio'))}): detection {fmt_pct((chosen['data'].get('metrics') or {}).get('detection'))}, "
                f"other accuracy {fmt_pct((chosen['data'].get('metrics') or {}).get('other_accuracy'))}, "
                f"{fmt_fraction(chosen['data'].get('pruned_fraction'))} of the weights pruned. Picked by the rule: {rule}.")
        h.append(f'<p class="headline-rule">{_esc(line)}</p>')
        m += [line, ""]
        grid_path = chosen["dir"] / str(chosen["data"].get("grid") or "grid.png")
        if grid_path.is_file():
            png, w, hh = upscaled_grid(grid_path)
            h.append(html_image(png, f"{name}: before/after grid of {chosen['name']}",
                                "Rows: target scenes before, after pruning; other scenes before, after (same captions and seeds).",
                                "grid", (w, hh)))
        else:
            h.append(f'<p class="note">No grid image for {_esc(chosen["name"])}.</p>')
    else:
        h.append(f'<p class="note">No headline setting: {_esc(rule)}.</p>')
        m += [f"No headline setting: {rule}.", ""]
    h.append("<h3>Every setting</h3>")
    m += ["### Every setting", ""]
    rows = settings_rows(concept, chosen)
    highlight = {i for i, r in enumerate(concept["runs"]) if r is chosen}
    h.append(html_table(SETTINGS_HEADER, rows, "settings", name, highlight))
    m += md_table(SETTINGS_HEADER, rows)
    h.append("<h3>Plots</h3>")
    plots = [
        (plot_vs_skill_ratio(concept["runs"], lambda r: (r["data"].get("metrics") or {}).get("detection") if _metric(r["data"], "detection") is not None else None,
                             "detection (%)", f"{name}: erasure vs skill_ratio", True),
         f"{name}: detection against skill_ratio per tau", "Detection (lower = erased) against skill_ratio, one line per tau; bars: 95% intervals."),
        (plot_pareto(concept, chosen), f"{name}: detection against other-scene accuracy with the Pareto front",
         "Erasure vs preservation; red: the Pareto front (no other setting has lower detection and higher other accuracy); star: headline."),
    ]
    if chosen is not None:
        plots += [(plot_per_layer(chosen), f"{name}: pruned fraction per layer of {chosen['name']}", "Fraction of each FFN layer's weights pruned, layers in execution order (headline setting)."),
                  (plot_per_step(chosen), f"{name}: skilled fraction per step of {chosen['name']}", "Fraction of the scored weights skilled at each step t < tau (headline setting).")]
    for png, alt, caption in plots:
        if png is not None:
            h.append(html_image(png, alt, caption))
    if chosen is not None:
        for title, css, header, rows in _headline_detail_tables(chosen):
            h.append(f"<h4>{_esc(title)}</h4>" + html_table(header, rows, css, name))
            m += [f"#### {title}", "", *md_table(header, rows)]


def _headline_detail_tables(run: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The numbers behind the per-layer and per-step plots of the headline run, as tables."""
    out = []
    per_layer = run["data"].get("pruned_per_layer") or {}
    if per_layer:
        out.append((f"Pruned fraction per layer ({run['name']})", "per-layer", ["layer (execution order)", "pruned %"],
                    [[layer, fmt_fraction(v)] for layer, v in per_layer.items()]))
    steps = run["data"].get("skilled_per_step") or []
    if steps:
        out.append((f"Skilled fraction per step ({run['name']})", "per-step", ["step t", "skilled %"],
                    [[str(t), fmt_fraction(v)] for t, v in enumerate(steps)]))
    return out


def _benchmarks_section(concept: dict, paper: dict, h: list[str], m: list[str]) -> None:
    name = concept["name"]
    tables = benchmark_tables(concept, paper)
    if not tables:
        h.append('<p class="note">No benchmarks/&lt;benchmark&gt;/metrics.json in any run of this concept.</p>')
        m += ["No benchmarks/<benchmark>/metrics.json in any run of this concept.", ""]
    for bench, table in tables.items():
        h.append(f"<h3>{_esc(bench)}: {_esc(table['metric'])}, original vs edited</h3>")
        m += [f"### {bench}: {table['metric']}, original vs edited", ""]
        h.append(html_table(table["header"], table["rows"], "benchmark", name))
        m += md_table(table["header"], table["rows"])
        runs = [r for r in concept["runs"] if bench in r["benchmarks"]]
        metric = table["metric"]
        def edited(run, bench=bench, metric=metric):
            summary = (run["benchmarks"][bench]["data"].get("summary") or {}).get("edited") or {}
            return {"value": summary[metric], "ci95": summary.get(f"{metric}_ci95")} if _num(summary.get(metric)) else None
        png = plot_vs_skill_ratio(runs, edited, f"{metric} (edited)", f"{name}, {bench}: {metric} vs skill_ratio", False)
        if png is not None:
            h.append(html_image(png, f"{name}, {bench}: edited {metric} against skill_ratio per tau", "One line per tau; bars: 95% intervals."))
        for run, grid in table["grids"]:
            png, w, hh = upscaled_grid(grid)
            h.append(html_image(png, f"{name}, {bench}: grid of {run['name']}", f"{run['name']}: original and edited images of {bench}.", "grid", (w, hh)))


# ---------------------------------------------------------------- CLI

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="the sweep folder (holds sweep.json)")
    parser.add_argument("--out", default=None, help="HTML file to write (default: RESULTS_DIR/report.html)")
    parser.add_argument("--markdown", default=None, help="also write the tables as Markdown to this file")
    args = parser.parse_args(argv)
    results = load_sweep(args.results_dir)
    page, markdown = build(results)
    from utils.storage import write_text

    out = Path(args.out) if args.out else results["root"] / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        write_text(Path(args.markdown), markdown)
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    run_cli(main)
