"""The four wanda/ scripts end to end on tiny offline models, norm reuse, and every bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_script
from utils.norms_store import load_norms
from utils.pruning import load_prune_mask
from utils.skilled import union_masks
from utils.storage import read_metadata

PAIRS = (["a photo of a cat", "a photo of a house"], ["a cat in the style of stripes", "a house in the style of stripes"])


@pytest.fixture
def custom(prompt_files, tiny_sd_dir, tmp_path):
    base, target = prompt_files(*PAIRS)
    res = tmp_path / "results"
    common = ["--model_id", str(tiny_sd_dir), "--num_inference_steps", "3", "--res_path", str(res), "--target", "stripes",
              "--base_prompts", base, "--target_prompts", target]
    return common, res / "tiny-sd" / "stripes"


def unet_weights(model_dir):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet")
    return {n: m.weight.detach() for n, m in unet.named_modules() if n.endswith(".ff.net.2")}


def test_steps_1_2_3_end_to_end(custom, tiny_sd_dir, capsys):
    common, out = custom
    run_script("wanda", common + ["--skill_ratio", "0.05"])
    norms_file = out / "activation_norms.safetensors"
    meta = read_metadata(norms_file)
    assert meta["num_steps"] == 4 and meta["complete"] and len(meta["layers"]) == 16
    assert meta["fingerprint"]["prompts"][0] == ["a photo of a cat", "a cat in the style of stripes", 0]
    assert meta["config"]["skill_ratio"] == 0.05
    assert "\nskill_ratio: 5.0e-02\n" in (out / "record_config.yaml").read_text()  # the top-level key, as 1.0e-02-style text
    assert sorted(p.name for p in (out / "preview").iterdir()) == ["pair_000_base.png", "pair_000_target.png", "pair_001_base.png", "pair_001_target.png"]
    counts = json.loads((out / "skilled_counts.json").read_text())
    assert len(counts["skilled_per_step"]) == 4 and all(c > 0 for c in counts["skilled_per_step"])

    # step 2: before | after images; the per-step removal changes the target images
    run_script("remove_neurons", common + ["--skill_ratio", "0.05"])
    assert "reusing" in capsys.readouterr().err
    images = sorted((out / "removal" / "sr0.05_tauall_sel0").glob("pair_*.png"))
    assert len(images) == 2
    for path in images:
        pixels = np.asarray(Image.open(path)).astype(int)
        half = (pixels.shape[1] - 4) // 2
        assert np.abs(pixels[:, :half] - pixels[:, half + 4 :]).mean() > 0.5

    # step 3: the saved mask equals the union computed from the stored norms and the weights
    run_script("save_union_over_time", common + ["--skill_ratio", "0.05", "--timesteps", "3", "--export_diffusers", str(out / "exported")])
    masks, meta = load_prune_mask(out / "pruned" / "sr0.05_tau3_sel0" / "prune_mask.safetensors")
    assert meta["model_id"] == str(tiny_sd_dir) and meta["timesteps"] == 3 and meta["component"] == "unet"
    norms, _ = load_norms(norms_file)
    expected = union_masks(unet_weights(tiny_sd_dir), norms, 0.05, 3)
    assert set(masks) == {f"{k}.weight" for k in expected}
    assert all(torch.equal(masks[f"{k}.weight"], m) for k, m in expected.items())
    assert meta["num_pruned"] == sum(int(m.sum()) for m in expected.values()) > 0
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(out / "exported"))
    weight = dict(unet.named_modules())[next(iter(expected))].weight
    assert (weight[expected[next(iter(expected))]] == 0).all()


def test_stale_norms_are_recomputed(custom, prompt_files, capsys):
    common, out = custom
    run_script("wanda", common + ["--timesteps", "2"])
    assert read_metadata(out / "activation_norms.safetensors")["num_steps"] == 2
    run_script("wanda", common + ["--timesteps", "2"])
    assert "reusing" in capsys.readouterr().err
    run_script("wanda", common + ["--timesteps", "2", "--guidance_scale", "5.0"])
    assert "different guidance_scale" in capsys.readouterr().err
    run_script("wanda", common + ["--timesteps", "2", "--seed", "1"])
    assert "different guidance_scale, prompts" in capsys.readouterr().err  # the seeds live with the prompts
    run_script("save_union_over_time", common + ["--timesteps", "3", "--seed", "1"])  # more steps than stored
    assert "cover 2 steps, 3 are needed" in capsys.readouterr().err
    base, target = prompt_files(["a dog"], ["a dog in the style of stripes"])
    changed = [a if a not in (common[-3], common[-1]) else (base if a == common[-3] else target) for a in common]
    run_script("wanda", changed + ["--timesteps", "2", "--seed", "1"])
    assert "different prompts" in capsys.readouterr().err
    assert read_metadata(out / "activation_norms.safetensors")["fingerprint"]["prompts"] == [["a dog", "a dog in the style of stripes", 1]]


def test_batched_truncated_masks_equal_one_at_a_time_full_runs(custom, tmp_path):
    common, _ = custom
    batched = common + ["--batch_size", "2", "--timesteps", "3", "--res_path", str(tmp_path / "a")]
    single = common + ["--batch_size", "1", "--res_path", str(tmp_path / "b")]
    run_script("wanda", single)  # records all 4 calls, one pair per pipeline call
    run_script("save_union_over_time", batched)  # records only 3 calls, both pairs in one batch
    run_script("save_union_over_time", single + ["--timesteps", "3"])
    a, _ = load_prune_mask(tmp_path / "a" / "tiny-sd" / "stripes" / "pruned" / "sr0.01_tau3_sel0" / "prune_mask.safetensors")
    b, _ = load_prune_mask(tmp_path / "b" / "tiny-sd" / "stripes" / "pruned" / "sr0.01_tau3_sel0" / "prune_mask.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sum(int(m.sum()) for m in a.values()) > 0


def test_multi_concept_union_is_the_or_of_each_concepts_mask(mini_sd_dir, tmp_path):
    res = tmp_path / "r"
    common = ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--res_path", str(res), "--batch_size", "10"]
    run_script("multi_concept_union", common + ["--targets", "Van Gogh", "parachute"])
    masks, meta = load_prune_mask(res / "mini-sd" / "multi" / "van_gogh+parachute" / "prune_mask.safetensors")
    assert meta["targets"] == ["Van Gogh", "parachute"]
    assert meta["per_target"] == {"Van Gogh": {"skill_ratio": 0.01, "timesteps": 3, "select_ratio": 0.0},
                                  "parachute": {"skill_ratio": 0.02, "timesteps": 3, "select_ratio": 0.0}}
    weights = unet_weights(mini_sd_dir)
    expected = None
    for target, ratio in (("van_gogh", 0.01), ("parachute", 0.02)):
        norms, norms_meta = load_norms(res / "mini-sd" / target / "activation_norms.safetensors")
        assert norms_meta["num_steps"] == 3  # paper tau 10 capped at the 3 UNet calls
        one = union_masks(weights, norms, ratio, 3)
        expected = one if expected is None else {k: expected[k] | one[k] for k in one}
    assert all(torch.equal(masks[f"{k}.weight"], m) for k, m in expected.items())


BAD_INPUTS = [
    (["--target", "Rembrandt"], "unknown target 'Rembrandt'; choose one of Van Gogh, Monet"),
    (["--target", "x", "--base_prompts", "{two}", "--target_prompts", "{one}"], "has 2 prompts but --target_prompts has 1"),
    (["--target", "x", "--base_prompts", "{empty}", "--target_prompts", "{empty}"], "at least one prompt"),
    (["--target", "x", "--base_prompts", "/no/such.txt", "--target_prompts", "{one}"], "does not exist"),
    (["--target", "memorize_3"], "not found as a path or as datasets/memorize_3.txt"),
    (["--target", "naked", "--skill_ratio", "1.0"], "strictly between 0 and 1"),
    (["--target", "naked", "--skill_ratio", "-0.1"], "strictly between 0 and 1"),
    (["--target", "naked", "--config", "{badyaml}"], "unknown key(s) skil_ratio"),
    (["--target", "naked", "--model_id", "/no/such/model"], "does not exist"),
    ([], "no concept given; pass --target: a demo-world value on the demo model (e.g. stripes, circle)"),
    (["--target", "Van Gogh"], "'Van Gogh' is a concept of the paper's Stable Diffusion models, but the model is the demo model"),
]


@pytest.mark.parametrize("script", ["wanda", "remove_neurons", "save_union_over_time"])
@pytest.mark.parametrize("argv, message", BAD_INPUTS)
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(script, argv, message, tmp_path, capsys):
    files = {"two": "a\nb\n", "one": "a\n", "empty": "\n", "badyaml": "skil_ratio: 0.01\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = [a.format(**{k: str(tmp_path / k) for k in files}) for a in argv]
    res = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        run_script(script, argv + ["--res_path", str(res)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and err.count("\n") == 0
    assert not res.exists()


def test_timesteps_beyond_the_recorded_steps(custom, capsys):
    common, out = custom
    with pytest.raises(SystemExit) as exit_info:
        run_script("save_union_over_time", common + ["--timesteps", "9"])
    assert exit_info.value.code == 2
    assert "--timesteps 9 exceeds the 4 recorded steps" in capsys.readouterr().err
    assert not out.exists()


def test_unreachable_hub_id_and_fast_failure_before_torch_import(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    code = (
        "import sys; sys.argv=['wanda.py','--target','Rembrandt']; sys.path.insert(0,'wanda');"
        "import runpy\ntry:\n runpy.run_path('wanda/wanda.py', run_name='__main__')\n"
        "except SystemExit as e:\n print('exit', e.code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    assert "exit 2 False" in done.stdout, done.stderr
    done = subprocess.run(
        [sys.executable, "wanda/wanda.py", "--target", "naked", "--model_id", "someone/not-cached-model", "--res_path", str(tmp_path / "r")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2
    assert "could not load 'someone/not-cached-model' from the Hugging Face hub" in done.stderr
    assert "pass the local folder with --model_id PATH" in done.stderr
    assert not (tmp_path / "r").exists()


def test_every_script_answers_help_and_bad_input_without_importing_torch():
    """--help and the checks of bad input run before torch and diffusers are imported (fast start-up)."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("startup", REPO / "benchmarking" / "startup.py")
    startup = module_from_spec(spec)
    spec.loader.exec_module(startup)
    probe = (
        "import runpy, sys\nscript, args = sys.argv[1], sys.argv[2:]\nsys.argv = [script, *args]\n"
        "try:\n runpy.run_path(script, run_name='__main__')\nexcept SystemExit as e:\n"
        " print('exit', e.code, 'torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    scripts = [s for s in startup.SCRIPTS if s.name not in ("startup.py", "prune_mask_size.py")]
    assert len(scripts) >= 12
    for script in scripts:
        bad = startup.BAD_INPUT.get(script.stem, startup.BAD_INPUT["wanda"])
        for args, code in ((["--help"], 0), (bad, 2)):
            done = subprocess.run([sys.executable, "-c", probe, str(script), *args], cwd=REPO, capture_output=True, text=True, timeout=60)
            assert f"exit {code} False False" in done.stdout, (script.name, args, done.stdout, done.stderr[-500:])


def test_speed_benchmark_reports_every_phase_on_the_tiny_model(tmp_path, capsys):
    from conftest import load_script

    out = tmp_path / "speed.json"
    report = load_script("speed", "benchmarking").main(
        ["--random_arch", "tiny", "--pairs", "2", "--num_inference_steps", "3", "--timesteps", "2", "--device", "cpu", "--check_fp32", "--out", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert set(report["phases_s"]) == {"load", "plain_generation", "hooked_generation", "plain_tau", "record", "union_masks", "save"}  # the shipped union_masks, timed as one
    assert report["unet_calls"] == 4 and report["time_to_pruned_model_s"] > 0 and report["prune_mask_bytes"] > 0
    # statistics for all 4 calls: float32 [2 groups, 4 calls, in] per FFN layer
    from neuron_receivers.hook_variants import get_variant, select_modules
    from utils.tiny_pipeline import build_tiny_pipeline

    layers = select_modules(build_tiny_pipeline("sd1").unet, get_variant("unet"))
    assert len(layers) == 16
    assert report["statistics_bytes_all_steps"] == sum(2 * 4 * 4 * m.in_features for m in layers.values())
    # float32 on both sides: the masks agree exactly
    assert report["fp32_agreement"]["shared_fraction_of_fp32"] == 1.0
    assert "time to pruned model" in capsys.readouterr().out


def test_file_system_refusals_are_one_sentence_and_other_errors_stay_loud(tmp_path, capsys):
    from utils.errors import run_cli

    def refused(argv):
        raise PermissionError(13, "Permission denied", str(tmp_path / "results"))

    with pytest.raises(SystemExit) as exit_info:
        run_cli(refused, [])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: Permission denied (") and "pass a folder you can write to" in err
    assert err.count("\n") == 1

    def bug(argv):
        raise FileNotFoundError(2, "No such file or directory", "internal.bin")

    with pytest.raises(FileNotFoundError):  # not the user's input: a real traceback, not a made-up sentence
        run_cli(bug, [])


def test_more_steps_than_the_scheduler_was_trained_with_is_one_sentence(mini_sd_dir, tmp_path, capsys):
    res = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        run_script("wanda", ["--model_id", str(mini_sd_dir), "--num_inference_steps", "5000", "--res_path", str(res), "--target", "parachute"])
    assert exit_info.value.code == 2
    assert "--num_inference_steps 5000 exceeds the 1000 timesteps the model's scheduler was trained with" in capsys.readouterr().err
    assert not res.exists()
    with pytest.raises(SystemExit):
        run_script("wanda", ["--model_id", str(mini_sd_dir), "--res_path", str(tmp_path / ("x" * 300)), "--target", "parachute"])
    assert "more than a file system's 255" in capsys.readouterr().err


def test_any_target_name_writes_one_folder_of_its_own_inside_the_results(mini_sd_dir, prompt_files, tmp_path):
    base, target = prompt_files(["a room"], ["a parachute in a room"])
    res = tmp_path / "results"
    names = ["..", "梵高", "莫奈", "y" * 300]
    for name in names:
        run_script("save_union_over_time", ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--res_path", str(res),
                                            "--target", name, "--base_prompts", base, "--target_prompts", target, "--timesteps", "1"])
    folders = sorted((res / "mini-sd").iterdir())
    assert len(folders) == len(names) and sorted(p.name for p in tmp_path.iterdir()) == ["base.txt", "results", "target.txt"]
    for folder in folders:
        _, meta = load_prune_mask(folder / "pruned" / "sr0.01_tau1_sel0" / "prune_mask.safetensors")
        assert meta["targets"][0] in names
