"""The revival attack as a benchmark: benchmarking/revival_attack.py, the revival file, --baseline revived, the demo table."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import run_script


@pytest.fixture(scope="module")
def tiny_masks(tiny_sd_dir, tmp_path_factory):
    """fill -> a prune mask of the tiny SD-1.x model (custom concept, skill_ratio 0.1), saved with that fill."""
    folder = tmp_path_factory.mktemp("revival")
    base, target = folder / "base.txt", folder / "target.txt"
    base.write_text("a photo of a cat\na photo of a house\n")
    target.write_text("a cat in the style of stripes\na house in the style of stripes\n")
    masks = {}
    for fill in ("zero", "noise"):
        run_script("save_union_over_time", ["--model_id", str(tiny_sd_dir), "--num_inference_steps", "3", "--res_path", str(folder / "r"),
                                            "--target", "stripes", "--base_prompts", str(base), "--target_prompts", str(target),
                                            "--skill_ratio", "0.1", "--fill", fill, "--device", "cpu"])
        name = "sr0.1_tau4_sel0" + ("" if fill == "zero" else f"_{fill}")  # tau 10 capped at PNDM's 4 calls of 3 steps
        masks[fill] = folder / "r" / "tiny-sd" / "stripes" / "pruned" / name / "prune_mask.safetensors"
    return masks


def test_the_attack_finds_exactly_the_zeroed_positions_and_writes_a_mask_sized_delta(tiny_masks, tmp_path):
    from utils.pruning import load_prune_mask
    from utils.revived import load_revival

    out = tmp_path / "attack"
    metrics = run_script_metrics(["--ckpt_name", str(tiny_masks["zero"]), "--device", "cpu", "--out_dir", str(out), "--max_iters", "20"])
    masks, _ = load_prune_mask(tiny_masks["zero"])
    located, values, meta = load_revival(out / "revived.safetensors")
    assert set(f"{name}.weight" for name in located) == set(masks)
    for name, where in located.items():
        assert torch.equal(where, masks[f"{name}.weight"])  # exactly the pruned positions, nothing else
        assert values[name].shape == (int(where.sum()),) and (values[name] != 0).any()
    assert metrics["precision"] == metrics["recall"] == 1.0 and metrics["located"] == metrics["pruned"] > 0
    assert metrics["attack"]["locate"] == "zeros" and metrics["attack"]["sign_ratio"] == 0.6 and metrics["attack"]["max_iters"] == 20
    assert metrics["edit"]["method"] == "concept-prune" and metrics["edit"]["fill"] == "zero"
    assert metrics["locating_auc"]["zero_per_layer"] == 1.0 and metrics["best_detector"]["auc_per_layer"] == 1.0
    assert meta["attack"] == metrics["attack"] and meta["edit_method"] == "concept-prune"
    assert json.loads((out / "metrics.json").read_text()) == metrics


def run_script_metrics(argv):
    from conftest import load_script

    return load_script("revival_attack", "benchmarking").main(argv)


def test_a_noise_fill_leaves_no_zeros_to_find_and_a_detector_locates_a_share(tiny_masks, tmp_path):
    zeros = run_script_metrics(["--ckpt_name", str(tiny_masks["noise"]), "--device", "cpu", "--out_dir", str(tmp_path / "a"), "--max_iters", "5"])
    assert zeros["located"] < zeros["pruned"] // 100 and zeros["edit"]["fill"] == "noise"  # the fill hides the positions
    share = run_script_metrics(["--ckpt_name", str(tiny_masks["noise"]), "--device", "cpu", "--out_dir", str(tmp_path / "b"), "--max_iters", "5",
                                "--locate", "row_z", "--locate_fraction", "0.1"])
    assert share["attack"]["locate"] == "row_z" and 0 < share["located"] and share["recall"] < 1.0
    negated = run_script_metrics(["--ckpt_name", str(tiny_masks["noise"]), "--device", "cpu", "--res_path", str(tmp_path / "c"), "--max_iters", "5",
                                  "--locate=-row_z", "--locate_fraction", "0.1"])
    assert negated["attack"]["locate"] == "-row_z" and negated["located"] == share["located"]
    assert len(list((tmp_path / "c").glob("revival/*/*/row_z_negated/revived.safetensors"))) == 1


def test_the_scripts_locators_are_the_librarys():
    from conftest import load_script
    from utils.revived import LOCATORS

    assert load_script("revival_attack", "benchmarking").LOCATORS == LOCATORS


def test_the_revived_model_is_a_baseline_of_every_benchmark(tiny_masks, tiny_sd_dir, tiny_clip_dir, tmp_path):
    from utils.baselines import load_edited_pipeline
    from utils.pruning import load_prune_mask
    from utils.revived import load_revival

    out = tmp_path / "attack"
    run_script_metrics(["--ckpt_name", str(tiny_masks["zero"]), "--device", "cpu", "--out_dir", str(out), "--max_iters", "20"])
    revived_file = out / "revived.safetensors"
    pipe, info = load_edited_pipeline("revived", str(revived_file), str(tiny_sd_dir), torch.device("cpu"), torch.float32)
    located, values, _ = load_revival(revived_file)
    masks, _ = load_prune_mask(tiny_masks["zero"])
    for name, where in located.items():
        weight = pipe.unet.get_parameter(f"{name}.weight").detach()
        assert torch.equal(weight[where], values[name])  # the attack's values, where the mask had zeros
    assert info["edit_method"] == "concept-prune" and info["changed"]["unet"]["revived_weights"] == sum(int(m.sum()) for m in masks.values())
    bench = tmp_path / "bench"
    run_script("artist_erasure", ["--model_id", str(tiny_sd_dir), "--num_inference_steps", "2", "--device", "cpu", "--out_dir", str(bench),
                                  "--target", "Monet", "--limit", "1", "--baseline", "revived", "--ckpt_name", str(revived_file),
                                  "--clip_model", str(tiny_clip_dir)], folder="benchmarking")
    report = json.loads((bench / "metrics.json").read_text())
    assert report["method"] == "revived" and report["models"]["edited"]["attack"]["locate"] == "zeros"


def test_bad_attack_input_is_one_sentence(tiny_masks, tmp_path, capsys):
    from utils.errors import UsageError
    from utils.revived import load_revival

    cases = [
        (["--ckpt_name", str(tiny_masks["zero"]), "--locate", "magnitude"], "needs --locate_fraction"),
        (["--ckpt_name", str(tiny_masks["zero"]), "--locate_fraction", "0.1"], "--locate_fraction is for a detector"),
        (["--ckpt_name", str(tmp_path / "missing.safetensors")], "does not exist"),
        (["--ckpt_name", str(tiny_masks["zero"]), "--sign_ratio", "0"], "--sign_ratio must lie in"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            run_script("revival_attack", argv, folder="benchmarking")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err
    with pytest.raises(UsageError, match="not a concept-prune revival file"):
        load_revival(tiny_masks["zero"])  # a mask is not a revival


def test_the_demo_table_judges_each_fill_pruned_and_attacked(tmp_path):
    from conftest import load_script

    table = load_script("revival_table", "demo").main(["--res_path", str(tmp_path), "--eval_prompts", "4", "--fills", "zero", "shuffle:0.5"])
    zero, shuffle = table["rows"]
    assert (zero["fill"], shuffle["fill"], shuffle["fill_scale"]) == ("zero", "shuffle", 0.5)
    assert zero["attacker_locates"] == "zeros" and zero["located_recall"] == 1.0 and zero["locating_auc"] == 1.0
    assert shuffle["located_recall"] < 1.0 and 0.5 <= shuffle["locating_auc"] < 1.0  # the fill hides most positions
    for row in table["rows"]:
        assert set(row["pruned"]) == set(row["attacked"]) == {"detection", "detection_ci95", "other_accuracy", "other_accuracy_ci95"}
        lo, hi = row["pruned"]["detection_ci95"]
        assert lo <= row["pruned"]["detection"] <= hi
    folder = next(tmp_path.glob("model/checker/revival"))
    assert {p.name for p in folder.iterdir()} == {"table.json", "table.md", "config.yaml"}
    assert "| shuffle, scale 0.5 |" in (folder / "table.md").read_text()


def test_the_speed_script_refuses_bad_options_before_building_the_unet(capsys):
    for argv, message in ((["--fraction", "0"], "--fraction must lie in"), (["--rank", "0"], "--rank"), (["--device", "gpu"], "--device")):
        with pytest.raises(SystemExit) as exit_info:
            run_script("revival_speed", argv, folder="benchmarking")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err
