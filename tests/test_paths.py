"""The results layout: benchmark run folders keep protocols, models and methods apart."""
from __future__ import annotations

from pathlib import Path

from utils.paths import benchmark_run_dir


def test_runs_of_two_protocols_never_share_a_folder():
    config = {"res_path": "results", "model_id": "CompVis/stable-diffusion-v1-4", "baseline": "concept-prune",
              "ckpt_name": "results/m/van_gogh/pruned/sr0.01_tau10_sel0/prune_mask.safetensors"}
    paper = benchmark_run_dir(dict(config, protocol="paper"), "artist_erasure", "Van Gogh")
    project = benchmark_run_dir(dict(config, protocol="project"), "artist_erasure", "Van Gogh")
    assert paper == Path("results/benchmarks/paper/CompVis--stable-diffusion-v1-4/artist_erasure/van_gogh/concept-prune-sr0.01_tau10_sel0")
    assert project.parts[2] == "project" and paper.parts[3:] == project.parts[3:]
    assert benchmark_run_dir(config, "artist_erasure", "Van Gogh") == project  # no protocol named: the project's
    assert benchmark_run_dir(dict(config, out_dir="mine"), "artist_erasure", "Van Gogh") == Path("mine")
