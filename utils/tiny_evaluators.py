"""Tiny offline stand-ins for the evaluators' models (tests): random weights, the real classes and file formats.

- ``save_tiny_clip``: a small random ``CLIPModel`` + ``CLIPProcessor`` folder that ``ClipJudge`` loads;
- ``save_random_resnet50``: torchvision's ``resnet50(weights=None)`` state dict as .safetensors;
- ``save_tiny_sscd``: a small TorchScript conv net standing in for an SSCD model file;
- ``tiny_inception``: a small random conv net with Inception's interface for FID ([n, 3, 299, 299] -> [n, 2048]).

They exercise every code path; they judge nothing.
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from utils.tiny_pipeline import write_tokenizer_files  # noqa: E402

TINY_CLIP_IMAGE_SIZE = 32
TINY_SSCD_DIM = 64
TINY_INCEPTION_DIM = 2048


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Write a random CLIP model (text width 32, 2 layers; 32x32 images, patch 8; projection 16), its byte-level
    tokenizer and a 32-pixel image processor into ``folder`` with ``save_pretrained``; return the folder.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="tiny-clip-tokenizer-") as tok_dir:
        vocab_size = write_tokenizer_files(tok_dir)
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **layers,
        ),
        vision_config=dict(image_size=TINY_CLIP_IMAGE_SIZE, patch_size=8, **layers),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_CLIP_IMAGE_SIZE},
        crop_size={"height": TINY_CLIP_IMAGE_SIZE, "width": TINY_CLIP_IMAGE_SIZE},
    )
    _point_text_towards_images(model, tokenizer, image_processor, seed)
    model.save_pretrained(str(folder))
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder


@torch.no_grad()
def _point_text_towards_images(model, tokenizer, image_processor, seed: int) -> None:
    """Negate the text projection when random images and prompts have a negative mean cosine.

    A random CLIP puts all texts on one side and all images on another; when the two sides face away,
    every CLIP score clamps to 0 and the stand-in would test nothing. Facing them keeps scores positive
    and varied.
    """
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(4, 3, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_IMAGE_SIZE, generator=generator)
    images = model.get_image_features(pixel_values=image_processor(list(pixels), do_rescale=False, return_tensors="pt")["pixel_values"])
    tokens = tokenizer(["a photo of a cat", "the starry night", "a headshot of a nurse"], padding=True, return_tensors="pt")
    texts = model.get_text_features(**tokens)
    images, texts = (getattr(x, "pooler_output", x) for x in (images, texts))
    cosine = torch.nn.functional.normalize(images, dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
    if cosine.mean() < 0:
        model.text_projection.weight.neg_()


def save_random_resnet50(path: str | Path, seed: int = 0) -> Path:
    """Save a seeded random torchvision ``resnet50(weights=None)`` state dict as .safetensors at ``path``; return it."""
    from safetensors.torch import save_file
    from torchvision.models import resnet50

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in resnet50(weights=None).state_dict().items()}
    save_file(state, str(path))
    return path


class _TinySSCD(torch.nn.Module):
    """[n, 3, H, W] -> [n, 64]: two strided convolutions and global average pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, kernel_size=3, stride=4, padding=1)
        self.conv2 = torch.nn.Conv2d(16, TINY_SSCD_DIM, kernel_size=3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] images -> [n, 64] descriptors (not normalised, like SSCD's raw output)."""
        x = torch.relu(self.conv1(x))
        return self.conv2(x).mean(dim=(2, 3))


def save_tiny_sscd(path: str | Path, seed: int = 0) -> Path:
    """Save a seeded ``torch.jit.script``-ed tiny conv net ([n, 3, H, W] -> [n, 64]) at ``path``; return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # the real SSCD files are TorchScript, which torch now marks deprecated
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(_TinySSCD().eval()).save(str(path))
    return path


class _TinyInception(torch.nn.Module):
    """[n, 3, 299, 299] in [0, 1] -> [n, 2048]: one strided convolution, 4x4 average pooling, a linear map."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=8, stride=8)
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(16 * 16, TINY_INCEPTION_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] images -> [n, 2048] features (like pytorch-fid's pool3 width)."""
        return self.fc(self.pool(torch.relu(self.conv(2 * x - 1))).flatten(1))


def tiny_inception(seed: int = 0) -> torch.nn.Module:
    """A seeded random stand-in for the FID Inception: the same input and feature width, a tiny cost."""
    torch.manual_seed(seed)
    return _TinyInception().eval()


def main(argv=None) -> None:
    """``python utils/tiny_evaluators.py --out models``: write tiny-clip/, resnet50-random.safetensors, tiny-sscd.pt."""
    import argparse

    parser = argparse.ArgumentParser(description="Write the tiny random judge models (CLIP, ResNet50, SSCD) for trying the benchmarks offline.")
    parser.add_argument("--out", default="models", help="folder to write into (default models)")
    out = Path(parser.parse_args(argv).out)
    written = [save_tiny_clip(out / "tiny-clip"), save_random_resnet50(out / "resnet50-random.safetensors"), save_tiny_sscd(out / "tiny-sscd.pt")]
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
