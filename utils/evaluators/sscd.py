"""SSCD copy-detection embeddings (a TorchScript model file) for the memorization benchmark."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from utils.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SSCD_SIZE = 320
# name -> what it does; the names are the --sscd_preprocessing values (utils/bench_config.SSCD_PREPROCESSINGS)
SSCD_PREPROCESSINGS = {
    "resize320-imagenet": f"resize to {SSCD_SIZE}x{SSCD_SIZE} (bilinear, antialias), ImageNet mean {IMAGENET_MEAN} / std {IMAGENET_STD}",
    "resize256-crop224-mean0.5": "resize the shorter side to 256 (bilinear, antialias), centre crop 224x224, mean 0.5 / std 0.5 (the paper's code)",
}
SSCD_PREPROCESSING = SSCD_PREPROCESSINGS["resize320-imagenet"]


def sscd_transform(name: str):
    """The torchvision transform of the preprocessing ``name`` (a key of SSCD_PREPROCESSINGS): PIL -> [3, h, w]."""
    from torchvision import transforms

    if name == "resize320-imagenet":
        steps = [transforms.Resize([SSCD_SIZE, SSCD_SIZE]), transforms.ToTensor(), transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)]
    elif name == "resize256-crop224-mean0.5":
        steps = [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize(mean=[0.5] * 3, std=[0.5] * 3)]
    else:
        raise UsageError(f"unknown SSCD preprocessing {name!r}; choose one of {', '.join(SSCD_PREPROCESSINGS)}")
    return transforms.Compose(steps)


class SSCDEmbedder:
    """An SSCD TorchScript model in float32 on ``device``; images preprocessed by ``preprocessing`` (a key of
    SSCD_PREPROCESSINGS; default: resized to 320x320 and ImageNet-normalised)."""

    def __init__(self, torchscript_path: str | Path, device: str | torch.device = "cpu", batch_size: int = 32,
                 preprocessing: str = "resize320-imagenet"):
        """Load the TorchScript file; raises UsageError when it is missing or not a TorchScript model, or
        the preprocessing is unknown."""
        transform = sscd_transform(preprocessing)
        hint = (
            "download the SSCD TorchScript model (e.g. sscd_disc_mixup.torchscript.pt from "
            "github.com/facebookresearch/sscd-copy-detection) and pass it with --sscd_model PATH"
        )
        path = Path(torchscript_path) if torchscript_path else None
        if path is None or not path.is_file():
            raise UsageError(f"SSCD model file {torchscript_path} does not exist; {hint}")
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():  # SSCD ships only as TorchScript, which torch now marks deprecated
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(str(path), map_location=self.device)
        except (RuntimeError, ValueError) as err:
            raise UsageError(f"{path} is not a TorchScript model ({str(err).splitlines()[0][:120]}); {hint}") from None
        self.model.float().eval()
        self.batch_size = max(1, batch_size)
        self.preprocessing, self.transform = preprocessing, transform

    @torch.no_grad()
    def embed(self, images: list) -> torch.Tensor:
        """PIL images -> [n, d] float32 L2-normalised SSCD descriptors (on the CPU)."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.transform(im.convert("RGB")) for im in images[start : start + self.batch_size]])
            chunks.append(torch.nn.functional.normalize(self.model(batch.to(self.device, torch.float32)).float(), dim=-1).cpu())
        if not chunks:
            raise ValueError("no images to embed")
        return torch.cat(chunks)


def cosine_similarities(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of [n, d] ``a`` and [n, d] ``b`` -> [n] float32 (inputs need not be normalised)."""
    if a.shape != b.shape:
        raise ValueError(f"embeddings {tuple(a.shape)} and {tuple(b.shape)} differ in shape")
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
