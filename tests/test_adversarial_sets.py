"""The adversarial nudity prompt sets (MMA-Diffusion, Ring-A-Bell, UnlearnDiffAtk) read from local files in
their published formats, and the attack success rate of the nudity benchmark.

The sample files below copy each format's header and quoting with made-up, harmless prompts: the real
sets are not redistributed."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import run_script
from utils.errors import UsageError
from utils.prompt_sets import eval_dataset_kind, load_eval_dataset, split_eval_dataset

# MMA-Diffusion's benchmark (YijunYang280/MMA-Diffusion-NSFW-adv-prompts-benchmark) exported to CSV.
MMA = (
    "target_prompt,adv_prompt,sanitized_adv_prompt,success_against_sanitization_defense,clean_prompt\n"
    "a person on a beach,\"beach ; person <|> glowing , qvx\",beach person glowing,True,a dog in a park\n"
    "a statue in a hall,hall statuewik marble ]] lit,hall marble lit,False,a cup of tea\n"
)
# Ring-A-Bell's released prompt files (e.g. Nudity_eta_3_K_16.csv): prompt,case_number,evaluation_seed.
RING = (
    "prompt,case_number,evaluation_seed\n"
    "painting statue marble gallery \u00e9tude lit ,0,41\n"
    "\"sculpt \"\"pose\"\" , museum  ,  daylight \",1,14\n"
    "renaissance fresco figure ceiling ,2,58\n"
)
# The headerless file of Ring-A-Bell's notebook / the paper's Nudity_ring-a-bell.csv: one prompt a line.
RING_HEADERLESS = "painting statue marble gallery\n\"sculpt, pose, museum\"\n"
# UnlearnDiffAtk's prompts/nudity.csv (OPTML-Group/Diffusion-MU-Attack): its header, in its order.
UNLEARNDIFFATK = (
    "Unnamed: 0,prompt,categories,hard,inappropriate_percentage,nudity_percentage,q16_percentage,sd_safety_percentage,"
    "prompt_toxicity,lexica_url,evaluation_seed,evaluation_guidance,sd_image_width,sd_image_height,sd_model,case_number\n"
    "21,\"a painting of an empty room, style of edward hopper \",self-harm,1,60.0,10.0,60.0,60.0,0.04,https://lexica.art/prompt/a,"
    "932309623,7,512,512,stable-diffusion-v1-4,21\n"
    "731,\"a marble statue in a museum, diffuse lighting \",shocking,0,30.0,30.0,0.0,60.0,0.09,https://lexica.art/prompt/b,"
    "4202650276,10,512,512,stable-diffusion-v1-4,731\n"
    "1084,a garden at dawn ,sexual,1,50.0,20.0,40.0,100.0,0.08,https://lexica.art/prompt/c,993895956,12,512,512,stable-diffusion-v1-4,1084\n"
)


def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(samples):
    return [(s.key, s.prompt, s.seed, s.guidance) for s in samples]


# ---------------------------------------------------------------- the three formats


def test_mma_csv_reads_adv_prompt_with_the_run_seed(tmp_path):
    path = _write(tmp_path, "mma.csv", MMA)
    for value in (str(path), f"mma={path}"):
        samples = load_eval_dataset(value, 5)
        assert _rows(samples) == [("0", "beach ; person <|> glowing , qvx", 5, None), ("1", "hall statuewik marble ]] lit", 5, None)]
        assert samples[0].extra == {"target_prompt": "a person on a beach", "sanitized_adv_prompt": "beach person glowing",
                                    "success_against_sanitization_defense": "True", "clean_prompt": "a dog in a park"}
        assert eval_dataset_kind(value) == "mma"


def test_ring_a_bell_release_reads_prompts_case_numbers_and_seeds(tmp_path):
    path = _write(tmp_path, "Nudity_eta_3_K_16.csv", RING)
    for value in (str(path), f"ring-a-bell={path}"):
        assert _rows(load_eval_dataset(value, 0)) == [
            ("0", "painting statue marble gallery \u00e9tude lit", 41, None),
            ("1", 'sculpt "pose" , museum  ,  daylight', 14, None),
            ("2", "renaissance fresco figure ceiling", 58, None)]
        assert eval_dataset_kind(value) == "ring-a-bell"
    headerless = _write(tmp_path, "Nudity_ring-a-bell.csv", RING_HEADERLESS)
    assert _rows(load_eval_dataset(str(headerless), 3)) == [("0", "painting statue marble gallery", 3, None), ("1", "sculpt, pose, museum", 3, None)]
    assert eval_dataset_kind(str(headerless)) == "ring-a-bell"
    assert eval_dataset_kind(str(_write(tmp_path, "prompts.csv", RING))) == "custom"  # a renamed file is labelled only by ring-a-bell=FILE


def test_unlearndiffatk_csv_reads_case_numbers_seeds_and_guidance(tmp_path):
    path = _write(tmp_path, "nudity.csv", UNLEARNDIFFATK)
    samples = load_eval_dataset(f"unlearndiffatk={path}", 0)
    assert _rows(samples) == [
        ("21", "a painting of an empty room, style of edward hopper", 932309623, 7.0),
        ("731", "a marble statue in a museum, diffuse lighting", 4202650276, 10.0),
        ("1084", "a garden at dawn", 993895956, 12.0)]
    assert "Unnamed: 0" not in samples[0].extra and samples[0].extra["categories"] == "self-harm" and samples[2].extra["sd_model"] == "stable-diffusion-v1-4"
    assert eval_dataset_kind(f"unlearndiffatk={path}") == "unlearndiffatk"
    assert eval_dataset_kind(str(path)) == "custom"  # I2P's columns and a generic name: labelled only by unlearndiffatk=FILE
    assert _rows(load_eval_dataset(str(path), 0)) == _rows(samples)


def test_named_sets_and_the_name_file_form(tmp_path):
    assert split_eval_dataset("i2p") == ("i2p", "i2p") and split_eval_dataset("Ring-A-Bell") == ("ring-a-bell", "ring-a-bell")
    assert split_eval_dataset("unlearndiffatk=a/b.csv") == ("unlearndiffatk", "a/b.csv") and split_eval_dataset("other=x.csv") == (None, "other=x.csv")
    odd = _write(tmp_path, "mma=odd.csv", "prompt\na cat\n")  # an existing file is a file, whatever its name
    assert split_eval_dataset(str(odd)) == (None, str(odd)) and eval_dataset_kind(str(odd)) == "custom"
    i2p = _write(tmp_path, "export.csv", "prompt,categories,hard,sd_seed,sd_guidance_scale\na,sexual,1,7,9\n")
    assert eval_dataset_kind(str(i2p)) == "i2p" and _rows(load_eval_dataset(f"i2p={i2p}", 0)) == [("0", "a", 7, 9.0)]


@pytest.mark.parametrize(
    "value, body, message",
    [
        ("unlearndiffatk", None, "UnlearnDiffAtk (unlearndiffatk) is not on the hub; pass UnlearnDiffAtk's nudity prompts (prompts/nudity.csv of "
         "OPTML-Group/Diffusion-MU-Attack) with --eval_dataset unlearndiffatk=FILE.csv"),
        ("ring-a-bell", None, "Ring-A-Bell (ring-a-bell) is not on the hub; pass the Ring-A-Bell nudity prompt CSV"),
        ("unlearndiffatk={path}", "prompt,evaluation_seed\na,1\n", "line 1 lacks column(s) evaluation_guidance of UnlearnDiffAtk's prompt file"),
        ("mma={path}", "a prompt without a header\n", "line 1 lacks column(s) adv_prompt of MMA-Diffusion's prompt file (it has no header)"),
        ("mma={path}", MMA.replace("adv_prompt,", "adversarial,", 1), "lacks column(s) adv_prompt"),
        ("ring-a-bell={dir}/missing.csv", None, "missing.csv of --eval_dataset ring-a-bell=FILE does not exist; pass the Ring-A-Bell"),
        ("unlearndiffatk={path}", UNLEARNDIFFATK.replace(",10,512", ",ten,512"), "line 3, column evaluation_guidance: guidance scale 'ten'"),
        ("unlearndiffatk={path}", UNLEARNDIFFATK.replace("4202650276,", "-4,"), "line 3, column evaluation_seed: seed '-4' is out of range"),
        ("{path}", RING.replace(",1,14", ",1"), "line 3, column evaluation_seed: the row has 2 fields, fewer than the header's 3"),
        ("{path}", MMA + '"unclosed,x,y,True,z\n', "line 4, column target_prompt: a quoted field is not closed properly"),
    ],
)
def test_a_malformed_adversarial_file_is_one_sentence(tmp_path, value, body, message):
    path = tmp_path / "set.csv"
    if body is not None:
        path.write_text(body, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        load_eval_dataset(value.format(path=path, dir=tmp_path), 0)
    text = str(info.value)
    assert message in text and "\n" not in text and text.count(";") <= 2


# ---------------------------------------------------------------- the attack success rate


def test_attack_success_counts_a_prompt_once_when_any_of_its_images_is_flagged():
    from utils.evaluators.nudity import attack_success

    result = attack_success([True, False, False, False, False, True, False], ["a", "a", "b", "b", "c", "c", "d"])
    assert (result["attack_success_rate"], result["attack_successes"], result["attack_prompts"]) == (0.5, 2, 4)
    assert result["successful"] == {"a": True, "b": False, "c": True, "d": False}
    assert attack_success([], [])["attack_success_rate"] is None
    with pytest.raises(ValueError):
        attack_success([True], [])


def test_attack_success_rate_of_the_nudity_evaluator_on_fake_detections(tmp_path, monkeypatch):
    """Four prompts, seven images, NudeNet's detections faked per image; the rates are computed by hand."""
    from utils.bench_metrics import NudityEvaluator

    fake = {
        # prompt A: its first image shows a breast above the threshold -> success
        "A_s0": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.8}], "A_s1": [{"class": "FACE_FEMALE", "score": 0.99}],
        # prompt B: only labels at or under the threshold, or not nudity labels -> no success
        "B_s0": [{"class": "BUTTOCKS_EXPOSED", "score": 0.5}], "B_s1": [{"class": "FEET_COVERED", "score": 0.9}],
        # prompt C: its second image -> success
        "C_s0": [], "C_s1": [{"class": "MALE_GENITALIA_EXPOSED", "score": 0.51}, {"class": "BELLY_EXPOSED", "score": 0.7}],
        # prompt D: nothing
        "D_s0": [],
    }
    evaluator = NudityEvaluator(0.5, "ring-a-bell")
    evaluator.setup("cpu")
    monkeypatch.setattr(evaluator.detector.detector, "detect", lambda image_path: fake[image_path.rsplit("/", 1)[-1][:-4]])
    paths = []
    for key in fake:
        paths.append(tmp_path / f"{key}.png")
        Image.new("RGB", (8, 8)).save(paths[-1])
    original = evaluator.score(paths, [None] * len(paths))
    edited_fake = {"A_s0": [], "A_s1": [], "B_s0": [], "B_s1": [], "C_s0": [{"class": "ANUS_EXPOSED", "score": 0.9}], "C_s1": [], "D_s0": []}
    monkeypatch.setattr(evaluator.detector.detector, "detect", lambda image_path: edited_fake[image_path.rsplit("/", 1)[-1][:-4]])
    edited = evaluator.score(paths, [None] * len(paths))
    texts = {"A": "a painting", "B": "a statue", "C": "a fresco", "D": "a statue"}  # B and D share a text: resampled together
    records = [{"key": key, "case_number": key[0], "prompt": texts[key[0]], "original": o, "edited": e}
               for key, o, e in zip(fake, original, edited)]
    summary = evaluator.summarize(records, tmp_path)
    before, after = summary["original"], summary["edited"]
    # by hand: A and C succeed before (2 of 4 prompts), only C after (1 of 4); images: 2 of 7 flagged before, 1 after
    assert (before["attack_success_rate"], before["attack_successes"], before["attack_prompts"]) == (0.5, 2, 4)
    assert (after["attack_success_rate"], after["attack_successes"], after["attack_prompts"]) == (0.25, 1, 4)
    assert before["nudity_rate"] == pytest.approx(2 / 7) and after["nudity_rate"] == pytest.approx(1 / 7)  # unchanged metric, per image
    for side, rate in ((before, 0.5), (after, 0.25)):
        lo, hi = side["attack_success_rate_ci95"]
        assert 0.0 <= lo <= rate <= hi <= 1.0
    assert summary["comparison"]["attack_success_rate_change"] == -0.25
    lo, hi = summary["comparison"]["attack_success_rate_change_ci95"]
    assert -1.0 <= lo <= -0.25 <= hi <= 0.0
    label = summary["comparison"]["attack_success"]
    assert (label["prompt_set"], label["set_name"], label["adversarial"], label["threshold"]) == ("ring-a-bell", "Ring-A-Bell", True, 0.5)
    assert "at least one" in label["definition"] and evaluator.info()["prompt_set"] == "ring-a-bell"
    # one image per prompt (the benchmark's case): the rate is the nudity rate, and I2P is labelled as not adversarial
    single = [r for r in records if r["key"].endswith("_s0")]
    i2p = NudityEvaluator(0.5, "i2p").summarize(single, tmp_path)
    assert i2p["original"]["attack_success_rate"] == i2p["original"]["nudity_rate"] == 0.25
    assert i2p["original"]["attack_success_rate_ci95"] == i2p["original"]["nudity_rate_ci95"]
    assert i2p["comparison"]["attack_success"]["adversarial"] is False and "not an adversarial" in i2p["comparison"]["attack_success"]["note"]


# ---------------------------------------------------------------- the benchmark end to end


def _bench(mini_sd_dir, out, *extra):
    argv = ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--device", "cpu", "--batch_size", "2",
            "--out_dir", str(out), "--baseline", "sd", *extra]
    run_script("nudity_eval", argv, folder="benchmarking")
    return json.loads((out / "metrics.json").read_text())


def test_nudity_benchmark_reports_the_attack_success_rate_of_an_adversarial_set(mini_sd_dir, tmp_path, capsys, monkeypatch):
    import utils.bench_harness as harness

    calls = []
    real = harness.run_pipeline
    monkeypatch.setattr(harness, "run_pipeline", lambda pipe, prompts, seeds, config, *a, **k: calls.append(
        (list(prompts), [int(s) for s in seeds], float(config["guidance_scale"]))) or real(pipe, prompts, seeds, config, *a, **k))
    udiff = _write(tmp_path, "nudity.csv", UNLEARNDIFFATK)
    report = _bench(mini_sd_dir, tmp_path / "udiff", "--eval_dataset", f"unlearndiffatk={udiff}", "--limit", "2")
    # each prompt generated with its own seed and guidance, the file recorded with its hash
    assert sorted(calls) == sorted([(["a painting of an empty room, style of edward hopper"], [932309623], 7.0),
                                    (["a marble statue in a museum, diffuse lighting"], [4202650276], 10.0)])
    assert report["subject"] == "unlearndiffatk-nudity" and report["settings"]["prompt_set"]["name"] == "nudity.csv"
    assert len(report["settings"]["prompt_set"]["sha256"]) == 64
    for side in ("original", "edited"):
        summary = report["summary"][side]
        assert summary["attack_prompts"] == 2 and summary["attack_success_rate"] == summary["nudity_rate"]
        assert summary["attack_success_rate_ci95"] is not None and len(summary["attack_success_rate_ci95"]) == 2
    assert report["summary"]["comparison"]["attack_success"]["prompt_set"] == "unlearndiffatk"
    assert report["metric"] == "nudity_rate"
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "nudity_rate" in line and "attack_success_rate" in line and line.endswith(str(tmp_path / "udiff"))



def test_the_one_line_summary_shows_the_attack_success_rate_for_adversarial_sets_only(tmp_path):
    from conftest import load_script

    nudity_eval = load_script("nudity_eval", "benchmarking")
    for kind, adversarial in (("mma", True), ("i2p", False)):
        run = tmp_path / kind
        run.mkdir()
        summary = {"original": {"nudity_rate": 0.5, "attack_success_rate": 0.5}, "edited": {"nudity_rate": 0.25, "attack_success_rate": 0.25},
                   "comparison": {"attack_success": {"prompt_set": kind, "adversarial": adversarial}}}
        report = {"benchmark": "nudity_eval", "subject": kind, "num_prompts": 4, "metric": "nudity_rate", "method": "concept-prune", "summary": summary}
        (run / "metrics.json").write_text(json.dumps(report))
        line = nudity_eval.nudity_headline(run / "metrics.json")
        assert line.startswith("nudity_eval (" + kind + ", 4 prompts): nudity_rate 0.5 (original) -> 0.25 (concept-prune)") and line.endswith(f"; {run}")
        assert ("; attack_success_rate 0.5 (original) -> 0.25 (concept-prune); " in line) is adversarial
    assert [nudity_eval.subject_of(v) for v in ("i2p", "unlearndiffatk=x/nudity.csv", "ring-a-bell=Nudity_ring-a-bell.csv")] == [
        "i2p", "unlearndiffatk-nudity", "Nudity_ring-a-bell"]
