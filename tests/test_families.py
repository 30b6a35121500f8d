"""Every diffusers family (SD 2.x, SDXL, SD 3.x, PixArt-alpha/sigma, Flux.1) on tiny random models built offline:
hook sites found from the blocks, statistics equal to a slow one-prompt-at-a-time computation, the Flux single
blocks' MLP columns, the scripts, masks, export and benchmarks end to end, and one-sentence errors."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import run_script
from neuron_receivers.hook_variants import HOOK_VARIANTS, component_name, full_masks, scored_weights, select_sites
from utils.concepts import Concept, PromptPair
from utils.skilled import union_mask

FAMILIES = ("sd2", "sdxl", "sd3", "pixart-alpha", "pixart-sigma", "flux")
CONFIG = {"num_inference_steps": 3, "guidance_scale": 4.0, "height": 32, "width": 32, "batch_size": 2, "streams": "both"}
PAIRS = (PromptPair("a photo of a cat", "a cat in the style of stripes", 1), PromptPair("a dog in a house", "a red dog", 2))
SIZE = ["--num_inference_steps", "3", "--height", "32", "--width", "32", "--device", "cpu"]
# FFN second Linears found per stream choice (denoiser, hook variant unet); None: nothing to score there
SITES = {
    "sd2": {"image": 4, "text": None, "both": 4},
    "sdxl": {"image": 8, "text": None, "both": 8},  # 2 transformer layers in a block
    "sd3": {"image": 2, "text": 1, "both": 3},  # the last block is context-pre-only: no ff_context
    "pixart-alpha": {"image": 2, "text": None, "both": 2},
    "pixart-sigma": {"image": 2, "text": None, "both": 2},
    "flux": {"image": 4, "text": 4, "both": 6},  # 2 double blocks (ff, ff_context) + 2 single blocks (shared)
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run fastest on one thread


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    """family -> a saved tiny diffusers folder of that family."""
    from utils.tiny_families import save_tiny_family

    root = tmp_path_factory.mktemp("families")
    return {family: save_tiny_family(root / f"tiny-{family}", family, seed=0) for family in FAMILIES}


@pytest.fixture(scope="module")
def pipes(family_dirs):
    """family -> the folder loaded through the project's loader (cpu, float32), loaded once."""
    from utils.model_loading import load_pipeline

    loaded = {}

    def get(family):
        if family not in loaded:
            loaded[family] = load_pipeline(str(family_dirs[family]), torch.device("cpu"), torch.float32)
        return loaded[family]

    return get


def denoiser_sites(pipe, streams="both", variant="unet"):
    v = HOOK_VARIANTS[variant]
    return select_sites(getattr(pipe, component_name(pipe, v)), v, streams)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_finds_its_ffns_per_stream(family, pipes):
    pipe = pipes(family)
    for streams, count in SITES[family].items():
        if count is None:
            with pytest.raises(ValueError, match=f"no layer that hook variant unet scores on the {streams} stream"):
                denoiser_sites(pipe, streams)
        else:
            sites = denoiser_sites(pipe, streams)
            assert len(sites) == count, streams
            assert all(isinstance(s.module, torch.nn.Linear) for s in sites.values())
    both = denoiser_sites(pipe, "both")
    if family in ("sd3", "flux"):
        assert {s.stream for s in both.values()} >= {"image", "text"}
        assert all(name.endswith("ff_context.net.2") for name, s in both.items() if s.stream == "text")


@pytest.mark.parametrize("family, variant, ending", [
    ("pixart-sigma", "text", "DenseReluDense.wo"), ("sd3", "text-3", "DenseReluDense.wo"), ("flux", "text-2", "DenseReluDense.wo"),
    ("sd3", "text", "mlp.fc2"), ("sdxl", "text-2", "mlp.fc2"), ("flux", "text", "mlp.fc2"),
])
def test_the_text_encoder_variants_select_clip_and_t5_ffns(family, variant, ending, pipes):
    sites = denoiser_sites(pipes(family), variant=variant)
    assert len(sites) == 2 and all(name.endswith(ending) for name in sites)  # 2 layers in each tiny encoder


def test_the_flux_single_block_scores_exactly_the_mlp_columns_of_proj_out(pipes):
    from neuron_receivers.trace import trace_steps
    from utils.generation import run_pipeline

    pipe = pipes("flux")
    sites = denoiser_sites(pipe, "image")
    block = pipe.transformer.single_transformer_blocks[0]
    site = sites["single_transformer_blocks.0.proj_out"]
    dim, hidden = block.proj_out.out_features, block.mlp_hidden_dim
    assert site.columns == slice(dim, dim + hidden) and block.proj_out.in_features == dim + hidden
    # what the trace hands on for proj_out is exactly the MLP's activation (act_mlp(proj_mlp(x)))
    seen, mlp = [], []
    handle = block.act_mlp.register_forward_hook(lambda m, a, out: mlp.append(out.detach().clone()))
    try:
        with trace_steps(pipe.transformer, {"p": block.proj_out}, on_input=lambda t, n, x: seen.append(x.detach().clone()),
                         columns={"p": site.columns}):
            run_pipeline(pipe, ["a cat"], [0], dict(CONFIG, num_inference_steps=2))
    finally:
        handle.remove()
    assert len(seen) == len(mlp) == 2 and all(torch.equal(a, b) for a, b in zip(seen, mlp))
    # the scored weight is a view of those columns; a mask of it widens to the whole weight, False elsewhere
    weight = scored_weights(sites)["single_transformer_blocks.0.proj_out"]
    assert weight.shape == (dim, hidden) and weight.data_ptr() == block.proj_out.weight.data_ptr() + dim * weight.element_size()
    mask = torch.zeros(dim, hidden, dtype=torch.bool)
    mask[0, 0] = mask[3, hidden - 1] = True
    whole = full_masks(sites, {"single_transformer_blocks.0.proj_out": mask})["single_transformer_blocks.0.proj_out"]
    assert whole.shape == block.proj_out.weight.shape and int(whole.sum()) == 2 and whole[0, dim] and whole[3, dim + hidden - 1]
    assert not whole[:, :dim].any()


def direct_norms(pipe, sites, prompts, seeds, config):
    """Slow reference: one prompt at a time, plain forward pre-hooks, every input row normalised in float64
    (F.normalize) and squared; layer -> [steps, in] norms."""
    from neuron_receivers.hook_variants import denoiser_of
    from utils.generation import run_pipeline

    denoiser = denoiser_of(pipe)
    sums = {}
    for prompt, seed in zip(prompts, seeds):
        step = {"t": -1}
        handles = [denoiser.register_forward_pre_hook(lambda m, a: step.__setitem__("t", step["t"] + 1))]

        def keeper(name, columns):
            def keep(m, args):
                x = args[0] if columns is None else args[0][..., columns]
                rows = torch.nn.functional.normalize(x.reshape(-1, x.shape[-1]).double(), dim=-1)
                sums[(step["t"], name)] = sums.get((step["t"], name), 0) + (rows**2).sum(0)

            return keep

        handles += [site.module.register_forward_pre_hook(keeper(name, site.columns)) for name, site in sites.items()]
        try:
            run_pipeline(pipe, [prompt], [seed], config)
        finally:
            for handle in handles:
                handle.remove()
    steps = 1 + max(t for t, _ in sums)
    return {name: torch.stack([sums[(t, name)] for t in range(steps)]).sqrt() for name in sites}


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_statistics_and_masks_equal_a_slow_one_prompt_at_a_time_computation(family, pipes):
    from utils.recording import record_norms

    pipe = pipes(family)
    sites = denoiser_sites(pipe, "both")
    recorded = record_norms(pipe, Concept("t", "custom", PAIRS), CONFIG, HOOK_VARIANTS["unet"], None)
    assert set(recorded) == set(sites)
    base = direct_norms(pipe, sites, [p.base for p in PAIRS], [p.seed for p in PAIRS], CONFIG)
    target = direct_norms(pipe, sites, [p.target for p in PAIRS], [p.seed for p in PAIRS], CONFIG)
    weights = scored_weights(sites)
    for name in sites:
        assert recorded[name].shape == (2, 3, weights[name].shape[1])
        torch.testing.assert_close(recorded[name][0].double(), base[name], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(recorded[name][1].double(), target[name], rtol=1e-4, atol=1e-5)
        slow = torch.stack([base[name], target[name]]).float()
        expected = union_mask(weights[name], slow, 0.1, 3, 0.0)
        assert expected.any() and torch.equal(union_mask(weights[name], recorded[name], 0.1, 3, 0.0), expected), name


@pytest.mark.parametrize("family", ["sdxl", "sd3", "pixart-sigma", "flux"])
def test_batched_and_truncated_recording_give_the_masks_of_a_full_one_pair_run(family, pipes):
    from utils.recording import record_norms
    from utils.skilled import union_masks

    pipe = pipes(family)
    concept = Concept("t", "custom", PAIRS)
    full = record_norms(pipe, concept, dict(CONFIG, batch_size=1), HOOK_VARIANTS["unet"], None)
    short = record_norms(pipe, concept, CONFIG, HOOK_VARIANTS["unet"], stop_at=2)
    weights = scored_weights(denoiser_sites(pipe, "both"))
    assert all(short[name].shape[1] == 2 for name in short)
    masks_full, masks_short = (union_masks(weights, n, 0.1, 2, 0.0) for n in (full, short))
    assert any(m.any() for m in masks_full.values())
    assert all(torch.equal(masks_full[k], masks_short[k]) for k in masks_full)


def _prompt_files(tmp_path):
    base, target = tmp_path / "base.txt", tmp_path / "target.txt"
    base.write_text("\n".join(p.base for p in PAIRS) + "\n")
    target.write_text("\n".join(p.target for p in PAIRS) + "\n")
    return ["--target", "stripes", "--base_prompts", str(base), "--target_prompts", str(target)]


def _images(pipe, seed=3):
    from utils.generation import run_pipeline

    return torch.tensor(__import__("numpy").asarray(run_pipeline(pipe, ["a dog in a house"], [seed], CONFIG, output_type="pil")[0]), dtype=torch.int16)


@pytest.mark.parametrize("family", ["sd2", "sdxl", "sd3", "pixart-sigma", "flux"])
def test_the_scripts_mask_export_and_pruned_pipeline_work_for_each_family(family, family_dirs, pipes, tmp_path):
    import diffusers

    from utils.pruning import load_prune_mask, load_pruned_pipeline

    res, export = tmp_path / "r", tmp_path / "export"
    argv = ["--model_id", str(family_dirs[family]), *SIZE, "--res_path", str(res), "--streams", "both", *_prompt_files(tmp_path),
            "--skill_ratio", "0.2", "--timesteps", "2"]
    run_script("save_union_over_time", [*argv, "--export_diffusers", str(export)])
    (path,) = res.glob("*/stripes/pruned/*/prune_mask.safetensors")
    masks, meta = load_prune_mask(path)
    pipe = pipes(family)
    component = "unet" if family in ("sd2", "sdxl") else "transformer"
    assert meta["component"] == component and meta["pipeline_class"] == type(pipe).__name__
    params = dict(getattr(pipe, component).named_parameters())
    sites = denoiser_sites(pipe, "both")
    assert set(masks) == {f"{name}.weight" for name in sites}  # the keys are the component's parameter names
    assert all(masks[k].shape == params[k].shape for k in masks)
    assert meta["num_scored"] == sum(w.numel() for w in scored_weights(sites).values()) and 0 < meta["num_pruned"] < meta["num_scored"]
    for name, site in sites.items():
        if site.columns is not None:  # a Flux single block: nothing outside the MLP columns is pruned
            assert not masks[f"{name}.weight"][:, : site.columns.start].any()
    # the exported component is the base one with exactly the masked weights zeroed
    exported = getattr(diffusers, type(getattr(pipe, component)).__name__).from_pretrained(str(export))
    for key, mask in masks.items():
        expected = params[key].detach().masked_fill(mask, 0)
        assert torch.equal(exported.get_parameter(key).detach(), expected), key
    # a pruned pipeline generates, and differently from the unpruned one
    pruned = load_pruned_pipeline(path, device="cpu", dtype="float32")
    assert not any(torch.equal(pruned_p, params[k]) for k, pruned_p in ((k, getattr(pruned, component).get_parameter(k)) for k in masks) if masks[k].any())
    assert not torch.equal(_images(pruned), _images(pipe))


def test_recording_removal_and_a_multi_concept_union_on_a_two_stream_model(family_dirs, tmp_path):
    res = tmp_path / "r"
    common = ["--model_id", str(family_dirs["flux"]), *SIZE, "--res_path", str(res)]
    run_script("wanda", [*common, *_prompt_files(tmp_path), "--num_preview", "1"])
    folder = next(res.glob("*/stripes"))
    counts = json.loads((folder / "skilled_counts.json").read_text())
    assert len(counts["layers"]) == SITES["flux"]["image"] and (folder / "preview" / "pair_000_target.png").is_file()
    run_script("remove_neurons", [*common, *_prompt_files(tmp_path), "--num_images", "1", "--skill_ratio", "0.2"])
    assert len(list(folder.glob("removal/*/pair_000.png"))) == 1
    run_script("multi_concept_union", [*common, "--targets", "Van Gogh", "parachute", "--skill_ratio", "0.1", "--timesteps", "1",
                                       "--batch_size", "4"])
    assert len(list(res.glob("*/multi/*/prune_mask.safetensors"))) == 1


@pytest.mark.parametrize("family, variant, ending", [("pixart-sigma", "text", "DenseReluDense.wo"), ("sd3", "text-3", "DenseReluDense.wo")])
def test_a_t5_text_encoder_is_pruned_and_exported(family, variant, ending, family_dirs, tmp_path):
    import transformers

    from utils.pruning import load_prune_mask

    res, export = tmp_path / "r", tmp_path / "export"
    run_script("save_union_over_time", ["--model_id", str(family_dirs[family]), *SIZE, "--res_path", str(res), "--hook_module", variant,
                                        *_prompt_files(tmp_path), "--skill_ratio", "0.2", "--export_diffusers", str(export)])
    masks, meta = load_prune_mask(next(res.glob("*/stripes/pruned/*/prune_mask.safetensors")))
    assert meta["component"] == {"text": "text_encoder", "text-3": "text_encoder_3"}[variant]
    assert masks and all(key.endswith(f"{ending}.weight") for key in masks) and any(m.any() for m in masks.values())
    encoder = transformers.T5EncoderModel.from_pretrained(str(export))
    assert all(not encoder.get_parameter(key)[mask].any() for key, mask in masks.items())


@pytest.fixture(scope="module")
def no_ffn_dir(tmp_path_factory):
    """An unconditional DDPM pipeline: a UNet2DModel without any transformer block (nothing to score)."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(32, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=8)
    folder = tmp_path_factory.mktemp("ddpm") / "tiny-ddpm"
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(str(folder))
    return folder


def test_bad_input_for_a_family_is_one_sentence_and_exit_2(family_dirs, no_ffn_dir, tmp_path, capsys):
    cases = [
        (["--model_id", str(no_ffn_dir)], "UNet2DModel has no layer that hook variant unet scores"),
        (["--model_id", str(family_dirs["sd3"]), "--hook_module", "attn_key"], "SD3Transformer2DModel has no layer that hook variant attn_key scores"),
        (["--model_id", str(family_dirs["pixart-sigma"]), "--streams", "text"], "on the text stream(s)"),
        (["--model_id", str(family_dirs["sdxl"]), "--hook_module", "text-3"], "has no text_encoder_3"),
        (["--model_id", str(family_dirs["flux"]), "--streams", "all"], "unknown --streams 'all'"),
    ]
    for extra, message in cases:
        res = tmp_path / "r"
        with pytest.raises(SystemExit) as exit_info:
            run_script("save_union_over_time", [*SIZE, "--res_path", str(res), *_prompt_files(tmp_path), *extra])
        err = capsys.readouterr().err.strip().splitlines()  # diffusers' loading bars may come first
        assert exit_info.value.code == 2 and message in err[-1] and sum(line.startswith("error") for line in err) == 1, (extra, err)
        assert not list(res.glob("**/*.safetensors"))


def test_a_mask_of_another_family_is_refused_in_one_sentence(family_dirs, pipes, tmp_path, capsys):
    from utils.errors import UsageError
    from utils.pruning import apply_prune_mask

    res = tmp_path / "r"
    run_script("save_union_over_time", ["--model_id", str(family_dirs["flux"]), *SIZE, "--res_path", str(res), *_prompt_files(tmp_path),
                                        "--skill_ratio", "0.2", "--timesteps", "1"])
    mask = next(res.glob("*/stripes/pruned/*/prune_mask.safetensors"))
    for family in ("sd3", "sdxl"):
        with pytest.raises(UsageError, match="use the model the mask was made for"):
            apply_prune_mask(pipes(family), mask)
    # a benchmark refuses it before the first image
    out = tmp_path / "bench"
    with pytest.raises(SystemExit) as exit_info:
        run_script("artist_erasure", ["--model_id", str(family_dirs["sd3"]), "--num_inference_steps", "2", "--device", "cpu", "--out_dir", str(out),
                                      "--target", "Monet", "--limit", "1", "--baseline", "concept-prune", "--ckpt_name", str(mask)],
                   folder="benchmarking")
    assert exit_info.value.code == 2 and "use the model the mask was made for" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_a_benchmark_runs_the_concept_prune_baseline_of_each_transformer_family(family, family_dirs, tiny_clip_dir, tmp_path):
    res = tmp_path / "r"
    run_script("save_union_over_time", ["--model_id", str(family_dirs[family]), *SIZE, "--res_path", str(res), *_prompt_files(tmp_path),
                                        "--skill_ratio", "0.2", "--timesteps", "2"])
    mask = next(res.glob("*/stripes/pruned/*/prune_mask.safetensors"))
    out = tmp_path / "bench"
    run_script("artist_erasure", ["--model_id", str(family_dirs[family]), "--num_inference_steps", "2", "--height", "32", "--width", "32",
                                  "--device", "cpu", "--batch_size", "2", "--out_dir", str(out), "--target", "Monet", "--limit", "2",
                                  "--baseline", "concept-prune", "--ckpt_name", str(mask), "--clip_model", str(tiny_clip_dir)],
               folder="benchmarking")
    report = json.loads((out / "metrics.json").read_text())
    assert report["num_prompts"] == 2 and set(report["summary"]) >= {"original", "edited"}
    assert report["models"]["edited"]["mask"]["component"] == "transformer"
    assert report["summary"]["edited"] != report["summary"]["original"]  # the pruned model's images score differently


def test_a_family_samples_with_its_own_settings_unless_an_option_is_typed(family_dirs, tiny_sd_dir):
    from utils.bench_config import build_bench_parser, resolve_bench_config
    from utils.config import build_parser, resolve_config

    def wanda(*argv):
        return resolve_config(build_parser("t").parse_args(["--model_id", *argv]))

    def bench(*argv):
        return resolve_bench_config(build_bench_parser("t", ("clip_model",)).parse_args(["--model_id", *argv, "--target", "Monet", "--baseline", "sd"]),
                                    ("clip_model",), "artist_erasure")

    for resolve in (wanda, bench):
        flux = resolve(str(family_dirs["flux"]))
        assert (flux["num_inference_steps"], flux["guidance_scale"]) == (28, 3.5)
        typed = resolve(str(family_dirs["flux"]), "--guidance_scale", "2.0")
        assert (typed["num_inference_steps"], typed["guidance_scale"]) == (28, 2.0)
        sd3 = resolve(str(family_dirs["sd3"]))
        assert (sd3["num_inference_steps"], sd3["guidance_scale"]) == (28, 7.0)
        sd = resolve(str(tiny_sd_dir))  # SD 1.x and 2.x take the paper's values
        assert (sd["num_inference_steps"], sd["guidance_scale"]) == (50, 7.5)
    assert wanda(str(family_dirs["flux"]))["streams"] == "image"


def test_another_scheduler_is_one_option_and_a_wrong_name_one_sentence(family_dirs):
    from utils.errors import UsageError
    from utils.model_loading import load_pipeline

    pipe = load_pipeline(str(family_dirs["sdxl"]), torch.device("cpu"), torch.float32, scheduler="DDIMScheduler")
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    with pytest.raises(UsageError, match="--scheduler UNetModel is not a diffusers scheduler class"):
        load_pipeline(str(family_dirs["sdxl"]), torch.device("cpu"), torch.float32, scheduler="UNetModel")
