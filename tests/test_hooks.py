"""Hooks: selection table, removal, execution order, recorded norms against a direct computation."""
from __future__ import annotations

import pytest
import torch

from neuron_receivers.hook_variants import HOOK_VARIANTS, component_name, select_modules
from neuron_receivers.norm_recorder import ActivationNormRecorder
from neuron_receivers.step_pruner import StepPruner
from neuron_receivers.trace import StopGeneration, trace_steps
from utils.generation import run_pipeline
from utils.recording import record_norms
from utils.concepts import Concept, PromptPair

CONFIG = {"num_inference_steps": 3, "guidance_scale": 7.5, "height": None, "width": None, "batch_size": 4}


def hook_count(pipe):
    modules = list(pipe.unet.modules()) + list(pipe.text_encoder.modules())
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in modules)


def test_sd1_shape_has_16_ffns_and_each_variant_selects_linears(tiny_pipe):
    counts = {name: len(select_modules(getattr(tiny_pipe, component_name(tiny_pipe, v)), v)) for name, v in HOOK_VARIANTS.items()
              if v.component in ("denoiser", "text_encoder")}  # SD 1.x has one text encoder
    assert counts == {"unet": 16, "unet-ffn-1": 16, "attn_key": 16, "attn_val": 16, "text": 2}


def test_layer_order_is_execution_order_and_hooks_are_removed(tiny_pipe):
    modules = select_modules(tiny_pipe.unet, HOOK_VARIANTS["unet"])
    before = hook_count(tiny_pipe)
    with trace_steps(tiny_pipe.unet, modules) as trace:
        run_pipeline(tiny_pipe, ["a cat"], [0], CONFIG)
    assert hook_count(tiny_pipe) == before
    order = trace.layer_order
    assert len(order) == 16 and trace.step == 3  # PNDM: 3 steps -> 4 UNet calls (0..3)
    blocks = [name.split(".")[0] for name in order]
    assert blocks == ["down_blocks"] * 6 + ["mid_block"] + ["up_blocks"] * 9
    assert order != list(modules)  # registration order puts mid_block last
    expected = [f"down_blocks.{b}.attentions.{a}" for b in range(3) for a in range(2)] + ["mid_block.attentions.0"]
    expected += [f"up_blocks.{b}.attentions.{a}" for b in range(1, 4) for a in range(3)]
    assert order == [f"{e}.transformer_blocks.0.ff.net.2" for e in expected]


def test_hooks_are_removed_when_generation_raises(tiny_pipe):
    modules = select_modules(tiny_pipe.unet, HOOK_VARIANTS["unet"])
    before = hook_count(tiny_pipe)

    def explode(step, name, x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with trace_steps(tiny_pipe.unet, modules, on_input=explode):
            run_pipeline(tiny_pipe, ["a cat"], [0], CONFIG)
    with pytest.raises(StopGeneration):
        with trace_steps(tiny_pipe.unet, modules, stop_at=2):
            run_pipeline(tiny_pipe, ["a cat"], [0], CONFIG)
    assert hook_count(tiny_pipe) == before


def direct_norms(pipe, prompts, seeds, config, layer):
    """Slow reference: one prompt at a time, keep every input, normalise rows with F.normalize."""
    module = dict(pipe.unet.named_modules())[layer]
    per_step = {}
    for prompt, seed in zip(prompts, seeds):
        step = {"t": -1}
        h1 = pipe.unet.register_forward_pre_hook(lambda m, a: step.__setitem__("t", step["t"] + 1))

        def keep(m, args):
            rows = args[0].reshape(-1, args[0].shape[-1]).double()
            rows = torch.nn.functional.normalize(rows, dim=-1)
            per_step[step["t"]] = per_step.get(step["t"], 0) + (rows**2).sum(0)

        h2 = module.register_forward_pre_hook(keep)
        try:
            run_pipeline(pipe, [prompt], [seed], config)
        finally:
            h1.remove()
            h2.remove()
    return torch.stack([per_step[t] for t in sorted(per_step)]).sqrt()


def test_recorded_norms_equal_a_direct_computation(tiny_pipe):
    pairs = (PromptPair("a photo of a cat", "a cat in the style of x", 5), PromptPair("a dog", "a red dog", 9), PromptPair("a tree", "a tall tree", 5))
    concept = Concept("t", "custom", pairs)
    norms = record_norms(tiny_pipe, concept, dict(CONFIG, batch_size=2), HOOK_VARIANTS["unet"], stop_at=None)
    assert list(norms)[6].startswith("mid_block")
    for layer in (list(norms)[0], list(norms)[6], list(norms)[-1]):
        base = direct_norms(tiny_pipe, [p.base for p in pairs], [p.seed for p in pairs], CONFIG, layer)
        target = direct_norms(tiny_pipe, [p.target for p in pairs], [p.seed for p in pairs], CONFIG, layer)
        assert norms[layer].shape == (2, 4, base.shape[1])
        torch.testing.assert_close(norms[layer][0].double(), base, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(norms[layer][1].double(), target, rtol=1e-4, atol=1e-5)


def test_truncated_recording_stops_early_and_matches_the_full_run(tiny_pipe):
    pairs = (PromptPair("a cat", "a blue cat", 1), PromptPair("a car", "a blue car", 2))
    concept = Concept("t", "custom", pairs)
    calls = {"n": 0}
    handle = tiny_pipe.unet.register_forward_hook(lambda m, a, o: calls.__setitem__("n", calls["n"] + 1))
    try:
        short = record_norms(tiny_pipe, concept, CONFIG, HOOK_VARIANTS["unet"], stop_at=2)
    finally:
        handle.remove()
    assert calls["n"] == 2  # one batch, two completed UNet calls, not four
    full = record_norms(tiny_pipe, concept, dict(CONFIG, batch_size=1), HOOK_VARIANTS["unet"], stop_at=None)
    for layer in full:
        assert short[layer].shape[1] == 2
        torch.testing.assert_close(short[layer], full[layer][:, :2], rtol=1e-4, atol=1e-6)


def test_recorder_splits_groups_in_a_cfg_batch():
    recorder = ActivationNormRecorder(2)
    recorder.set_batch_groups([0, 1])
    x = torch.zeros(4, 3, 5)  # [uncond base, uncond target, cond base, cond target]
    x[0, :, 0] = 1.0
    x[2, :, 0] = 2.0
    x[1, :, 1] = 3.0
    x[3, :, 2] = -4.0
    recorder(0, "l", x)
    sums = recorder.sums[(0, "l")]
    torch.testing.assert_close(sums[0], torch.tensor([6.0, 0, 0, 0, 0]))
    torch.testing.assert_close(sums[1], torch.tensor([0, 3.0, 3.0, 0, 0]))


@pytest.mark.parametrize("variant", ["unet-ffn-1", "attn_key", "attn_val", "text"])
def test_other_hook_variants_record(tiny_pipe, variant):
    concept = Concept("t", "custom", (PromptPair("a cat", "a blue cat", 1),))
    v = HOOK_VARIANTS[variant]
    norms = record_norms(tiny_pipe, concept, CONFIG, v, stop_at=2)
    modules = select_modules(getattr(tiny_pipe, component_name(tiny_pipe, v)), v)
    assert set(norms) == set(modules)
    for layer, n in norms.items():
        assert n.shape == (2, 2 if v.per_step else 1, modules[layer].in_features)
        assert torch.isfinite(n).all() and (n > 0).any()


def test_step_pruner_swaps_masked_weights_per_step_and_restores(tiny_pipe):
    modules = select_modules(tiny_pipe.unet, HOOK_VARIANTS["unet"])
    originals = {k: m.weight.detach().clone() for k, m in modules.items()}
    norms = {k: torch.rand(2, 4, m.in_features, generator=torch.Generator().manual_seed(i)) for i, (k, m) in enumerate(modules.items())}
    pruner = StepPruner({k: m.weight.detach() for k, m in modules.items()}, norms, skill_ratio=0.1, num_steps=2)
    seen = {}

    def watch(step, name, x):
        seen.setdefault(step, int((modules[name].weight == 0).sum()))

    first = next(iter(modules))
    try:
        with trace_steps(tiny_pipe.unet, {first: modules[first]}, on_input=watch, on_step=pruner.on_step):
            run_pipeline(tiny_pipe, ["a cat"], [0], CONFIG)
    finally:
        pruner.restore()
    assert seen[0] > 0 and seen[1] > 0 and seen[2] == 0 and seen[3] == 0
    for k, m in modules.items():
        assert torch.equal(m.weight, originals[k])


def test_normalised_column_sums_match_the_obvious_computation_in_float32_and_float16():
    import torch
    import torch.nn.functional as F

    from neuron_receivers.norm_recorder import normalised_column_sums

    torch.manual_seed(0)
    x = torch.randn(3, 50, 40) * 300.0  # squares overflow float16 (max 65504)
    x[1, 7] = 0.0  # a zero row contributes nothing
    expected = F.normalize(x.double(), dim=-1).square().sum(dim=1)
    assert torch.allclose(normalised_column_sums(x).double(), expected, rtol=1e-5, atol=1e-7)
    half = normalised_column_sums(x.half())
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert torch.allclose(half.double(), expected, rtol=5e-3, atol=1e-4)
