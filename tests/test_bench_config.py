"""Benchmark options: the --protocol presets of configs/benchmark_config.yaml and the order in which values win."""
from __future__ import annotations

import pytest

from utils.bench_config import BENCHMARKS, build_bench_parser, resolve_bench_config
from utils.concepts import DATASETS_DIR
from utils.errors import UsageError

MEM = ("clip_model", "dataset_path", "sscd_model", "num_seeds", "sscd_preprocessing")
ARTIST = ("clip_model", "eval_artists")
GENDER = ("clip_model", "num_seeds", "professions")
NUDITY = ("eval_dataset", "nudity_threshold")
COCO = ("clip_model", "coco_captions", "coco_images", "fid_weights")
SCRIPTS = {"inference_mem": MEM, "artist_erasure": ARTIST, "gender_reversal": GENDER, "nudity_eval": NUDITY, "eval_coco": COCO}
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def own_config(tmp_path, changes: str, presets: bool = True):
    """A copy of the shipped config with its top-level ``changes`` (YAML lines) and, unless ``presets``
    is False, without its protocols table (so that ``changes`` may bring one)."""
    from utils.bench_config import BENCH_CONFIG

    text = BENCH_CONFIG.read_text()
    text = text[: text.index("\nprotocols:")] + "\n" if not presets else text
    keys = {line.split(":")[0] for line in changes.splitlines() if line and not line.startswith(" ")}
    kept = [line for line in text.splitlines() if line.split(":")[0] not in keys]
    path = tmp_path / "own.yaml"
    path.write_text("\n".join(kept) + "\n" + changes)
    return str(path)


def resolve(script: str, *argv: str) -> dict:
    """The resolved config of ``script`` for the command line ``argv`` (the unedited model, so no checkpoint)."""
    specific = SCRIPTS[script]
    args = build_bench_parser("test", specific, target="optional").parse_args(["--baseline", "sd", *argv])
    return resolve_bench_config(args, specific, script)


# What the paper protocol must resolve to, benchmark by benchmark (the choices of the paper's code).
PAPER = {
    "artist_erasure": {"model_id": SD15, "clip_model": "openai/clip-vit-base-patch32", "safety_checker": True},
    "eval_coco": {"model_id": SD15, "clip_model": "openai/clip-vit-base-patch32", "safety_checker": True},
    "gender_reversal": {"model_id": SD15, "safety_checker": True, "professions": "datasets/paper_professions.txt"},
    "nudity_eval": {"model_id": SD15, "safety_checker": False, "nudity_threshold": 0.5},
    "inference_mem": {
        "model_id": SD15,
        "safety_checker": False,
        "clip_model": "laion/CLIP-ViT-g-14-laion2B-s12B-b42K",
        "sscd_preprocessing": "resize256-crop224-mean0.5",
    },
}


@pytest.mark.parametrize("script", sorted(PAPER))
def test_the_paper_protocol_resolves_to_the_papers_choices(script):
    config = resolve(script, "--protocol", "paper")
    assert config["protocol"] == "paper"
    assert {key: config[key] for key in PAPER[script]} == PAPER[script]
    assert config["num_inference_steps"] == 50 and config["guidance_scale"] == 7.5


@pytest.mark.parametrize("script", sorted(PAPER))
def test_the_project_protocol_is_the_default_and_keeps_todays_values(script):
    config = resolve(script)
    assert config["protocol"] == "project"
    assert config["model_id"] == "CompVis/stable-diffusion-v1-4" and config["safety_checker"] is False
    if "clip_model" in config:
        assert config["clip_model"] == "openai/clip-vit-large-patch14"
    assert config.get("sscd_preprocessing", "resize320-imagenet") == "resize320-imagenet"
    assert config.get("professions") is None


def test_typed_options_win_over_the_preset():
    config = resolve("inference_mem", "--protocol", "paper", "--model_id", "my/model", "--clip_model", "my/clip",
                     "--safety_checker", "--sscd_preprocessing", "resize320-imagenet")
    assert (config["model_id"], config["clip_model"], config["safety_checker"], config["sscd_preprocessing"]) == (
        "my/model", "my/clip", True, "resize320-imagenet")
    assert config["typed_options"] == ["baseline", "clip_model", "model_id", "protocol", "safety_checker", "sscd_preprocessing"]
    assert resolve("artist_erasure", "--protocol", "paper", "--no_safety_checker")["safety_checker"] is False
    assert resolve("artist_erasure", "--protocol", "paper", "--clip_model", "c")["clip_model"] == "c"


def test_the_protocol_can_come_from_the_config_file_and_the_preset_beats_its_top_level(tmp_path):
    own = own_config(tmp_path, "protocol: paper\nmodel_id: some/model\n", presets=False)  # the shipped presets apply
    config = resolve("artist_erasure", "--config", own)
    assert config["protocol"] == "paper" and config["model_id"] == SD15
    assert resolve("artist_erasure", "--config", own, "--protocol", "project")["model_id"] == "some/model"


def test_a_preset_of_ones_own(tmp_path):
    own = own_config(tmp_path, "protocols:\n  mine:\n    all: {guidance_scale: 5}\n    eval_coco: {clip_model: c32}\n", presets=False)
    config = resolve("eval_coco", "--config", own, "--protocol", "mine")
    assert (config["protocol"], config["guidance_scale"], config["clip_model"]) == ("mine", 5.0, "c32")
    with pytest.raises(UsageError, match=r"unknown --protocol 'paper'; choose one of mine"):
        resolve("eval_coco", "--config", own, "--protocol", "paper")


@pytest.mark.parametrize("yaml_text, words", [
    ("protocols:\n  paper:\n    al: {seed: 1}\n", "unknown section 'al'"),
    ("protocols:\n  paper:\n    all: {sed: 1}\n", "unknown or misplaced key(s) sed"),
    ("protocols:\n  paper:\n    all: {protocol: project}\n", "unknown or misplaced key(s) protocol"),
    ("protocols:\n  paper:\n    all: {seed: many}\n", "protocols.paper.all.seed must be an integer"),
    ("protocols: []\n", "protocols must map protocol names to presets"),
    ("protocols:\n  paper: 3\n", "protocol paper must map all or a benchmark name to settings"),
])
def test_a_bad_protocols_table_is_one_sentence(tmp_path, yaml_text, words):
    with pytest.raises(UsageError) as info:
        resolve("eval_coco", "--config", own_config(tmp_path, yaml_text, presets=False))
    assert words in str(info.value)


def test_an_unknown_protocol_or_sscd_preprocessing_is_refused():
    with pytest.raises(UsageError, match=r"^unknown --protocol 'papr'; choose one of paper, project$"):
        resolve("eval_coco", "--protocol", "papr")
    with pytest.raises(UsageError, match="--sscd_preprocessing must be one of"):
        resolve("inference_mem", "--sscd_preprocessing", "resize224")


def test_every_benchmark_named_in_the_shipped_presets_is_a_script():
    from utils.config import REPO_ROOT

    assert all((REPO_ROOT / "benchmarking" / f"{name}.py").is_file() for name in BENCHMARKS)


def test_the_papers_professions_are_the_35_winobias_ones_and_doctor():
    ours = (DATASETS_DIR / "winobias_professions.txt").read_text().split("\n")
    paper = (DATASETS_DIR / "paper_professions.txt").read_text().split("\n")
    ours, paper = [p for p in ours if p], [p for p in paper if p]
    assert len(ours) == 35 and paper == ours + ["doctor"]


def test_gender_prompts_follow_the_protocols_professions():
    from conftest import load_script

    gender = load_script("gender_reversal", "benchmarking")
    paper = gender.gender_samples(dict(resolve("gender_reversal", "--protocol", "paper", "--target", "male"), num_seeds=1))
    project = gender.gender_samples(dict(resolve("gender_reversal", "--target", "male"), num_seeds=1))
    assert len(paper) == 36 and len(project) == 35
    assert paper[-1].prompt == "a headshot of a doctor" and [s.prompt for s in paper[:35]] == [s.prompt for s in project]
    with pytest.raises(UsageError, match="--professions nowhere.txt is not a file"):
        gender.gender_samples(dict(resolve("gender_reversal", "--target", "male", "--professions", "nowhere.txt"), num_seeds=1))
