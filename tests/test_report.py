"""benchmarking/report.py: the HTML page and Markdown of a sweep's results tree, checked against its files,
and rendered in headless Chromium.

The browser test writes its screenshot to pytest's tmp_path and copies it to
``results/test-artifacts/report.png`` (relative to the repository root; results/ is ignored by git).
It is skipped, with the reason, when no ``chromium`` / ``chromium-browser`` binary is on PATH.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO / "results" / "test-artifacts" / "report.png"
report = load_script("report", "benchmarking")

LAYERS = [f"down_blocks.{i}.attentions.0.transformer_blocks.0.ff.net.2" for i in range(3)] + ["mid_block.attentions.0.transformer_blocks.0.ff.net.2"]

# (run, (detection, ci), (other_accuracy, ci), pruned_fraction, pruned_weights)
# checker: sr0.2_tau10 is the headline (lowest detection with other accuracy >= 100% - 2 points);
#          sr0.4_tau5 is dominated by it; the front is sr0.2_tau5, sr0.2_tau10, sr0.4_tau10.
# circle:  no setting keeps other accuracy within 2 points, so the lowest detection (sr0.4_tau10) is the
#          headline; sr0.4_tau5 (0.25, 0.85) is dominated by sr0.4_tau10 (0.2, 0.9).
SETTINGS = {
    "checker": [
        ("sr0.2_tau5_sel0.7", (0.40, [0.33, 0.47]), (0.99, [0.97, 1.0]), 0.0101, 22934),
        ("sr0.2_tau10_sel0.7", (0.23, [0.15, 0.31]), (0.985, [0.96, 1.0]), 0.0134, 30418),
        ("sr0.4_tau5_sel0.7", (0.30, [0.23, 0.375]), (0.95, [0.92, 0.98]), 0.0142, 32240),
        ("sr0.4_tau10_sel0.7", (0.09, [0.05, 0.13]), (0.91, [0.87, 0.945]), 0.0168, 38259),
    ],
    "circle": [
        ("sr0.2_tau5_sel0.7", (0.50, [0.44, 0.56]), (0.97, [0.95, 0.99]), 0.0098, 22250),
        ("sr0.2_tau10_sel0.7", (0.35, [0.29, 0.41]), (0.96, [0.93, 0.98]), 0.0121, 27466),
        ("sr0.4_tau5_sel0.7", (0.25, [0.2, 0.3]), (0.85, [0.81, 0.89]), 0.0139, 31553),
        ("sr0.4_tau10_sel0.7", (0.20, [0.15, 0.25]), (0.90, [0.86, 0.94]), 0.0171, 38812),
    ],
}
BEFORE = {"checker": ((0.81, [0.76, 0.86]), (1.0, [0.99, 1.0])), "circle": ((0.78, [0.73, 0.83]), (1.0, [0.985, 1.0]))}
HEADLINE = {"checker": "sr0.2_tau10_sel0.7", "circle": "sr0.4_tau10_sel0.7"}
PARETO = {"checker": {"sr0.2_tau5_sel0.7", "sr0.2_tau10_sel0.7", "sr0.4_tau10_sel0.7"},
          "circle": {"sr0.2_tau5_sel0.7", "sr0.2_tau10_sel0.7", "sr0.4_tau10_sel0.7"}}


def _grid_png(path: Path, columns: int = 4, seed: int = 0) -> None:
    """rows = target before/after, other before/after; 32x32 cells with 2-px white gaps."""
    cell, gap = 32, 2
    image = Image.new("RGB", (columns * cell + (columns - 1) * gap, 4 * cell + 3 * gap), "white")
    for r in range(4):
        for c in range(columns):
            colour = ((37 * (r + seed) + 60 * c) % 256, (91 * c + 13 * r) % 256, (53 * r + 29 * c + seed) % 256)
            image.paste(Image.new("RGB", (cell, cell), colour), (c * (cell + gap), r * (cell + gap)))
    image.save(path)


def _entry(value_ci, n=256):
    return {"value": value_ci[0], "ci95": value_ci[1], "n": n}


def write_demo_sweep(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps({
        "format": "concept-prune sweep v1", "name": "demo-grid", "model_id": "demo/model", "evaluation": "demo",
        "grid": {"skill_ratio": [0.2, 0.4], "timesteps": [5, 10], "select_ratio": [0.7]}, "concepts": ["checker", "circle"],
        "seconds": 812.4}))
    for k, (concept, runs) in enumerate(SETTINGS.items()):
        before = root / concept / "before"
        before.mkdir(parents=True)
        det, oa = BEFORE[concept]
        (before / "metrics.json").write_text(json.dumps({
            "concept": f"style={concept}" if concept == "checker" else f"shape={concept}", "target": concept, "setting": None,
            "metrics": {"detection": _entry(det), "other_accuracy": _entry(oa)}}))
        for j, (run, det, oa, fraction, count) in enumerate(runs):
            folder = root / concept / run
            folder.mkdir()
            setting = report._setting_from_name(run)
            tau = setting["timesteps"]
            _grid_png(folder / "grid.png", seed=10 * k + j)
            (folder / "metrics.json").write_text(json.dumps({
                "concept": f"style={concept}", "target": concept, "setting": setting,
                "pruned_weights": count, "pruned_fraction": fraction,
                "pruned_per_layer": {layer: round(0.02 * (i + 1) + 0.01 * j, 4) for i, layer in enumerate(LAYERS)},
                "skilled_per_step": [round(0.05 - 0.003 * t + 0.001 * j, 4) for t in range(tau)],
                "metrics": {"detection": _entry(det), "other_accuracy": _entry(oa)},
                "mask": "prune_mask.safetensors", "grid": "grid.png"}))
    return root


class Tables(HTMLParser):
    """Every <table> of a page: [(attrs, [[cell text, ...], ...])]; and every <img>'s attrs."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs), []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _table(parsed: Tables, css: str, concept: str):
    found = [rows for attrs, rows in parsed.tables if attrs.get("class") == css and attrs.get("data-concept") == concept]
    assert len(found) == 1, (css, concept, len(found))
    return found[0]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    root = write_demo_sweep(tmp_path_factory.mktemp("sweep") / "sweep")
    out, md = root.parent / "report.html", root.parent / "report.md"
    report.main([str(root), "--out", str(out), "--markdown", str(md)])
    return root, out.read_text(encoding="utf-8"), md.read_text(encoding="utf-8")


def test_formatting():
    assert report.fmt_pct({"value": 0.23, "ci95": [0.15, 0.31]}) == "23% [15, 31]"
    assert report.fmt_pct({"value": 0.985, "ci95": [0.96, 1.0]}) == "98.5% [96, 100]"
    assert report.fmt_fraction(0.0168) == "1.68%"
    assert report.fmt_value(31.5234, [30.91, 32.1]) == "31.52 [30.91, 32.1]"


def test_page_holds_every_number_of_the_metrics_files(demo_report):
    root, page, md = demo_report
    parsed = Tables()
    parsed.feed(page)
    assert "src=\"http" not in page and "<script" not in page and "<link" not in page and "url(" not in page
    assert parsed.images and all(img.get("alt") and img["src"].startswith("data:image/png;base64,") for img in parsed.images)
    assert "demo/model" in page and "812 s" in page and "skill_ratio 0.2, 0.4" in page
    for concept, runs in SETTINGS.items():
        assert f'<h2 id="concept-{concept}">' in page
        before = json.loads((root / concept / "before" / "metrics.json").read_text())
        rows = _table(parsed, "before", concept)
        assert rows[0] == ["metric", "value [95% interval]", "n"]
        assert rows[1:] == [[k, report.fmt_pct(e), str(e["n"])] for k, e in before["metrics"].items()]
        # the settings table, against the JSON files (and a few cells spelled out)
        rows = _table(parsed, "settings", concept)
        assert rows[0] == list(report.SETTINGS_HEADER)
        assert [r[0:3] for r in rows[1:]] == [["0.2", "5", "0.7"], ["0.2", "10", "0.7"], ["0.4", "5", "0.7"], ["0.4", "10", "0.7"]]
        for row, (run, *_rest) in zip(rows[1:], runs):
            data = json.loads((root / concept / run / "metrics.json").read_text())
            s = data["setting"]
            assert row == [f"{s['skill_ratio']:g}", str(s["timesteps"]), f"{s['select_ratio']:g}",
                           report.fmt_fraction(data["pruned_fraction"]), f"{data['pruned_weights']:,}",
                           report.fmt_pct(data["metrics"]["detection"]), report.fmt_pct(data["metrics"]["other_accuracy"]),
                           "yes" if run in PARETO[concept] else "", "yes" if run == HEADLINE[concept] else ""]
            assert "| " + " | ".join(row) + " |" in md  # the Markdown holds the same rows
        # the headline's per-layer and per-step numbers
        head = json.loads((root / concept / HEADLINE[concept] / "metrics.json").read_text())
        assert _table(parsed, "per-layer", concept)[1:] == [[k, report.fmt_fraction(v)] for k, v in head["pruned_per_layer"].items()]
        assert _table(parsed, "per-step", concept)[1:] == [[str(t), report.fmt_fraction(v)] for t, v in enumerate(head["skilled_per_step"])]
    for attrs, rows in parsed.tables:  # every table but the page's header, row by row, in the Markdown too
        if attrs.get("class") != "meta":
            assert all("| " + " | ".join(row) + " |" in md for row in rows), attrs
    checker = _table(parsed, "settings", "checker")
    assert checker[2][3:6] == ["1.34%", "30,418", "23% [15, 31]"] and checker[4][5:7] == ["9% [5, 13]", "91% [87, 94.5]"]
    assert "within 2 points of the unedited model" in page and "no setting kept the other-scene accuracy within 2 points" in page
    assert "| detection | 81% [76, 86] | 256 |" in md and "## Concept: checker (style=checker)" in md
    assert "](" not in md  # no links


def test_headline_and_pareto_rules():
    points = [(0.40, 0.99), (0.23, 0.985), (0.30, 0.95), (0.09, 0.91)]
    assert report.pareto_front(points) == [0, 1, 3]
    concept = {"before": {"metrics": {"other_accuracy": {"value": 0.9}}}, "runs": []}
    assert report.headline(concept)[0] is None


def test_grid_is_upscaled_nearest_neighbour(tmp_path):
    _grid_png(tmp_path / "g.png")
    png, w, h = report.upscaled_grid(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as small:
        assert (w, h) == (3 * small.width, 3 * small.height)
    import io

    big = Image.open(io.BytesIO(png)).convert("RGB")
    with Image.open(tmp_path / "g.png") as small:
        assert big.getpixel((3 * 5 + 1, 3 * 7 + 2)) == small.convert("RGB").getpixel((5, 7))


def test_benchmarks_sweep(tmp_path):
    root = tmp_path / "sweep"
    root.mkdir()
    (root / "sweep.json").write_text(json.dumps({
        "format": "concept-prune sweep v1", "name": "nudity", "model_id": "CompVis/stable-diffusion-v1-4", "evaluation": "benchmarks",
        "benchmarks": ["nudity_eval"], "grid": {"skill_ratio": [0.01, 0.02], "timesteps": [10], "select_ratio": [0]},
        "concepts": ["nudity"], "seconds": 3600.0}))
    values = {"sr0.01_tau10_sel0": (0.0712, [0.05, 0.093], "paper"), "sr0.02_tau10_sel0": (0.0433, [0.0288, 0.061], "project")}
    for run, (edited, ci, protocol) in values.items():
        bench = root / "nudity" / run / "benchmarks" / "nudity_eval"
        bench.mkdir(parents=True)
        _grid_png(bench / "grid.png", columns=2)
        (bench / "metrics.json").write_text(json.dumps({
            "format": "concept-prune benchmark metrics v1", "benchmark": "nudity_eval", "subject": "nudity", "target": "nudity",
            "method": "concept-prune", "metric": "nudity_rate",
            "summary": {"original": {"nudity_rate": 0.3125, "nudity_rate_ci95": [0.2712, 0.355]},
                        "edited": {"nudity_rate": edited, "nudity_rate_ci95": ci}, "comparison": {}},
            "num_prompts": 400, "per_prompt": [], "settings": {"protocol": protocol}}))
    (root / "nudity" / "sr0.01_tau10_sel0" / "metrics.json").write_text(json.dumps({
        "concept": "nudity", "target": "nudity", "setting": {"skill_ratio": 0.01, "timesteps": 10, "select_ratio": 0},
        "pruned_weights": 1034000, "pruned_fraction": 0.0012}))
    out, md = tmp_path / "r.html", tmp_path / "r.md"
    report.main([str(root), "--out", str(out), "--markdown", str(md)])
    page = out.read_text()
    parsed = Tables()
    parsed.feed(page)
    rows = _table(parsed, "benchmark", "nudity")
    assert rows[0][5:] == ["nudity_rate original", "nudity_rate edited", "paper (published)"]
    assert rows[1] == ["0.01", "10", "0", "0.12%", "nudity", "0.3125 [0.2712, 0.355]", "0.0712 [0.05, 0.093]", report.NO_PUBLISHED]
    assert rows[2] == ["0.02", "10", "0", "–", "nudity", "0.3125 [0.2712, 0.355]", "0.0433 [0.0288, 0.061]",
                       "not compared: protocol project, not paper"]
    assert len(parsed.images) == 3 and all(img.get("alt") for img in parsed.images)  # one plot, two grids
    assert "| 0.01 | 10 | 0 | 0.12% | nudity | 0.3125 [0.2712, 0.355] | 0.0712 [0.05, 0.093] | no published numbers" in md.read_text()


def test_published_numbers_stand_next_to_paper_protocol_runs(tmp_path, monkeypatch):
    """A number on record (here a made-up test value in a temporary file, not the shipped one) is shown with its source."""
    numbers = tmp_path / "paper_numbers.yaml"
    numbers.write_text("benchmarks:\n  nudity_eval:\n    - {subject: nudity, metric: nudity_rate, value: 0.5, source: 'TEST VALUE, Table X, page Y'}\n")
    monkeypatch.setattr(report, "PAPER_NUMBERS", numbers)
    paper = report.load_paper_numbers()
    assert report.published(paper, "nudity_eval", {"subject": "nudity", "metric": "nudity_rate"}) == "0.5 (TEST VALUE, Table X, page Y)"
    assert report.published(paper, "nudity_eval", {"subject": "nudity", "metric": "other"}) == report.NO_PUBLISHED
    assert report.published(paper, "object_erase", {"subject": "cassette player", "metric": "accuracy"}) == report.NO_PUBLISHED


def test_paper_numbers_file_invents_nothing():
    import yaml

    data = yaml.safe_load((REPO / "benchmarking" / "paper_numbers.yaml").read_text())
    for entries in (data.get("benchmarks") or {}).values():
        for entry in entries:  # every published number names its table and page
            assert re.search(r"2405\.19237v2.*Table \S+.*page \S+", entry["source"]), entry


def test_cli_refuses_missing_and_foreign_folders(tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "sweep.json").write_text(json.dumps({"format": "something else"}))
    (tmp_path / "empty").mkdir()
    for folder in ("missing", "foreign", "empty"):
        done = subprocess.run([sys.executable, str(REPO / "benchmarking" / "report.py"), str(tmp_path / folder)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


SELFCHECK_PRE = '<pre id="selfcheck">pending</pre>'
SELFCHECK_SCRIPT = """<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push('error: ' + (e.message || (e.target && e.target.src) || e.type)); }, true);
  var original = console.error;
  console.error = function () { errors.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); return original.apply(console, arguments); };
  window.addEventListener('load', function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (img) { return !img.complete || img.naturalWidth === 0; })
                       .map(function (img) { return img.alt || img.src.slice(0, 40); });
    document.getElementById('selfcheck').textContent = JSON.stringify({images: images.length, broken: broken, errors: errors});
  });
})();
</script>
"""


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_renders_in_headless_chromium(demo_report, tmp_path):
    """Every image loads (complete, naturalWidth > 0), no JavaScript or console error (a control page with a
    broken image and both kinds of error shows the check sees them); the screenshot (1280x3000) is kept in
    tmp_path and copied to results/test-artifacts/report.png (relative to the repository root, git-ignored)."""
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium or chromium-browser on PATH (apt-get install chromium; .ci/run installs it)")
    _, page, _ = demo_report
    assert page.count("</body>") == 1
    checked = tmp_path / "checked.html"
    # the check's script is injected first in <head> (to catch errors from the start) and the <pre> at the end
    checked.write_text(page.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + SELFCHECK_SCRIPT, 1)
                       .replace("</body>", SELFCHECK_PRE + "</body>"), encoding="utf-8")
    flags = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}"]
    done = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
                          capture_output=True, text=True, timeout=90)
    match = re.search(r'<pre id="selfcheck">(.*?)</pre>', done.stdout, re.S)
    assert match, (done.returncode, done.stderr[-2000:])
    import html as html_lib

    result = json.loads(html_lib.unescape(match.group(1)))
    page_images = page.count("<img ")
    assert result == {"images": page_images, "broken": [], "errors": []}, result
    # the check itself sees a broken image, a script error and a console error
    control = tmp_path / "control.html"
    control.write_text(checked.read_text(encoding="utf-8").replace(
        SELFCHECK_PRE, '<img src="data:image/png;base64,AAAA" alt="broken on purpose"><script>console.error("on purpose"); '
        'no_such_function();</script>' + SELFCHECK_PRE), encoding="utf-8")
    done = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", control.as_uri()], capture_output=True, text=True, timeout=90)
    seen = json.loads(html_lib.unescape(re.search(r'<pre id="selfcheck">(.*?)</pre>', done.stdout, re.S).group(1)))
    assert seen["broken"] == ["broken on purpose"], seen
    assert "console.error: on purpose" in seen["errors"] and any("no_such_function" in e for e in seen["errors"]), seen
    shot, plain = tmp_path / "report.png", tmp_path / "report.html"
    plain.write_text(page, encoding="utf-8")  # the page as shipped, without the check
    done = subprocess.run([*flags, "--hide-scrollbars", "--window-size=1280,3000", f"--screenshot={shot}", plain.as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert shot.is_file() and shot.stat().st_size > 0, done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        assert len(image.convert("RGB").getcolors(1 << 20) or range(1 << 20)) > 50  # not a blank page
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
