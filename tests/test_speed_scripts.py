"""The speed and summary scripts as a careless user runs them: bad values, output paths that hold the user's files,
malformed inputs. Each ends with one sentence and exit code 2 (nothing of the user's touched), or correct output."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, load_script


def _refused(script: str, argv: list[str], capsys) -> str:
    """Run ``benchmarking/<script>.py`` in-process; assert exit code 2 and one ``error:`` line; return that line."""
    from utils.errors import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(load_script(script, "benchmarking").main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("argv, words", [
    (["--batch_size", "0"], "--batch_size must be a positive integer, got 0"),
    (["--batch_size", "-2"], "--batch_size must be a positive integer, got -2"),
    (["--height", "-64"], "--height must be a positive integer, got -64"),
    (["--width", "30"], "--width must be a multiple of 8, got 30"),
    (["--device", "gpu0"], "unknown --device 'gpu0'"),
    (["--dtype", "half"], "unknown --dtype 'half'"),
    (["--skill_ratio", "nan"], "--skill_ratio must lie strictly between 0 and 1, got nan"),
    (["--out", "speed.txt"], "--out speed.txt must end in .json"),
])
def test_speed_refuses_bad_options_in_one_sentence(argv, words, capsys):
    assert words in _refused("speed", ["--random_arch", "tiny", *argv], capsys)


def test_speed_never_replaces_a_file_or_folder_of_the_user(tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    assert "exists and is not a report of speed.py" in _refused("speed", ["--random_arch", "tiny", "--out", str(notes)], capsys)
    (tmp_path / "folder.json").mkdir()
    assert "is an existing folder" in _refused("speed", ["--random_arch", "tiny", "--out", str(tmp_path / "folder.json")], capsys)
    assert notes.read_text() == '{"mine": 1}' and sorted(p.name for p in tmp_path.iterdir()) == ["folder.json", "notes.json"]


def test_speed_leaves_no_temporary_folder_behind(tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "speed.json"
    argv = ["--random_arch", "tiny", "--pairs", "1", "--num_inference_steps", "2", "--timesteps", "1", "--device", "cpu", "--skip_plain"]
    report = load_script("speed", "benchmarking").main(argv + ["--out", str(out)])
    assert report["prune_mask_bytes"] > 0 and json.loads(out.read_text())["prune_mask_bytes"] == report["prune_mask_bytes"]
    assert not list(scratch.glob("speed-*"))  # the measured mask's folder is removed
    load_script("speed", "benchmarking").main(argv + ["--out", str(out)])  # its own report is replaced on a rerun


def test_speed_times_the_union_and_the_save_the_scripts_call(tmp_path, monkeypatch):
    import utils.pruning
    import utils.skilled

    called = []
    for module, name in ((utils.skilled, "union_masks"), (utils.pruning, "save_prune_mask")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: called.append(_name) or _real(*a, **k))
    argv = ["--random_arch", "tiny", "--pairs", "1", "--num_inference_steps", "2", "--timesteps", "2", "--device", "cpu", "--skip_plain"]
    report = load_script("speed", "benchmarking").main(argv + ["--out", str(tmp_path / "speed.json")])
    assert called == ["union_masks", "save_prune_mask"]
    assert list(report["phases_s"]) == ["load", "plain_tau", "record", "union_masks", "save"]
    assert report["time_to_pruned_model_s"] == sum(report["phases_s"][k] for k in ("record", "union_masks", "save"))
    assert report["above_physical_limit"] == report["time_to_pruned_model_s"] / report["phases_s"]["plain_tau"] - 1.0


@pytest.mark.parametrize("arch, pipeline, ffns", [("tiny-sd3", "StableDiffusion3Pipeline", 2), ("tiny-flux", "FluxPipeline", 4),
                                                  ("tiny-pixart-sigma", "PixArtSigmaPipeline", 2), ("tiny-sdxl", "StableDiffusionXLPipeline", 8)])
def test_speed_measures_each_tiny_family_on_its_image_stream(arch, pipeline, ffns, tmp_path):
    argv = ["--random_arch", arch, "--pairs", "2", "--num_inference_steps", "3", "--timesteps", "2", "--device", "cpu", "--skip_plain"]
    report = load_script("speed", "benchmarking").main(argv + ["--out", str(tmp_path / "speed.json")])
    assert report["pipeline"] == pipeline and report["ffn_layers"] == ffns and report["unet_calls"] == 3
    assert 0 < report["num_pruned"] < report["scored_weights"] and report["prune_mask_bytes"] > 0


def test_prune_mask_size_counts_the_real_shapes_ffns_and_scored_weights():
    module = load_script("prune_mask_size", "benchmarking")
    flux = module.family_sizes("flux-dev")  # meta device: no memory
    assert (flux["ffn_image"], flux["ffn_text"], flux["ffn_shared"]) == (19 + 38, 19, 38)
    # 19 double blocks' ff (3072 x 12288) + 38 single blocks' MLP columns of proj_out (3072 x 12288); the mask holds
    # each single block's whole proj_out (3072 x 15360)
    assert flux["scored_image"] == 57 * 3072 * 12288 and flux["mask_bytes_image"] == 19 * 3072 * 12288 + 38 * 3072 * 15360
    sd3 = module.family_sizes("sd3.5-medium")
    assert (sd3["ffn_image"], sd3["ffn_text"], sd3["scored_both"]) == (24, 23, 47 * 1536 * 6144)


def _metrics(folder, **changes) -> None:
    """Write a benchmark metrics.json into ``folder`` (a run of benchmarking/*.py), with ``changes``."""
    report = {"benchmark": "artist_erasure", "subject": "Van Gogh", "target": "Van Gogh", "method": "concept-prune", "metric": "clip",
              "summary": {"original": {"clip": 0.3}, "edited": {"clip": 0.2}}, "num_prompts": 10, "models": {"original": "m"}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({**report, **changes}))


@pytest.mark.parametrize("changes, words", [
    ({"subject": {"a": 1}}, "subject is {'a': 1}, not text"),
    ({"metric": ["clip"]}, "not a benchmark metrics.json"),
    ({"summary": []}, "not a benchmark metrics.json"),
    ({"summary": {"original": {"clip": "high"}, "edited": {"clip": 0.2}}}, "original clip is 'high', not a number"),
    ({"num_prompts": "ten"}, "num_prompts is 'ten', not a whole number"),
])
def test_summarize_refuses_a_metrics_file_with_fields_of_the_wrong_type(changes, words, tmp_path, capsys):
    _metrics(tmp_path / "runs" / "a")
    _metrics(tmp_path / "runs" / "b", **changes)
    assert words in _refused("summarize", [str(tmp_path / "runs")], capsys)


def test_summarize_reads_only_files_and_refuses_unreadable_ones(tmp_path, capsys):
    _metrics(tmp_path / "runs" / "a")
    (tmp_path / "runs" / "b" / "metrics.json").mkdir(parents=True)  # a folder of that name is not a run
    load_script("summarize", "benchmarking").main([str(tmp_path / "runs")])
    assert "| concept-prune | 0.2 |" in capsys.readouterr().out
    (tmp_path / "runs" / "c").mkdir()
    (tmp_path / "runs" / "c" / "metrics.json").write_bytes(b"\xff\xfe{")
    assert "cannot be read as text (UnicodeDecodeError)" in _refused("summarize", [str(tmp_path / "runs")], capsys)


def test_summarize_out_never_replaces_a_file_of_the_user_but_its_own(tmp_path, capsys):
    _metrics(tmp_path / "runs" / "a")
    runs = str(tmp_path / "runs")
    assert "is a folder; give a file prefix" in _refused("summarize", [runs, "--out", str(tmp_path) + "/"], capsys)
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    assert "notes.md exists and was not written by summarize.py" in _refused("summarize", [runs, "--out", str(tmp_path / "notes")], capsys)
    assert notes.read_text() == "my notes\n" and not (tmp_path / "notes.csv").exists()
    summarize = load_script("summarize", "benchmarking")
    summarize.main([runs, "--out", str(tmp_path / "table")])
    summarize.main([runs, "--out", str(tmp_path / "table")])  # its own files are replaced
    assert (tmp_path / "table.csv").read_text().startswith("benchmark,subject,target,method,metric")


def test_startup_refuses_no_repeats(capsys):
    assert "--repeats must be a positive integer, got 0" in _refused("startup", ["--repeats", "0"], capsys)


def test_prune_mask_size_checks_its_options_before_building_the_unet_and_keeps_a_real_mask(tmp_path, capsys, monkeypatch):
    module = load_script("prune_mask_size", "benchmarking")
    monkeypatch.setattr(module, "measure", lambda args, folder: pytest.fail("the UNet was built"))
    from utils.errors import run_cli

    for argv, words in ((["--skill_ratio", "nan"], "--skill_ratio must lie strictly between 0 and 1, got nan"),
                        (["--timesteps", "0"], "--timesteps must be a positive integer, got 0")):
        with pytest.raises(SystemExit):
            run_cli(module.main, argv)
        assert words in capsys.readouterr().err
    mine = tmp_path / "pruned"
    mine.mkdir()
    (mine / "prune_mask.safetensors").write_bytes(b"the user's real mask")
    with pytest.raises(SystemExit):
        run_cli(module.main, ["--out", str(mine)])
    assert "exists and was not written by prune_mask_size.py" in capsys.readouterr().err
    assert (mine / "prune_mask.safetensors").read_bytes() == b"the user's real mask"


def test_prune_mask_size_measures_in_a_temporary_folder_that_it_removes(monkeypatch):
    module = load_script("prune_mask_size", "benchmarking")
    seen = []
    monkeypatch.setattr(module, "measure", lambda args, folder: seen.append(folder) or {"mask_bytes": 1})
    assert module.main([]) == {"mask_bytes": 1}
    assert seen and not seen[0].exists()


@pytest.mark.parametrize("script, argv", [
    ("benchmarking/prune_mask_size.py", ["--timesteps", "0"]),
    ("benchmarking/startup.py", ["--repeats", "-1"]),
    ("demo/judge.py", ["--epochs", "0"]),
])
def test_the_scripts_answer_bad_input_with_one_line_on_the_command_line(script, argv, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / script), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr[-400:]
    assert list(tmp_path.iterdir()) == []
