"""Recording under ``accelerate launch``: the prompt pairs are shared between processes, the sums added.

A two-process run (CPU, gloo) of wanda/save_union_over_time.py must derive the masks of a one-process
run, with the same norms, and write each file once (the main process alone writes).
"""
from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO, run_script
from utils import distributed

PAIRS = (["a photo of a cat", "a photo of a house", "a photo of a tree", "a photo of a car"],
         ["a cat in the style of stripes", "a house in the style of stripes", "a tree in the style of stripes", "a car in the style of stripes"])
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


@pytest.fixture
def plain_process(monkeypatch):
    """No launcher around this test, whatever the environment it runs in."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 8, 20])
@pytest.mark.parametrize("processes", [1, 2, 3, 4, 8])
def test_shares_are_contiguous_cover_every_item_once_and_follow_accelerates_rule(count, processes):
    from accelerate import PartialState

    items = list(range(count))
    parts = [list(distributed.share(items, index, processes)) for index in range(processes)]
    assert sum(parts, []) == items  # contiguous, in order, each item once
    sizes = [len(part) for part in parts]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1  # rank 0 holds the first (and most)
    for index, part in enumerate(parts):
        fake = SimpleNamespace(num_processes=processes, process_index=index)  # the rule of the benchmarks' split
        with PartialState.split_between_processes(fake, items) as theirs:
            assert part == list(theirs)
        start, stop = distributed.share_bounds(count, index, processes)
        assert items[start:stop] == part
    with pytest.raises(ValueError):
        distributed.share_bounds(4, 2, 2)


def test_without_a_launcher_one_process_and_no_process_group(plain_process):
    tensors = {(1, "b"): torch.ones(2, 3), (0, "a"): torch.arange(4.0).reshape(2, 2)}
    before = {key: tensor.clone() for key, tensor in tensors.items()}
    assert not distributed.launched()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.all_reduce_sum(tensors) is tensors
    assert all(torch.equal(tensors[key], before[key]) for key in before)  # nothing added, nothing moved
    assert distributed.main_decides(True) is True and distributed.main_decides(False) is False
    distributed.barrier()
    distributed.finish()
    assert list(distributed.share([1, 2, 3])) == [1, 2, 3]
    assert distributed.process_device("cpu") == torch.device("cpu")
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())


def test_more_processes_than_pairs_is_refused_before_any_generation(tiny_sd_dir, prompt_files, tmp_path, monkeypatch, capsys, plain_process):
    import utils.recording as recording

    def fail(*args, **kwargs):
        raise AssertionError("a pair was generated before the refusal")

    monkeypatch.setattr(distributed, "world_size", lambda: 5)  # as if launched with 5 processes (no collective is reached)
    monkeypatch.setattr(recording, "run_pipeline", fail)
    base, target = prompt_files(*PAIRS)
    with pytest.raises(SystemExit) as exit_info:
        run_script("save_union_over_time", ["--model_id", str(tiny_sd_dir), "--device", "cpu", "--num_inference_steps", "3",
                                            "--res_path", str(tmp_path / "r"), "--target", "stripes", "--base_prompts", base, "--target_prompts", target])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "5 processes but 4 prompt pair(s)" in err
    assert not list((tmp_path / "r").rglob("*.safetensors"))


def files_under(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_two_processes_record_the_norms_and_masks_of_one(tiny_sd_dir, prompt_files, tmp_path, plain_process):
    """accelerate launch with 2 processes (CPU, gloo): each records 2 of the 4 pairs; same norms and masks as one process."""
    from utils.storage import load_tensors

    base, target = prompt_files(*PAIRS)
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--model_id", str(tiny_sd_dir), "--device", "cpu", "--num_inference_steps", "3", "--batch_size", "1",
              "--target", "stripes", "--base_prompts", base, "--target_prompts", target, "--skill_ratio", "0.05"]
    # torchrun (under accelerate launch) gives each process OMP_NUM_THREADS=1; CPU kernels round
    # differently with other thread counts, so the one-process run uses one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_script("save_union_over_time", [*common, "--res_path", str(one)])
    finally:
        torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    script = str(REPO / "wanda" / "save_union_over_time.py")
    result = subprocess.run([*LAUNCH, script, *common, "--res_path", str(two)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("pruned ") == 1, result.stdout  # one process prints

    # the same files, each once (no per-rank copy, no temporary file left)
    assert files_under(two) == files_under(one)
    written = files_under(two)
    for name in ("activation_norms.safetensors", "prune_mask.safetensors", "config.yaml", "record_config.yaml"):
        assert sum(path.rsplit("/", 1)[-1] == name for path in written) == 1, written
    assert not [path for path in written if path.endswith(".tmp")]

    (mask_one,) = one.glob("*/stripes/pruned/*/prune_mask.safetensors")
    mask_two = two / mask_one.relative_to(one)
    masks_one, meta_one = load_tensors(mask_one)
    masks_two, meta_two = load_tensors(mask_two)
    assert list(masks_two) == list(masks_one)
    assert all(torch.equal(masks_one[key], masks_two[key]) for key in masks_one)
    assert 0 < meta_two["num_pruned"] == meta_one["num_pruned"]

    norms_one, nmeta_one = load_tensors(next(one.glob("*/stripes/activation_norms.safetensors")))
    norms_two, nmeta_two = load_tensors(next(two.glob("*/stripes/activation_norms.safetensors")))
    assert nmeta_two["layers"] == nmeta_one["layers"] and list(norms_two) == list(norms_one)  # execution order kept
    assert nmeta_two["fingerprint"] == nmeta_one["fingerprint"]  # so a later one-process run reuses either file
    for layer in norms_one:
        assert norms_two[layer].shape == norms_one[layer].shape
        assert torch.allclose(norms_two[layer], norms_one[layer], rtol=1e-5), layer
    for name in ("config.yaml", "record_config.yaml"):
        (path_one,) = one.rglob(name)
        assert (two / path_one.relative_to(one)).read_text() == path_one.read_text().replace(str(one), str(two))

    # step 2 under the launcher: the stored norms are reused by both processes, the main one alone writes images
    removal = subprocess.run([*LAUNCH, str(REPO / "wanda" / "remove_neurons.py"), *common, "--res_path", str(two), "--num_images", "2"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert removal.returncode == 0, removal.stderr[-3000:]
    assert removal.stdout.count("before|after") == 1, removal.stdout
    images = [path for path in files_under(two) if "/removal/" in path]
    assert sorted(path.rsplit("/", 1)[-1] for path in images) == ["config.yaml", "pair_000.png", "pair_001.png"]
