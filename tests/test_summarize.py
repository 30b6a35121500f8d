"""summarize.py on hand-written metrics.json files: every run keyed by base model, benchmark, subject, method,
prompt set and protocol; none dropped; protocols never mixed; 95% intervals beside the numbers."""
from __future__ import annotations

import csv
import json

import pytest

from conftest import load_script

summarize = load_script("summarize", "benchmarking")


def write_run(root, name, subject="Van Gogh", method="concept-prune", before=30.0, after=20.0, model="sd15", **extra):
    """A metrics.json of an artist run under ``root/name``; ``extra`` adds or replaces top-level fields
    (``settings``, ``protocol``, ``summary``, ...)."""
    report = {
        "benchmark": "artist_erasure", "subject": subject, "target": subject, "method": method,
        "ckpt_name": f"{method}.safetensors", "metric": "clip_score",
        "summary": {"original": {"clip_score": before}, "edited": {"clip_score": after}},
        "num_prompts": 50, "models": {"original": model}, **extra,
    }
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(report))
    return folder / "metrics.json"


def tables(root) -> str:
    return summarize.comparison_tables([summarize.read_run(p) for p in summarize.find_metrics([str(root)])])


def test_runs_of_two_base_models_are_two_tables(tmp_path):
    write_run(tmp_path, "a", model="sd14", after=20.0, settings={"protocol": "project"})
    write_run(tmp_path, "b", model="sd15", after=25.0, settings={"protocol": "project"})
    text = tables(tmp_path)
    assert "### artist_erasure: clip_score (protocol project; base model sd14)" in text
    assert "### artist_erasure: clip_score (protocol project; base model sd15)" in text
    assert "| concept-prune-concept-prune | 20 |" in text and "| concept-prune-concept-prune | 25 |" in text


def test_runs_of_two_protocols_never_share_a_table(tmp_path):
    write_run(tmp_path, "a", protocol="paper", after=21.0)
    write_run(tmp_path, "b", settings={"protocol": "project"}, after=22.0)
    write_run(tmp_path, "c", after=23.0)  # written before runs recorded their protocol
    text = tables(tmp_path)
    blocks = {block.split("\n", 1)[0]: block for block in text.split("### ")[1:]}
    assert len(blocks) == 3
    assert "| concept-prune-concept-prune | 21 |" in blocks["artist_erasure: clip_score (protocol paper; base model sd15)"]
    assert "| concept-prune-concept-prune | 22 |" in blocks["artist_erasure: clip_score (protocol project; base model sd15)"]
    assert "| concept-prune-concept-prune | 23 |" in blocks["artist_erasure: clip_score (protocol unrecorded; base model sd15)"]


def test_runs_of_two_prompt_sets_are_two_columns(tmp_path):
    write_run(tmp_path, "a", after=20.0, settings={"prompts": "/data/test_Van Gogh.csv"})
    write_run(tmp_path, "b", after=24.0, prompt_set={"path": "datasets/artist_prompts.csv", "sha256": "abcdef0123456789"})
    text = tables(tmp_path)
    assert "| method | Van Gogh (artist_prompts.csv@abcdef01) | Van Gogh (test_Van Gogh.csv) |" in text
    assert "| concept-prune-concept-prune | 24 | 20 |" in text


def test_two_runs_with_one_key_are_both_shown_with_their_files(tmp_path):
    first = write_run(tmp_path, "first", after=20.0, before=30.0)
    second = write_run(tmp_path, "second", after=26.0, before=31.0)
    text = tables(tmp_path)
    assert "| concept-prune-concept-prune | 20 (1); 26 (2) |" in text
    assert "| original | 30 (concept-prune-concept-prune 1); 31 (concept-prune-concept-prune 2) |" in text
    assert f"(1) {first} (50 prompts)" in text and f"(2) {second} (50 prompts)" in text


def test_one_original_is_shown_once_and_differing_originals_each_with_their_method(tmp_path):
    write_run(tmp_path, "a", method="concept-prune", before=30.0)
    write_run(tmp_path, "b", method="uce", before=30.0, after=25.0)
    assert "| original | 30 |" in tables(tmp_path)
    write_run(tmp_path, "c", method="esd", before=29.0, after=26.0)
    assert "| original | 30 (concept-prune-concept-prune); 30 (uce-uce); 29 (esd-esd) |" in tables(tmp_path)


def test_the_95_percent_interval_stands_beside_the_number_when_there_is_one(tmp_path):
    summary = {"original": {"clip_score": 30.0, "clip_score_ci95": [29.25, 30.75]}, "edited": {"clip_score": 20.0, "clip_score_ci95": [19.0, 21.5]}}
    write_run(tmp_path, "a", summary=summary)
    write_run(tmp_path, "b", subject="Monet", before=31.0, after=22.0)  # no interval: the number alone
    text = tables(tmp_path)
    assert "| method | Monet | Van Gogh |" in text
    assert "| original | 31 | 30 [29.25, 30.75] |" in text
    assert "| concept-prune-concept-prune | 22 | 20 [19, 21.5] |" in text


def test_the_csv_carries_the_key_and_the_intervals(tmp_path, capsys):
    summary = {"original": {"clip_score": 30.0, "clip_score_ci95": [29.0, 31.0]}, "edited": {"clip_score": 20.0}}
    write_run(tmp_path / "runs", "a", summary=summary, protocol="paper")
    summarize.main([str(tmp_path / "runs"), "--out", str(tmp_path / "table")])
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines[0] == ",".join(summarize.CSV_COLUMNS)
    row = dict(zip(summarize.CSV_COLUMNS, next(csv.reader([lines[1]]))))
    assert (row["protocol"], row["prompt_set"], row["original_ci95_low"], row["original_ci95_high"], row["edited_ci95_low"]) == ("paper", "default", "29.0", "31.0", "")
    assert (tmp_path / "table.md").read_text().startswith("### artist_erasure: clip_score (protocol paper; base model sd15)")


def test_a_csv_of_the_earlier_format_is_replaced_as_its_own(tmp_path, capsys):
    write_run(tmp_path / "runs", "a")
    (tmp_path / "table.csv").write_text(summarize.OLD_CSV_HEADER + "\n")
    summarize.main([str(tmp_path / "runs"), "--out", str(tmp_path / "table")])
    assert (tmp_path / "table.csv").read_text().startswith(",".join(summarize.CSV_COLUMNS))


@pytest.mark.parametrize("interval", [[1.0], "29-31", [1.0, "x"], {"low": 1}])
def test_an_interval_that_is_not_two_numbers_is_refused(tmp_path, interval):
    write_run(tmp_path, "a", summary={"original": {"clip_score": 30.0, "clip_score_ci95": interval}, "edited": {"clip_score": 20.0}})
    with pytest.raises(summarize.UsageError, match=r"clip_score_ci95 is .*, not \[low, high\]"):
        tables(tmp_path)


def test_a_protocol_that_is_not_text_is_refused(tmp_path):
    write_run(tmp_path, "a", protocol=["paper"])
    with pytest.raises(summarize.UsageError, match=r"protocol is \['paper'\], not text"):
        tables(tmp_path)
