"""Masks are bit-identical to those of the code before the redesign (tag ``pre-23``, commit 4d7be33).

Each case runs wanda/save_union_over_time.py in-process (record the norms, unite the skilled weights,
save the mask) and compares the SHA-256 of the saved mask, taken over the bytes of its bool tensors
flattened and concatenated in sorted key order, with a digest recorded from a checkout of ``pre-23``:

    git worktree add /tmp/pre23 pre-23
    cp tests/test_mask_identity.py /tmp/pre23/tests/ && (cd /tmp/pre23 && python -m pytest tests/test_mask_identity.py)
    git worktree remove /tmp/pre23

(a failing case prints the digest it got). The digests are of this CPU build: torch 2.14.1, float32,
2 CPU threads; floating-point sums may round differently on another CPU, BLAS or torch version, so a
mismatch there is first to be re-recorded from ``pre-23`` on that machine. On a CUDA machine the
scripts sample on the GPU (device auto), so the test is skipped there.
"""
from __future__ import annotations

import hashlib

import pytest
import torch

from conftest import run_script
from utils.pruning import load_prune_mask

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="digests are of the CPU build; device auto samples on CUDA here")

# the tiny SD-1.x model of the tiny_sd_dir fixture, a custom concept from two prompt pairs
TINY_PAIRS = (["a photo of a cat", "a photo of a house"], ["a cat in the style of stripes", "a house in the style of stripes"])
TINY_CASES = {
    # (skill_ratio, timesteps, select_ratio): digest
    ("0.05", "3", "0"): "40fe0f93a8dd7122904ff07c1ede517f62105ee33b2acc3da36074fd38a3b66c",
    ("0.1", "4", "0.3"): "e2a5bca6480df2501c7828e481aee27b50931c93ba766b08f8718c6746d5cadc",
}
# the shipped demo model, concept checker, the demo defaults (skill_ratio 0.4, tau 10, select_ratio 0.7,
# 20 DDIM steps, guidance 5.0): what `python demo/run_demo.py` and `python wanda/save_union_over_time.py --target checker` derive
DEMO_CHECKER = "6448c7a779d624955f911cd1885e6440807996f9a3e573b15b81a0fabf5639a5"


def mask_digest(path) -> str:
    """SHA-256 of a prune-mask file's bool tensors, flattened and concatenated in sorted key order."""
    masks, meta = load_prune_mask(path)
    assert 0 < meta["num_pruned"] < meta["num_scored"]  # neither an empty nor a full mask
    flat = torch.cat([masks[key].flatten() for key in sorted(masks)])
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("settings", list(TINY_CASES))
def test_tiny_masks_are_those_of_pre_23(settings, tiny_sd_dir, prompt_files, tmp_path):
    skill_ratio, tau, select_ratio = settings
    base, target = prompt_files(*TINY_PAIRS)
    run_script("save_union_over_time", ["--model_id", str(tiny_sd_dir), "--num_inference_steps", "4", "--res_path", str(tmp_path / "r"),
                                        "--target", "stripes", "--base_prompts", base, "--target_prompts", target,
                                        "--skill_ratio", skill_ratio, "--timesteps", tau, "--select_ratio", select_ratio])
    (path,) = (tmp_path / "r").glob("tiny-sd/stripes/pruned/*/prune_mask.safetensors")
    digest = mask_digest(path)
    assert digest == TINY_CASES[settings], f"mask digest {digest}"
    assert path.parent.name == f"sr{skill_ratio}_tau{tau}_sel{select_ratio}"


def test_demo_checker_mask_is_that_of_pre_23(tmp_path):
    """The demo's default run (about 20 s on 2 CPU threads: 10 of 20 DDIM steps recorded for the checker pairs)."""
    run_script("save_union_over_time", ["--target", "checker", "--res_path", str(tmp_path / "r")])
    (path,) = (tmp_path / "r").glob("*/checker/pruned/*/prune_mask.safetensors")
    assert path.parent.name == "sr0.4_tau10_sel0.7"
    digest = mask_digest(path)
    assert digest == DEMO_CHECKER, f"mask digest {digest}"
