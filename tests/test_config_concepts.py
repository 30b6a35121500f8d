"""Config merging, float formatting and concept prompt pairs (no torch needed)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from utils.concepts import build_concept, known_targets, slugify
from utils.config import build_parser, concept_hyperparameters, concept_select_ratio, dump_yaml, format_float, resolve_config
from utils.errors import UsageError


def test_yaml_defaults_are_the_papers_and_cli_overrides(tmp_path):
    config = resolve_config(build_parser("t").parse_args(["--target", "x", "--model_id", "CompVis/stable-diffusion-v1-4"]))
    assert config["model_id"] == "CompVis/stable-diffusion-v1-4"
    assert (config["num_inference_steps"], config["guidance_scale"], config["hook_module"]) == (50, 7.5, "unet")
    assert concept_hyperparameters(config, "art") == (0.01, 10)
    assert concept_hyperparameters(config, "naked") == (0.01, 9)
    assert concept_hyperparameters(config, "object") == (0.02, 10)
    assert concept_select_ratio(config, "art") == concept_select_ratio(config, "naked") == 0.0  # the paper's plain union
    assert concept_hyperparameters(config, "demo") == (0.4, 10) and concept_select_ratio(config, "demo") == 0.7  # demo/README.md
    config = resolve_config(build_parser("t").parse_args(["--skill_ratio", "0.05", "--timesteps", "4", "--select_ratio", "0.5", "--safety_checker"]))
    assert concept_hyperparameters(config, "naked") == (0.05, 4)
    assert concept_select_ratio(config, "naked") == concept_select_ratio(config, "demo") == 0.5
    assert config["safety_checker"] is True


def test_the_default_model_is_the_demo_with_its_own_sampling_and_the_command_line_still_wins(tmp_path, monkeypatch):
    from utils.config import REPO_ROOT

    demo = str(REPO_ROOT / "demo" / "model")
    for folder in (REPO_ROOT, tmp_path):  # the repo-relative default is found from any working directory
        monkeypatch.chdir(folder)
        config = resolve_config(build_parser("t").parse_args([]))
        assert Path(config["model_id"]).resolve() == Path(demo).resolve() and (Path(config["model_id"]) / "model_index.json").is_file()
        assert (config["num_inference_steps"], config["guidance_scale"], config["batch_size"], config["num_images"]) == (20, 5.0, 32, 4)
    assert config["model_id"] == demo  # from tmp_path: the repo's folder, absolute
    # the demo named another way (absolute path) gets the same model settings; the command line wins over them
    config = resolve_config(build_parser("t").parse_args(["--model_id", demo, "--guidance_scale", "3.0"]))
    assert (config["num_inference_steps"], config["guidance_scale"]) == (20, 3.0)
    # another model gets the file's top-level (paper) values
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text("{}")
    config = resolve_config(build_parser("t").parse_args(["--model_id", str(other)]))
    assert (config["num_inference_steps"], config["guidance_scale"], config["batch_size"]) == (50, 7.5, 8)
    # a folder in the working directory wins over the repo's folder of the same relative name
    (tmp_path / "demo" / "model").mkdir(parents=True)
    (tmp_path / "demo" / "model" / "model_index.json").write_text("{}")
    config = resolve_config(build_parser("t").parse_args(["--model_id", "demo/model"]))
    assert config["model_id"] == "demo/model"


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("demo/model: {num_inference_steps: 20, steps: 3}", "model_defaults of demo/model has unknown key(s) steps"),
        ("demo/model: {model_id: other/model}", "unknown key(s) model_id"),  # an entry cannot swap the model
        ("demo/model: {safety_checker: true}", "unknown key(s) safety_checker"),  # flags stay on the command line
        ("demo/model: 20", "model_defaults of demo/model must be a mapping"),
        ("other/model: [num_inference_steps, 20]", "model_defaults of other/model must be a mapping"),  # checked though another model runs
    ],
)
def test_a_malformed_model_defaults_entry_is_a_usage_error(tmp_path, entry, fragment):
    from utils.config import REPO_ROOT

    text = (REPO_ROOT / "configs" / "wanda_config.yaml").read_text()
    text = text[: text.index("model_defaults:")] + "model_defaults:\n  " + entry + "\n"
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(UsageError) as err:
        resolve_config(build_parser("t").parse_args(["--config", str(tmp_path / "c.yaml")]))
    assert fragment in str(err.value)


def test_a_model_without_an_entry_can_borrow_another_models_settings(tmp_path):
    from utils.config import same_model

    other = tmp_path / "candidate"
    other.mkdir()
    (other / "model_index.json").write_text("{}")
    args = build_parser("t").parse_args(["--model_id", str(other), "--batch_size", "2", "--model_settings", "demo/model"])
    config = resolve_config(args)  # run_demo: any demo-world model samples like demo/model
    assert (config["num_inference_steps"], config["guidance_scale"], config["batch_size"]) == (20, 5.0, 2)
    assert not same_model("", "demo/model") and not same_model("demo/model", "")


def test_floats_are_written_in_scientific_notation_and_read_back():
    for value in (0.01, 7.5, 0.0125, 0.0, 1e-5, 0.1 + 0.2):
        assert yaml.safe_load(format_float(value)) == value
    assert format_float(0.01) == "1.0e-02"
    assert "skill_ratio: 1.0e-02" in dump_yaml({"skill_ratio": 0.01})


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--skill_ratio", "0"], "strictly between 0 and 1"),
        (["--skill_ratio", "1.5"], "strictly between 0 and 1"),
        (["--hook_module", "ffn-9"], "unknown --hook_module"),
        (["--timesteps", "0"], "positive integer"),
        (["--model_id", "/no/such/folder"], "does not exist"),
        (["--config", "/no/such.yaml"], "does not exist"),
        (["--guidance_scale", "nan"], "--guidance_scale must be a finite number"),
        (["--guidance_scale", "inf"], "--guidance_scale must be a finite number"),
        (["--select_ratio", "nan"], "--select_ratio must lie in"),
        (["--height", "-64"], "--height must be a positive multiple of 8"),
        (["--width", "0"], "--width must be a positive multiple of 8"),
        (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295"),
        (["--seed", "4294967296"], "--seed must be an integer from 0"),
        (["--device", "cuda:x"], "unknown --device"),
        (["--res_path", "{file}"], "is an existing file; pass a folder"),
        (["--res_path", "{file}/results"], "which is a file; pass a folder"),
        (["--res_path", ""], "no results folder given"),
        (["--model_id", "{file}"], "is a file, not a diffusers folder"),
    ],
)
def test_bad_values_raise_one_clear_sentence(argv, fragment, tmp_path):
    (tmp_path / "file").write_text("the user's")
    argv = [a.format(file=tmp_path / "file") for a in argv]
    with pytest.raises(UsageError, match=fragment):
        resolve_config(build_parser("t").parse_args(argv))
    assert (tmp_path / "file").read_text() == "the user's"


def config_file(tmp_path, text: str) -> list[str]:
    """``--config`` of the shipped config with ``text`` in place of its concept_defaults and model_defaults."""
    from utils.config import REPO_ROOT

    shipped = (REPO_ROOT / "configs" / "wanda_config.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(shipped[: shipped.index("concept_defaults:")] + text)
    return ["--config", str(path)]


ALIAS_BOMB = """concept_defaults:
  a: &a {skill_ratio: 1.0e-02}
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


@pytest.mark.parametrize(
    "text, fragment",
    [
        (ALIAS_BOMB, "expands to more than 10,000 values"),
        ("concept_defaults:\n  a: &a [*a]\n", "expands to more than"),  # an alias that holds itself
        ("concept_defaults: 5\n", "concept_defaults must map concept kinds to settings"),
        ("concept_defaults:\n  art: {skill_ratio: 2.0, timesteps: 10}\n", "concept_defaults of art: --skill_ratio must lie strictly between 0 and 1"),
        ("concept_defaults:\n  art: {skill_ratio: 1.0e-02, timesteps: 0}\n", "concept_defaults of art: --timesteps must be a positive integer"),
        ("concept_defaults:\n  art: {skill_ratio: abc}\n", "concept_defaults.art.skill_ratio must be a number, got 'abc'"),
        ("concept_defaults:\n  art: {tau: 3}\n", "concept_defaults of art has unknown key(s) tau"),
        ("concept_defaults:\n  art: [1, 2]\n", "concept_defaults of art must be a mapping"),
        ("model_defaults:\n  demo/model: {num_inference_steps: abc}\n", "model_defaults.demo/model.num_inference_steps must be an integer, got 'abc'"),
    ],
)
def test_hostile_nested_tables_are_one_sentence(tmp_path, text, fragment):
    with pytest.raises(UsageError) as err:
        resolve_config(build_parser("t").parse_args(config_file(tmp_path, text)))
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("height: abc", "height must be an integer, got 'abc'"),
        ("num_inference_steps: abc", "num_inference_steps must be an integer, got 'abc'"),
        ("num_inference_steps: 2.5", "num_inference_steps must be an integer, got 2.5"),
        ("guidance_scale: [1, 2]", "guidance_scale must be a number"),
        ("safety_checker: 'no'", "safety_checker must be true or false"),
        ("model_id: 5", "model_id must be text, got 5"),
        ("seed: true", "seed must be an integer, got True"),
        ("guidance_scale: .nan", "--guidance_scale must be a finite number"),
        ("device: null", "no device is set; pass --device or set device in the config file"),
    ],
)
def test_top_level_values_of_the_wrong_type_are_one_sentence(tmp_path, line, fragment):
    import re

    from utils.config import REPO_ROOT

    path = tmp_path / "c.yaml"
    key = line.split(":")[0]
    path.write_text(re.sub(rf"^{key}:.*$", line, (REPO_ROOT / "configs" / "wanda_config.yaml").read_text(), count=1, flags=re.M))
    with pytest.raises(UsageError) as err:
        resolve_config(build_parser("t").parse_args(["--config", str(path), "--model_id", "CompVis/stable-diffusion-v1-4"]))
    assert fragment in str(err.value)


def test_text_values_convert_as_on_the_command_line_and_oversized_or_binary_files_are_refused(tmp_path):
    argv = config_file(tmp_path, "concept_defaults:\n  art: {timesteps: '4'}\n")
    path = tmp_path / "c.yaml"
    text = path.read_text().replace("num_inference_steps: 50", "num_inference_steps: '20'").replace("skill_ratio: null", "skill_ratio: 1e-2")
    path.write_text("\ufeff" + text)  # a byte-order mark; YAML reads 1e-2 as text
    config = resolve_config(build_parser("t").parse_args(argv + ["--model_id", "CompVis/stable-diffusion-v1-4"]))
    assert config["num_inference_steps"] == 20 and config["skill_ratio"] == 0.01 and concept_hyperparameters(config, "art") == (0.01, 4)
    path.write_text("# padding\n" * 30_000)
    with pytest.raises(UsageError, match="more than a config's 262,144"):
        resolve_config(build_parser("t").parse_args(["--config", str(path)]))
    path.write_bytes(b"seed: 0\n\xff\xfe\x00")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        resolve_config(build_parser("t").parse_args(["--config", str(path)]))


def test_unknown_yaml_key_is_named(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("skil_ratio: 0.01\n")
    with pytest.raises(UsageError, match="unknown key.*skil_ratio"):
        resolve_config(build_parser("t").parse_args(["--config", str(bad)]))


def test_every_paper_concept_builds_pairs_from_the_templates():
    art = build_concept("Van Gogh", 0)
    assert art.kind == "art" and len(art.pairs) >= 20
    assert art.pairs[0].base == "a photo of a cat" and art.pairs[0].target == "a cat in the style of Van Gogh"
    assert build_concept("Da Vinci", 0).pairs[0].target.endswith("in the style of Leonardo Da Vinci")
    naked = build_concept("naked", 0).pairs[0]
    assert (naked.base, naked.target) == ("a photo of a man", "a photo of a naked man")
    for obj in ("tench", "english springer", "cassette player", "chain saw", "church", "french horn", "garbage truck", "gas pump", "golf ball", "parachute"):
        pair = build_concept(obj, 0).pairs[0]
        assert pair.target == f"a {obj} in {pair.base}"
    assert build_concept("garbage truck", 0).pairs[0].base == "a street"
    male = build_concept("male", 7)
    assert male.pairs[0].base == "a headshot of a man" and male.pairs[0].target == "a headshot of a woman"
    assert [p.seed for p in male.pairs] == [p.seed for p in build_concept("male", 7).pairs]
    assert len({p.seed for p in male.pairs}) == len(male.pairs)
    female = build_concept("female", 7).pairs[0]
    assert (female.base, female.target) == ("a headshot of a woman", "a headshot of a man")
    memo = build_concept("memorize_0", 0, target_file="memorize_0")
    assert memo.kind == "memorize" and all(p.base == "" for p in memo.pairs)
    assert all(p.seed == 0 for p in art.pairs)


def test_custom_concept_and_its_errors(prompt_files):
    base, target = prompt_files(["a dog", "a cat"], ["a red dog", "a red cat"])
    concept = build_concept("red", 3, base_prompts=base, target_prompts=target)
    assert concept.kind == "custom" and [(p.base, p.target, p.seed) for p in concept.pairs] == [("a dog", "a red dog", 3), ("a cat", "a red cat", 3)]
    base, target = prompt_files(["a dog", "a cat"], ["a red dog"])
    with pytest.raises(UsageError, match="has 2 prompts but --target_prompts has 1"):
        build_concept("red", 0, base_prompts=base, target_prompts=target)
    base, target = prompt_files([], [])
    with pytest.raises(UsageError, match="at least one prompt"):
        build_concept("red", 0, base_prompts=base, target_prompts=target)
    with pytest.raises(UsageError, match="does not exist"):
        build_concept("red", 0, base_prompts="/no/a.txt", target_prompts="/no/b.txt")


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(UsageError) as err:
        build_concept("Rembrandt", 0)
    for name in known_targets():
        assert name in str(err.value)
    with pytest.raises(UsageError, match="not found"):
        build_concept("memorize_9", 0)


def test_slugify():
    assert slugify("Van Gogh") == "van_gogh" and slugify("golf ball") == "golf_ball"


def test_target_names_become_one_safe_folder_each():
    from utils.paths import concept_dir

    for name in ("..", ".", "../..", "/", "-rf", ".hidden", "x" * 300, "梵高", "Ñandú"):
        folder = concept_dir("results", "m", name)
        assert folder.parent == Path("results") / "m" and folder.name not in ("", ".", "..")
        assert not folder.name.startswith((".", "-")) and len(folder.name) <= 64, name
    assert slugify("梵高") != slugify("莫奈") != slugify("モネ")  # non-Latin names no longer share one folder
    assert slugify("x" * 300) != slugify("x" * 299) and slugify("梵高") == "梵高"


def test_a_byte_order_mark_or_binary_prompt_file(prompt_files, tmp_path):
    base, target = prompt_files(["\ufeffa dog"], ["a red dog"])
    assert build_concept("red", 0, base_prompts=base, target_prompts=target).pairs[0].base == "a dog"
    (tmp_path / "bin.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "nul.txt").write_bytes(b"a dog\x00\x01\n")
    for name in ("bin.txt", "nul.txt"):
        with pytest.raises(UsageError, match="is not UTF-8 text"):
            build_concept("red", 0, base_prompts=str(tmp_path / name), target_prompts=target)


def test_demo_world_values_are_concepts_whose_pairs_differ_only_in_the_value():
    from functools import partial

    from demo.concepts import DEMO_WORLD
    from utils.concepts import build_concept as build, concept_kind as kind

    build_concept, concept_kind = partial(build, source=DEMO_WORLD), partial(kind, source=DEMO_WORLD)  # the demo model's source
    assert concept_kind("stripes") == concept_kind("circle") == concept_kind("large") == "demo"
    assert concept_kind("Van Gogh") == "art" and concept_kind("male") == "gender"  # no name is shared
    stripes = build_concept("stripes", 0)
    assert len(stripes.pairs) == 32 and stripes.kind == "demo"
    for pair in stripes.pairs:
        assert pair.target.endswith("in the style of stripes") and pair.base == pair.target.replace("stripes", "plain")
    assert build_concept("stripes", 0) == stripes and build_concept("stripes", 1) != stripes
    for pair in build_concept("circle", 0).pairs:
        base, target = pair.base.split(), pair.target.split()
        assert [i for i in range(len(base)) if base[i] != target[i]] == [3] and target[3] == "circle"


def test_the_demo_model_is_asked_only_demo_world_or_custom_concepts():
    from demo.concepts import DEMO_WORLD
    from utils.concepts import Concept, check_fits_model, load_concept_source
    from utils.config import REPO_ROOT

    def fits(concept, model):  # checked as a wanda script checks it, for a run of ``model`` (its config's model_defaults)
        config = resolve_config(build_parser("t").parse_args(["--model_id", model]))
        return check_fits_model(concept, config, load_concept_source(config["concept_source"]))

    for model in ("demo/model", str(REPO_ROOT / "demo" / "model")):
        with pytest.raises(UsageError, match="'naked' is a concept of the paper's Stable Diffusion models"):
            fits(build_concept("naked", 0), model)
        assert fits(build_concept("stripes", 0, source=DEMO_WORLD), model).kind == "demo"
        custom = Concept("mine", "custom", ())
        assert fits(custom, model) is custom
    assert fits(build_concept("naked", 0), "CompVis/stable-diffusion-v1-4").kind == "naked"
