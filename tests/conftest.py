"""Fixtures: tiny seeded Stable Diffusion folders built offline, and helpers to run the scripts in-process."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A saved SD-1.x-shaped tiny pipeline (16 FFNs, 32x32 images)."""
    from utils.tiny_pipeline import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd", shape="sd1", seed=0)


@pytest.fixture(scope="session")
def mini_sd_dir(tmp_path_factory) -> Path:
    """A saved 2-FFN tiny pipeline for the fastest tests."""
    from utils.tiny_pipeline import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "mini-sd", shape="mini", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A saved random CLIPModel + CLIPProcessor folder (32x32 images, 16-d embeddings)."""
    from utils.tiny_evaluators import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("judges") / "tiny-clip", seed=0)


@pytest.fixture(scope="session")
def tiny_pipe(tiny_sd_dir):
    """The SD-1.x-shaped tiny pipeline loaded through the project's loader (cpu, float32)."""
    import torch

    from utils.model_loading import load_pipeline

    return load_pipeline(str(tiny_sd_dir), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests: on tiny models a second intra-op thread only adds
    synchronisation (costly on a busy machine). Modules use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def prompt_files(tmp_path):
    """Write a custom concept's base/target prompt files; return a function taking two lists."""

    def write(bases, targets):
        base, target = tmp_path / "base.txt", tmp_path / "target.txt"
        base.write_text("\n".join(bases) + "\n")
        target.write_text("\n".join(targets) + "\n")
        return str(base), str(target)

    return write


def load_script(name: str, folder: str = "wanda"):
    """Import ``<folder>/<name>.py`` as a module (its ``main(argv)`` is what the command line runs)."""
    path = REPO / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, argv: list[str], folder: str = "wanda") -> None:
    """Run a script's CLI in-process, exiting like the command line (SystemExit 2 on bad input)."""
    from utils.errors import run_cli

    run_cli(load_script(name, folder).main, argv)


@pytest.fixture
def run():
    return run_script
