"""The benchmarking/ scripts end to end on tiny models, the harness (seeds, resume, --limit), prompt
sets, summarize.py, and a two-process accelerate run that writes the same metrics.json as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_script
from utils.errors import UsageError
from utils.prompt_sets import load_eval_dataset, read_prompt_file


def bench(name, argv):
    run_script(name, argv, folder="benchmarking")


@pytest.fixture(scope="session")
def strong_mask(mini_sd_dir, tmp_path_factory):
    """A prune mask zeroing every other output row of each FFN's ff.net.2 in the mini model (images change)."""
    import torch

    from utils.model_loading import load_pipeline
    from utils.pruning import save_prune_mask

    pipe = load_pipeline(str(mini_sd_dir), torch.device("cpu"), torch.float32)
    masks = {}
    for name, module in pipe.unet.named_modules():
        if name.endswith("ff.net.2"):
            mask = torch.zeros_like(module.weight, dtype=torch.bool)
            mask[::2] = True
            masks[name] = mask
    path = tmp_path_factory.mktemp("masks") / "strong" / "prune_mask.safetensors"
    save_prune_mask(path, masks, pipe.unet, {"model_id": str(mini_sd_dir), "component": "unet"})
    return path


def common(mini_sd_dir, out, *extra):
    return ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--device", "cpu", "--batch_size", "2", "--out_dir", str(out), *extra]


def read_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def recipe(path: Path) -> dict:
    """What made the image at ``path`` (its recorded recipe)."""
    from utils.bench_harness import read_image

    done, recorded = read_image(path)
    assert done and recorded is not None
    return recorded


@pytest.fixture
def generated(monkeypatch):
    """The harness's pipeline calls, as (prompts, seeds, guidance scale), while still generating."""
    import utils.bench_harness as harness

    calls = []
    real = harness.run_pipeline

    def record(pipe, prompts, seeds, config, *args, **kwargs):
        calls.append((list(prompts), [int(s) for s in seeds], float(config["guidance_scale"])))
        return real(pipe, prompts, seeds, config, *args, **kwargs)

    monkeypatch.setattr(harness, "run_pipeline", record)
    return calls


def test_prompt_files_ecosystem_csv_text_and_errors(tmp_path):
    csv_file = tmp_path / "set.csv"
    csv_file.write_text("case_number,prompt,evaluation_seed,class\n7,a cat,42,tench\n9,\"a dog, running\",5,golf ball\n")
    samples = read_prompt_file(csv_file, default_seed=0)
    assert [(s.key, s.prompt, s.seed, s.extra) for s in samples] == [("7", "a cat", 42, {"class": "tench"}), ("9", "a dog, running", 5, {"class": "golf ball"})]
    mma = tmp_path / "mma.csv"
    mma.write_text("adv_prompt,target\nx y z,nude\n")
    assert [(s.key, s.prompt, s.seed) for s in read_prompt_file(mma, default_seed=3)] == [("0", "x y z", 3)]
    text = tmp_path / "p.txt"
    text.write_text("first\n\nsecond\n")
    assert [s.prompt for s in read_prompt_file(text, 1)] == ["first", "second"]
    for body, message in [
        ("case_number,text_column\n1,a\n", "no prompt column"),
        ("prompt,evaluation_seed\na,1,extra\n", "line 2, column 3: the row has 3 fields, more than the header's 2"),
        ("case_number,prompt\n1,a\n1,b\n", "line 3, column case_number: repeats case_number 1"),
        ("prompt,evaluation_seed\na,notanumber\n", "not an integer"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(body)
        with pytest.raises(UsageError, match=message):
            read_prompt_file(bad, 0)


def test_hub_prompt_sets_offline_say_which_file_to_pass():
    with pytest.raises(UsageError, match="--eval_dataset"):
        load_eval_dataset("i2p", 0)
    with pytest.raises(UsageError, match="Ring-A-Bell"):
        load_eval_dataset("ring-a-bell", 0)
    with pytest.raises(UsageError, match="neither a known set"):
        load_eval_dataset("no-such-set", 0)


def test_artist_benchmark_end_to_end_seeds_grid_and_scores(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, capsys):
    import torch

    from utils.evaluators.clip_judge import ClipJudge
    from utils.generation import run_pipeline
    from utils.model_loading import load_pipeline

    out = tmp_path / "artist"
    bench("artist_erasure", common(mini_sd_dir, out, "--target", "Monet", "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir), "--limit", "3"))
    report = read_metrics(out)
    assert report["format"] == "concept-prune benchmark metrics v1" and report["metric"] == "clip_score"
    assert report["num_prompts"] == 3 and [r["artist"] for r in report["per_prompt"]] == ["Monet"] * 3
    assert set(report["summary"]) == {"original", "edited", "comparison"}
    assert report["models"]["edited"]["mask"]["model_id"] == str(mini_sd_dir)
    assert {"torch", "diffusers", "transformers", "python"} <= set(report["versions"])
    assert (out / "grid.png").is_file() and (out / "config.yaml").is_file()
    assert "clip_score" in capsys.readouterr().out
    first = report["per_prompt"][:2]
    # each image used its prompt's evaluation_seed from the CSV: regenerate the first batch by hand
    pipe = load_pipeline(str(mini_sd_dir), torch.device("cpu"), torch.float32)
    again = run_pipeline(pipe, [r["prompt"] for r in first], [r["seed"] for r in first], {"num_inference_steps": 2, "guidance_scale": 7.5}, output_type="pil")
    seeds = {int(r["seed"]) for r in first}
    assert len(seeds) == 2 and 0 not in seeds
    for record, image in zip(first, again):
        assert np.array_equal(pixels(out / "original" / f"{record['key']}.png"), np.asarray(image, dtype=np.int16))
    # the edit changed the images, and the scores are the judge's on the saved files
    assert any(np.abs(pixels(out / "original" / f"{r['key']}.png") - pixels(out / "edited" / f"{r['key']}.png")).max() > 0 for r in report["per_prompt"])
    judge = ClipJudge(str(tiny_clip_dir), "cpu")
    for side in ("original", "edited"):
        images = [Image.open(out / side / f"{r['key']}.png").convert("RGB") for r in report["per_prompt"]]
        expected = judge.clip_scores(images, [r["prompt"] for r in report["per_prompt"]])
        assert [r[side]["clip_score"] for r in report["per_prompt"]] == pytest.approx(expected, abs=1e-4)
        assert report["summary"][side]["clip_score"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
        assert min(expected) > 0  # the stand-in judge gives real, unclamped scores


def test_resume_skips_images_on_disk_and_limit_extends(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, monkeypatch):
    import utils.bench_harness as harness

    out = tmp_path / "gender"
    argv = common(mini_sd_dir, out, "--target", "male", "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir), "--num_seeds", "2")
    bench("gender_reversal", argv + ["--limit", "3"])
    first = read_metrics(out)
    assert [r["key"] for r in first["per_prompt"]] == ["0_s0", "0_s1", "1_s0"]
    assert first["per_prompt"][1]["seed"] == 1 and first["per_prompt"][0]["prompt"].startswith("a headshot of a ")
    assert {"reversal_rate", "source_images", "reversed"} <= set(first["summary"]["comparison"])

    calls = []
    real = harness.run_pipeline
    monkeypatch.setattr(harness, "run_pipeline", lambda pipe, prompts, *a, **k: calls.append(list(prompts)) or real(pipe, prompts, *a, **k))
    bench("gender_reversal", argv + ["--limit", "3"])
    assert calls == [] and read_metrics(out) == first
    (out / "edited" / "0_s1.png").unlink()
    bench("gender_reversal", argv + ["--limit", "4"])
    # batches are fixed by global index ([0_s0, 0_s1], [1_s0, 1_s1]); only missing images are generated:
    # original 1_s1, then edited 0_s1 and edited 1_s1
    assert [len(batch) for batch in calls] == [1, 1, 1]
    report = read_metrics(out)
    assert report["num_prompts"] == 4
    for new, old in zip(report["per_prompt"], first["per_prompt"]):  # 1_s0 is now scored in a batch of 2: float noise only
        assert new["key"] == old["key"] and new["edited"]["gender"] == old["edited"]["gender"]
        assert new["edited"]["p_male"] == pytest.approx(old["edited"]["p_male"], abs=1e-5)


def test_a_changed_guidance_regenerates_every_image(mini_sd_dir, tmp_path, generated):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a photo of a cat\n")
    out = tmp_path / "nude"
    bench("nudity_eval", common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts)))
    bench("nudity_eval", common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts), "--guidance_scale", "3.0"))
    assert generated == [(["a photo of a cat"], [0], 7.5), (["a photo of a cat"], [0], 3.0)]
    assert recipe(out / "original" / "0.png")["guidance_scale"] == 3.0
    assert read_metrics(out)["per_prompt"][0]["guidance_scale"] == 3.0


def test_nudity_benchmark_with_the_real_nudenet_and_sd_baseline(mini_sd_dir, tmp_path):
    from utils.evaluators.nudity import NUDITY_LABELS

    prompts = tmp_path / "ring.csv"
    prompts.write_text("sensitive prompt,evaluation_seed\na photo of a man,3\na photo of a woman,4\n")
    out = tmp_path / "nudity"
    bench("nudity_eval", common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts), "--nudity_threshold", "0.6"))
    report = read_metrics(out)
    assert report["subject"] == "ring" and report["target"] == "naked" and report["models"]["evaluator"]["threshold"] == 0.6
    assert list(report["summary"]["original"]["counts"]) == list(NUDITY_LABELS)
    assert not (out / "edited").exists()  # the unedited model is generated once
    assert all(r["original"] == r["edited"] and isinstance(r["original"]["labels"], list) for r in report["per_prompt"])
    assert report["summary"]["original"]["num_images"] == 2


def test_object_benchmark_keep_mode_with_a_local_resnet50(mini_sd_dir, strong_mask, tmp_path):
    from utils.evaluators.object_classifier import IMAGENETTE_CLASSES
    from utils.tiny_evaluators import save_random_resnet50

    weights = save_random_resnet50(tmp_path / "resnet50.safetensors")
    out = tmp_path / "objects"
    bench("object_erase", common(mini_sd_dir, out, "--target", "parachute", "--removal_mode", "keep", "--ckpt_name", str(strong_mask), "--classifier_weights", str(weights), "--limit", "3"))
    report = read_metrics(out)
    assert report["subject"] == "parachute-keep" and all(r["class"] != "parachute" for r in report["per_prompt"])
    for record in report["per_prompt"]:
        for side in ("original", "edited"):
            assert 0 <= record[side]["prediction"] < 1000
            assert record[side]["correct"] == (record[side]["prediction"] == IMAGENETTE_CLASSES[record["class"]])
    correct = [float(r["edited"]["correct"]) for r in report["per_prompt"]]
    assert report["summary"]["edited"]["accuracy"] == pytest.approx(sum(correct) / 3)


def test_coco_and_memorization_benchmarks(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, monkeypatch):
    from utils.tiny_evaluators import save_tiny_sscd

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no FID weights in the cache: FID is skipped

    captions = tmp_path / "captions.txt"
    captions.write_text("a bus on a street\na plate of food\n")
    real = tmp_path / "coco"
    real.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(real / f"{i}.jpg")
    out = tmp_path / "coco-run"
    bench("eval_coco", common(mini_sd_dir, out, "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir), "--coco_captions", str(captions), "--coco_images", str(real)))
    report = read_metrics(out)
    assert report["num_prompts"] == 2 and report["summary"]["edited"]["fid"] is None
    assert "fid_weights" in report["summary"]["comparison"]["fid_note"]

    memorized = tmp_path / "mem"
    memorized.mkdir()
    (memorized / "prompts.csv").write_text("case_number,prompt\n0,a famous poster\n1,another poster\n")
    for case in ("0", "1"):
        Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(memorized / f"{case}.png")
    sscd = save_tiny_sscd(tmp_path / "sscd.pt")
    out = tmp_path / "mem-run"
    bench("inference_mem", common(mini_sd_dir, out, "--target", "memorize_1", "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir), "--dataset_path", str(memorized), "--sscd_model", str(sscd), "--num_seeds", "2"))
    report = read_metrics(out)
    assert [r["key"] for r in report["per_prompt"]] == ["1_s0", "1_s1"]
    assert all(-1.0 - 1e-5 <= r["edited"]["sscd"] <= 1.0 + 1e-5 for r in report["per_prompt"])
    per_case = report["summary"]["edited"]["per_case"]["1"]["sscd"]
    assert per_case == pytest.approx(np.mean([r["edited"]["sscd"] for r in report["per_prompt"]]))


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("artist_erasure", ["--target", "Rembrandt"], "no prompts for artist(s) Rembrandt"),
        ("object_erase", ["--target", "zebra"], "unknown object 'zebra'"),
        ("gender_reversal", ["--target", "robot"], "must be male or female"),
        ("nudity_eval", ["--baseline", "magic"], "unknown --baseline 'magic'"),
        ("nudity_eval", ["--baseline", "uce"], "needs the edited model"),
        ("nudity_eval", ["--baseline", "esd", "--ckpt_name", "nowhere.pt"], "does not exist"),
        ("eval_coco", ["--baseline", "sd"], "pass the COCO captions"),
        ("inference_mem", ["--target", "memorize_0", "--baseline", "sd"], "SSCD torchscript"),
        ("gender_reversal", ["--target", "male", "--seed", "4294967295", "--num_seeds", "2"], "seed 4294967296 is outside"),
    ],
)
def test_bad_benchmark_input_is_one_sentence_and_exit_2(script, argv, message, mini_sd_dir, strong_mask, tmp_path, capsys):
    extra = [] if "--baseline" in argv else ["--ckpt_name", str(strong_mask)]
    with pytest.raises(SystemExit) as exit_info:
        bench(script, ["--model_id", str(mini_sd_dir), "--out_dir", str(tmp_path / "out"), *extra, *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_summarize_builds_the_comparison_tables(mini_sd_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    for method, subject, before, after in [("concept-prune", "Van Gogh", 30.0, 20.0), ("uce", "Van Gogh", 30.0, 25.0), ("concept-prune", "Monet", 31.0, 22.0)]:
        folder = runs / method / subject
        folder.mkdir(parents=True)
        report = {"benchmark": "artist_erasure", "subject": subject, "target": subject, "method": method, "ckpt_name": f"{method}.safetensors",
                  "metric": "clip_score", "summary": {"original": {"clip_score": before}, "edited": {"clip_score": after}}, "num_prompts": 50, "models": {"original": "m"}}
        (folder / "metrics.json").write_text(json.dumps(report))
    bench("summarize", [str(runs), "--out", str(tmp_path / "table")])
    markdown = (tmp_path / "table.md").read_text()
    assert "| method | Monet | Van Gogh |" in markdown
    assert "| original | 31 | 30 |" in markdown and "| concept-prune-concept-prune | 22 | 20 |" in markdown and "| uce-uce | – | 25 |" in markdown
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines[0].startswith("benchmark,subject,target,method,metric,original,edited,change") and len(lines) == 4
    assert "-10.0" in (tmp_path / "table.csv").read_text()


def test_two_processes_write_the_metrics_of_one(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path):
    """accelerate launch with 2 processes (CPU, gloo) gives the same metrics.json as a plain run."""
    argv = ["--target", "female", "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir), "--num_seeds", "1", "--limit", "5"]
    # torchrun (under accelerate launch) gives each process OMP_NUM_THREADS=1; CPU kernels round
    # differently with other thread counts, so the one-process run uses one thread too.
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    script = str(REPO / "benchmarking" / "gender_reversal.py")
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, script, *common(mini_sd_dir, one, *argv)], check=True, env=env, capture_output=True)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = subprocess.run([*launch, script, *common(mini_sd_dir, two, *argv)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (one / "metrics.json").read_text() == (two / "metrics.json").read_text().replace(str(two), str(one))
    assert sorted(p.name for p in (two / "edited").iterdir()) == sorted(p.name for p in (one / "edited").iterdir())


def test_the_torch_free_method_list_matches_the_loaders():
    from utils.baselines import METHODS
    from utils.bench_config import METHOD_NAMES

    assert sorted(METHOD_NAMES) == sorted(METHODS)


# ---------------------------------------------------------------- issue 21: bad input is refused before the first image


@pytest.fixture
def no_generation(monkeypatch):
    """Make any image generation fail the test: a refusal must come before the first image."""
    import utils.bench_harness as harness

    def fail(*args, **kwargs):
        raise AssertionError("an image was generated before the input was refused")

    monkeypatch.setattr(harness, "run_pipeline", fail)


def refused(script, argv, message, capsys):
    """Run ``script`` expecting exit 2 with one line naming ``message``; return the line."""
    with pytest.raises(SystemExit) as exit_info:
        bench(script, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err
    return err


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("case", ["../../escaped", "/tmp/concept-prune-escaped"])
def test_a_case_number_outside_the_run_folder_is_refused_and_nothing_is_written(case, mini_sd_dir, tmp_path, capsys, no_generation):
    prompts = tmp_path / "set.csv"
    prompts.write_text(f"case_number,prompt,evaluation_seed\n{case},a cat,1\n")
    out = tmp_path / "runs" / "deep" / "run"
    before = files_under(tmp_path)
    refused("nudity_eval", common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts)), "line 2, column case_number: case_number", capsys)
    assert files_under(tmp_path) == before and not Path("/tmp/concept-prune-escaped.png").exists()


def test_image_names_stay_inside_the_run_folder_and_are_distinct(tmp_path):
    from utils.bench_harness import check_keys, image_path
    from utils.prompt_sets import Sample

    folder = tmp_path / "original"
    assert image_path(folder, Sample(0, "7_s1", "7", "p", 1)) == folder / "7_s1.png"
    for key in ("../x", "/abs/x", "a/../../b", ".."):
        with pytest.raises(UsageError, match="would lie outside"):
            image_path(folder, Sample(0, key, key, "p", 0))
    with pytest.raises(UsageError, match="would share the image B.png"):
        check_keys([Sample(0, "b", "b", "p", 0), Sample(1, "B", "B", "p", 0)])


def _truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _edit(kind: str, strong_mask: Path, tmp_path: Path) -> tuple[list[str], str]:
    """(--baseline/--ckpt_name arguments, expected message) of a bad edit."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    if kind == "truncated mask":
        return ["--ckpt_name", str(_truncated(strong_mask, tmp_path / "cut.safetensors"))], "could not be read as a prune mask"
    if kind == "pickled mask":
        torch.save({"x": torch.ones(2, dtype=torch.bool)}, tmp_path / "mask.pt")
        return ["--ckpt_name", str(tmp_path / "mask.pt")], "is not a prune_mask.safetensors file"
    if kind == "float mask":
        with safe_open(str(strong_mask), framework="pt") as handle:
            meta, masks = handle.metadata(), {k: handle.get_tensor(k).float() for k in handle.keys()}
        save_file(masks, str(tmp_path / "float.safetensors"), metadata=meta)
        return ["--ckpt_name", str(tmp_path / "float.safetensors")], "bool"
    if kind == "mask naming another layer":
        with safe_open(str(strong_mask), framework="pt") as handle:
            meta, masks = handle.metadata(), {f"{k}.other": handle.get_tensor(k) for k in handle.keys()}
        save_file(masks, str(tmp_path / "other.safetensors"), metadata=meta)
        return ["--ckpt_name", str(tmp_path / "other.safetensors")], "does not have; use the model the mask was made for"
    if kind == "uce of another shape":
        save_file({"conv_in.weight": torch.zeros(1, 1)}, str(tmp_path / "uce.safetensors"))
        return ["--baseline", "uce", "--ckpt_name", str(tmp_path / "uce.safetensors")], "has shape (1, 1)"
    if kind == "truncated esd":
        torch.save({"conv_in.weight": torch.zeros(64, 64)}, tmp_path / "esd-full.pt")
        return ["--baseline", "esd", "--ckpt_name", str(_truncated(tmp_path / "esd-full.pt", tmp_path / "esd.pt"))], "could not be read as a torch checkpoint"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated mask", "pickled mask", "float mask", "mask naming another layer", "uce of another shape", "truncated esd"])
def test_a_bad_edit_is_refused_before_the_first_image(kind, mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, capsys, no_generation):
    edit, message = _edit(kind, strong_mask, tmp_path)
    out = tmp_path / "run"
    refused("artist_erasure", common(mini_sd_dir, out, "--target", "Monet", "--clip_model", str(tiny_clip_dir), "--limit", "1", *edit), message, capsys)
    assert not out.exists()


def test_a_mask_of_another_model_is_refused_before_the_first_image(tiny_sd_dir, strong_mask, tiny_clip_dir, tmp_path, capsys, no_generation):
    out = tmp_path / "run"
    argv = common(tiny_sd_dir, out, "--target", "Monet", "--clip_model", str(tiny_clip_dir), "--limit", "1", "--ckpt_name", str(strong_mask))
    refused("artist_erasure", argv, "use the model the mask was made for", capsys)
    assert not out.exists()


def test_a_bad_judge_is_refused_before_the_first_image(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, capsys, no_generation):
    out = tmp_path / "run"
    base = ["--ckpt_name", str(strong_mask), "--limit", "1"]
    refused("artist_erasure", common(mini_sd_dir, out, "--target", "Monet", "--clip_model", str(tmp_path / "no-clip"), *base), "could not load the CLIP model", capsys)
    garbage = tmp_path / "resnet.safetensors"
    garbage.write_bytes(b"not weights")
    refused("object_erase", common(mini_sd_dir, out, "--target", "parachute", "--classifier_weights", str(garbage), *base), "could not load", capsys)
    captions = tmp_path / "captions.txt"
    captions.write_text("a bus\n")
    coco = tmp_path / "coco"
    coco.mkdir()
    Image.new("RGB", (8, 8)).save(coco / "0.png")
    coco_argv = common(mini_sd_dir, out, "--clip_model", str(tiny_clip_dir), "--coco_captions", str(captions), "--coco_images", str(coco), *base)
    refused("eval_coco", coco_argv, "fewer than 2", capsys)
    Image.new("RGB", (8, 8)).save(coco / "1.png")
    _truncated(coco / "1.png", coco / "2.png")
    refused("eval_coco", coco_argv, "2.png could not be read", capsys)
    (coco / "2.png").unlink()
    refused("eval_coco", coco_argv + ["--fid_weights", str(tmp_path / "missing.pth")], "--fid_weights: FID Inception weights file", capsys)
    assert not out.exists()


def test_an_out_dir_that_is_a_file_or_a_foreign_folder_is_refused_and_left_alone(mini_sd_dir, tmp_path, capsys, no_generation):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    argv = ["--baseline", "sd", "--eval_dataset", str(prompts)]
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    refused("nudity_eval", common(mini_sd_dir, mine, *argv), "is a file, not a folder", capsys)
    refused("nudity_eval", common(mini_sd_dir, mine / "run", *argv), "is a file, not a folder", capsys)
    assert mine.read_text() == "mine"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "metrics.json").write_text("my own")
    refused("nudity_eval", common(mini_sd_dir, folder, *argv), "holds other files and no config.yaml", capsys)
    assert [p.name for p in folder.iterdir()] == ["metrics.json"] and (folder / "metrics.json").read_text() == "my own"
    from utils.bench_harness import check_run_dir

    (tmp_path / "finder").mkdir()
    (tmp_path / "finder" / ".DS_Store").write_text("")
    check_run_dir(tmp_path / "finder")  # a folder with only hidden entries counts as empty


def test_only_a_run_folder_of_another_benchmark_is_refused(tmp_path):
    from utils.bench_harness import _check_resume
    from utils.config import dump_yaml

    settings = {"model_id": "m", "baseline": "sd", "benchmark": "artist_erasure", "subject": "Monet", "seed": 0, "prompts": "a.csv"}
    (tmp_path / "config.yaml").write_text(dump_yaml(settings))
    for key, value in [("prompts", "b.csv"), ("seed", 3), ("subject", "Van Gogh"), ("guidance_scale", 3.0)]:
        _check_resume(tmp_path, dict(settings, **{key: value}))  # the images record what made them: regenerated, not refused
    with pytest.raises(UsageError, match="holds a run of another benchmark \\(artist_erasure\\)"):
        _check_resume(tmp_path, dict(settings, benchmark="nudity_eval"))
    (tmp_path / "config.yaml").write_text("[unclosed")
    with pytest.raises(UsageError, match="is not the config.yaml of a benchmark run"):
        _check_resume(tmp_path, dict(settings))


def test_a_damaged_image_is_made_again_on_resume(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, monkeypatch):
    import utils.bench_harness as harness

    out = tmp_path / "artist"
    argv = common(mini_sd_dir, out, "--target", "Monet", "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir), "--limit", "2")
    bench("artist_erasure", argv)
    first = read_metrics(out)
    keys = [r["key"] for r in first["per_prompt"]]
    intact = {side: (out / side / f"{keys[1]}.png").read_bytes() for side in ("original", "edited")}
    for side in ("original", "edited"):  # a kill in the middle of writing
        _truncated(out / side / f"{keys[1]}.png", out / side / f"{keys[1]}.png")
    calls = []
    real = harness.run_pipeline
    monkeypatch.setattr(harness, "run_pipeline", lambda pipe, prompts, *a, **k: calls.append(list(prompts)) or real(pipe, prompts, *a, **k))
    bench("artist_erasure", argv)
    assert calls == [[first["per_prompt"][1]["prompt"]]] * 2  # only the damaged image, once per model
    assert {side: (out / side / f"{keys[1]}.png").read_bytes() for side in ("original", "edited")} == intact
    assert read_metrics(out)["per_prompt"] == first["per_prompt"]


def test_the_judge_names_an_image_it_cannot_read(tmp_path):
    from utils.bench_metrics import open_images

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnope")
    with pytest.raises(UsageError, match="broken.png could not be read"):
        open_images([broken])


def test_a_benchmark_config_value_of_the_wrong_type_is_one_sentence(mini_sd_dir, strong_mask, tmp_path, capsys, no_generation):
    config = tmp_path / "bench.yaml"
    for line, message in [("limit: abc", "limit must be an integer"), ("nudity_threshold: high", "nudity_threshold must be a number"), ("grid_rows: 1.5", "grid_rows must be an integer")]:
        config.write_text(line + "\n")
        refused("nudity_eval", common(mini_sd_dir, tmp_path / "out", "--config", str(config), "--ckpt_name", str(strong_mask)), message, capsys)
    assert not (tmp_path / "out").exists()


def test_an_object_prompt_set_row_without_a_class_is_one_sentence(mini_sd_dir, strong_mask, tmp_path, capsys, no_generation):
    prompts = tmp_path / "objects.csv"
    prompts.write_text("case_number,prompt,class\n0,a fish,tench\n1,a thing\n")
    refused("object_erase", common(mini_sd_dir, tmp_path / "out", "--target", "tench", "--prompts", str(prompts), "--ckpt_name", str(strong_mask)), "objects.csv line 3, column class: the row has 2 fields", capsys)


# ---------------------------------------------------------------- issue 22, item 2: every image records what made it


def test_captions_a_then_b_in_one_folder_regenerate_the_changed_captions(mini_sd_dir, strong_mask, tiny_clip_dir, tmp_path, generated, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("a bus on a street\na plate of food\n")
    second.write_text("a cat on a sofa\na plate of food\n")
    out = tmp_path / "coco"
    argv = common(mini_sd_dir, out, "--ckpt_name", str(strong_mask), "--clip_model", str(tiny_clip_dir))
    bench("eval_coco", argv + ["--coco_captions", str(first)])
    generated.clear()
    bench("eval_coco", argv + ["--coco_captions", str(second)])
    # only case 0 changed its caption: it is made again by both models; case 1 is reused
    assert generated == [(["a cat on a sofa"], [0], 7.5)] * 2
    for side in ("original", "edited"):
        assert recipe(out / side / "0.png")["prompt"] == "a cat on a sofa"
    assert [r["prompt"] for r in read_metrics(out)["per_prompt"]] == ["a cat on a sofa", "a plate of food"]


def test_seed_5_after_seed_0_regenerates_and_records_the_seed(mini_sd_dir, tmp_path, generated):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\na dog\n")
    out = tmp_path / "nude"
    argv = common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts))
    bench("nudity_eval", argv)
    seed_0 = pixels(out / "original" / "0.png")
    bench("nudity_eval", argv + ["--seed", "5"])
    assert generated == [(["a cat", "a dog"], [0, 0], 7.5), (["a cat", "a dog"], [5, 5], 7.5)]
    assert recipe(out / "original" / "1.png")["seed"] == 5 and np.abs(pixels(out / "original" / "0.png") - seed_0).max() > 0
    assert [r["seed"] for r in read_metrics(out)["per_prompt"]] == [5, 5]
    bench("nudity_eval", argv + ["--seed", "5"])
    assert len(generated) == 2  # all of it matches now: nothing is made again


def test_a_prompt_changed_under_the_same_case_number_and_file_is_regenerated(mini_sd_dir, tmp_path, generated):
    prompts = tmp_path / "set.csv"
    prompts.write_text("case_number,prompt,evaluation_seed\n7,a cat,1\n8,a dog,2\n")
    out = tmp_path / "nude"
    argv = common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts))
    bench("nudity_eval", argv)
    prompts.write_text("case_number,prompt,evaluation_seed\n7,a cat,1\n8,a red dog,2\n")
    generated.clear()
    bench("nudity_eval", argv)
    assert generated == [(["a red dog"], [2], 7.5)]
    assert recipe(out / "original" / "8.png")["prompt"] == "a red dog" and recipe(out / "original" / "7.png")["prompt"] == "a cat"


def _other_mask(strong_mask: Path, target: Path) -> Path:
    """A copy of ``strong_mask`` that prunes the other rows (same metadata, other content)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(strong_mask), framework="pt") as handle:
        meta, masks = handle.metadata(), {k: ~handle.get_tensor(k) for k in handle.keys()}
    save_file(masks, str(target), metadata=meta)
    return target


def test_another_edit_file_regenerates_the_edited_images_only(mini_sd_dir, strong_mask, tmp_path, generated):
    import shutil

    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    out = tmp_path / "nude"
    argv = common(mini_sd_dir, out, "--eval_dataset", str(prompts))
    bench("nudity_eval", argv + ["--ckpt_name", str(strong_mask)])
    assert len(generated) == 2
    copy = shutil.copy(strong_mask, tmp_path / "copy.safetensors")
    bench("nudity_eval", argv + ["--ckpt_name", str(copy)])
    assert len(generated) == 2  # the same mask under another path: same content, reused
    other = _other_mask(strong_mask, tmp_path / "other.safetensors")
    bench("nudity_eval", argv + ["--ckpt_name", str(other)])
    assert len(generated) == 3  # the edited image only; the original is reused
    made = recipe(out / "edited" / "0.png")
    assert made["edit_file"] == str(other) and made["method"] == "concept-prune" and len(made["edit_digest"]) == 64
    assert recipe(out / "original" / "0.png")["edit_digest"] is None


def test_the_recipe_names_every_setting_and_a_missing_record_is_regenerated(mini_sd_dir, tmp_path, generated):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    out = tmp_path / "nude"
    argv = common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts))
    bench("nudity_eval", argv)
    made = recipe(out / "original" / "0.png")
    assert {k: made[k] for k in ("prompt", "seed", "guidance_scale", "num_inference_steps", "height", "width", "dtype", "device", "model_id")} == {
        "prompt": "a cat", "seed": 0, "guidance_scale": 7.5, "num_inference_steps": 2, "height": None, "width": None,
        "dtype": "float32", "device": "cpu", "model_id": str(mini_sd_dir)}
    assert len(made["model_digest"]) == 64 and made["method"] == "sd"
    Image.open(out / "original" / "0.png").save(out / "original" / "0.png")  # the same pixels, no record (an older run's image)
    bench("nudity_eval", argv)
    assert len(generated) == 2


def test_recipe_differences_compare_content_when_both_digests_are_known():
    from utils.bench_harness import recipe_differences

    new = {"prompt": "a", "seed": 0, "model_id": "/x/model", "model_digest": "d1", "edit_file": "m.safetensors", "edit_digest": "e1"}
    assert recipe_differences(dict(new, model_id="/y/model", edit_file="n.safetensors"), new) == []
    assert recipe_differences(dict(new, model_digest="d2"), new) == ["model_digest"]
    assert recipe_differences(dict(new, model_digest=None, model_id="/y/model"), new) == ["model_id"]
    assert recipe_differences(dict(new, seed=5, prompt="b"), new) == ["prompt", "seed"]
    assert recipe_differences(None, new) == ["recipe"]


# ---------------------------------------------------------------- issue 22, items 3 and 4: per-prompt guidance, malformed files


@pytest.mark.parametrize(
    "body, message",
    [
        ('case_number,prompt,evaluation_seed\n0,"unterminated,1\n1,ok,notanumber\n', "line 2, column prompt: a quoted field is not closed properly"),
        ("case_number,prompt,evaluation_seed\n0,a cat,1\n1,ok,notanumber\n", "line 3, column evaluation_seed: seed 'notanumber' is not an integer"),
        ("case_number,caption_text,evaluation_seed\n0,a cat,1\n", "line 1 has no prompt column"),
        ("case_number,prompt,evaluation_seed\n", "holds no prompts"),
    ],
)
def test_a_malformed_prompt_file_exits_2_and_nothing_is_generated_or_written(body, message, mini_sd_dir, tmp_path, capsys, no_generation):
    prompts = tmp_path / "set.csv"
    prompts.write_text(body)
    out = tmp_path / "run"
    err = refused("nudity_eval", common(mini_sd_dir, out, "--baseline", "sd", "--eval_dataset", str(prompts)), message, capsys)
    assert str(prompts) in err and not out.exists()


def test_the_paper_artist_csv_is_generated_with_its_own_guidance(mini_sd_dir, tiny_clip_dir, tmp_path, generated):
    prompts = tmp_path / "test_monet.csv"
    prompts.write_text(",Unnamed: 0,prompt,evaluation_seed,evaluation_guidance,artists\n"
                       "0,0,Water Lilies by Claude Monet,11,3.0,Claude Monet\n1,1,Impression Sunrise by Claude Monet,12,7.5,Claude Monet\n"
                       "2,2,Haystacks by Claude Monet,13,3.0,Claude Monet\n3,3,The Magpie by Claude Monet,14,,Claude Monet\n")
    out = tmp_path / "artist"
    argv = common(mini_sd_dir, out, "--target", "Monet", "--baseline", "sd", "--prompts", str(prompts), "--clip_model", str(tiny_clip_dir))
    bench("artist_erasure", argv)
    report = read_metrics(out)
    # batches of 2 by global index, each split by guidance; the prompt without one takes the config's 7.5
    assert [(seeds, g) for _, seeds, g in generated] == [([11], 3.0), ([12], 7.5), ([13], 3.0), ([14], 7.5)]
    assert [r["guidance_scale"] for r in report["per_prompt"]] == [3.0, 7.5, 3.0, 7.5]
    assert [recipe(out / "original" / f"{k}.png")["guidance_scale"] for k in "0123"] == [3.0, 7.5, 3.0, 7.5]
    assert report["per_prompt"][0]["artists"] == "Claude Monet" and report["settings"]["guidance_source"].startswith("prompt set")
    generated.clear()
    bench("artist_erasure", argv + ["--guidance_scale", "7.5"])  # typed: it wins over the file's, so the 3.0 images are made again
    assert generated == [(["Water Lilies by Claude Monet"], [11], 7.5), (["Haystacks by Claude Monet"], [13], 7.5)]
    report = read_metrics(out)
    assert [r["guidance_scale"] for r in report["per_prompt"]] == [7.5] * 4 and report["settings"]["guidance_source"] == "guidance_scale"


def test_a_typed_guidance_scale_overrides_the_prompt_sets_own():
    from utils.bench_harness import by_guidance, run_settings, sample_guidance
    from utils.prompt_sets import Sample

    samples = [Sample(0, "0", "0", "a", 1, {}, 3.0), Sample(1, "1", "1", "b", 2, {}, 7.5), Sample(2, "2", "2", "c", 3, {}, 3.0), Sample(3, "3", "3", "d", 4)]
    from_file = {"guidance_scale": 5.0}
    typed = {"guidance_scale": 5.0, "typed_options": ["guidance_scale", "seed"]}
    assert [sample_guidance(s, from_file) for s in samples] == [3.0, 7.5, 3.0, 5.0]
    assert [(g, [s.key for s in group]) for g, group in by_guidance(samples, from_file)] == [(3.0, ["0", "2"]), (7.5, ["1"]), (5.0, ["3"])]
    assert [sample_guidance(s, typed) for s in samples] == [5.0] * 4 and len(by_guidance(samples, typed)) == 1
    assert run_settings(typed, samples)["guidance_source"] == "guidance_scale"
    assert "protocol" not in run_settings(from_file, samples) and run_settings(dict(from_file, protocol="paper"), samples)["protocol"] == "paper"


def test_metrics_name_the_prompt_set_by_file_and_content(tmp_path):
    from utils.bench_harness import prompt_set_identity

    captions = tmp_path / "captions_a.csv"
    captions.write_text("case_number,prompt\n0,a cat\n")
    first = prompt_set_identity({"coco_captions": str(captions)})
    assert (first["name"], first["source"]) == ("captions_a.csv", "coco_captions") and len(first["sha256"]) == 64
    captions.write_text("case_number,prompt\n0,a dog\n")
    assert prompt_set_identity({"coco_captions": str(captions)})["sha256"] != first["sha256"]
    assert prompt_set_identity({"prompts": str(captions), "eval_dataset": "i2p"})["source"] == "prompts"  # --prompts wins
    assert prompt_set_identity({"eval_dataset": "i2p"}) == {"name": "i2p", "source": "eval_dataset"}
    (tmp_path / "mem").mkdir()
    (tmp_path / "mem" / "prompts.csv").write_text("case_number,prompt\n0,x\n")
    assert prompt_set_identity({"dataset_path": str(tmp_path / "mem")})["name"] == "mem"
    assert prompt_set_identity({}) == {"name": "default"}
