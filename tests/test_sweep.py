"""benchmarking/sweep.py on the demo model: a small grid judged with intervals, resumed, and read by report.py."""
from __future__ import annotations

import json

import pytest

from conftest import load_script, run_script


def test_a_demo_sweep_writes_the_tree_the_report_reads_and_resumes(tmp_path, capsys):
    argv = ["--name", "t", "--res_path", str(tmp_path), "--targets", "checker", "--skill_ratios", "0.2", "0.4", "--taus", "2",
            "--select_ratios", "0.7", "--eval_prompts", "4", "--num_inference_steps", "4"]
    summary = load_script("sweep", "benchmarking").main(argv)
    out = tmp_path / "sweeps" / "t"
    assert summary["evaluation"] == "demo" and summary["concepts"] == ["checker"]
    assert json.loads((out / "sweep.json").read_text()) == summary
    before = json.loads((out / "checker" / "before" / "metrics.json").read_text())
    assert before["metrics"]["detection"]["n"] == 4 and len(before["metrics"]["detection"]["ci95"]) == 2
    runs = sorted(p.parent.name for p in out.glob("checker/sr*/metrics.json"))
    assert runs == ["sr0.2_tau2_sel0.7", "sr0.4_tau2_sel0.7"]
    for run in runs:
        record = json.loads((out / "checker" / run / "metrics.json").read_text())
        lo, hi = record["metrics"]["other_accuracy"]["ci95"]
        assert lo <= record["metrics"]["other_accuracy"]["value"] <= hi
        assert len(record["skilled_per_step"]) == 2 and len(record["pruned_per_layer"]) == 14
        assert (out / "checker" / run / "grid.png").is_file() and (out / "checker" / run / "prune_mask.safetensors").is_file()
    capsys.readouterr()
    load_script("sweep", "benchmarking").main(argv)  # a rerun keeps what is done
    assert capsys.readouterr().out.count("done before, kept") == 2
    run_script("report", [str(out)], folder="benchmarking")
    page = (out / "report.html").read_text()
    assert "Concept: checker" in page and page.count("data:image/png;base64,") >= 4


def test_a_bad_grid_is_one_sentence(tmp_path, capsys):
    for argv, message in ((["--skill_ratios", "1.5", "--taus", "2"], "--skill_ratios must lie strictly between 0 and 1"),
                          (["--skill_ratios", "0.2", "--taus", "2", "--benchmarks", "nope"], "unknown benchmark 'nope'")):
        with pytest.raises(SystemExit) as exit_info:
            run_script("sweep", ["--targets", "checker", "--res_path", str(tmp_path), *argv], folder="benchmarking")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err


def test_a_benchmarks_sweep_runs_each_benchmark_on_each_mask(tiny_sd_dir, tiny_clip_dir, tmp_path):
    argv = ["--name", "b", "--res_path", str(tmp_path), "--model_id", str(tiny_sd_dir), "--targets", "Monet", "--skill_ratios", "0.1",
            "--taus", "2", "--num_inference_steps", "3", "--device", "cpu", "--benchmarks", "artist_erasure",
            f"--bench_args=--limit 1 --num_inference_steps 2 --clip_model {tiny_clip_dir}"]
    summary = load_script("sweep", "benchmarking").main(argv)
    assert summary["evaluation"] == "benchmarks"
    (record_path,) = (tmp_path / "sweeps" / "b" / "Monet").glob("sr*/metrics.json")
    record = json.loads(record_path.read_text())
    bench = json.loads((record_path.parent / record["benchmarks"]["artist_erasure"]).read_text())
    assert bench["method"] == "concept-prune" and bench["num_prompts"] == 1
    assert bench["models"]["edited"]["mask"]["num_pruned"] == record["pruned_weights"]
    run_script("report", [str(tmp_path / "sweeps" / "b")], folder="benchmarking")
    assert "artist_erasure" in (tmp_path / "sweeps" / "b" / "report.html").read_text()
