"""The judge of the demo world: a small CNN that names every attribute of a 32x32 image.

``python demo/judge.py --out demo/judge.safetensors`` trains it on freshly rendered ground-truth
images (seeded) and reports its accuracy per attribute on a held-out set; the weights are saved
as safetensors with the training settings and accuracies in the metadata.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from demo.world import ATTRIBUTES, dataset, render  # noqa: E402
from utils.errors import UsageError, run_cli  # noqa: E402

REPO_JUDGE = Path(__file__).resolve().parent / "judge.safetensors"


def judge_file(named: str | None) -> Path:
    """The judge weights a script's --judge names (a repo-relative path is found from any directory),
    or the shipped judge when it names none."""
    from utils.config import repo_path

    return Path(repo_path(named)) if named else REPO_JUDGE


class Judge(nn.Module):
    """Conv net [n, 3, 32, 32] in [0, 1] -> one logit vector per attribute."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(3, width, 1), block(width, width, 1), block(width, 2 * width, 2), block(2 * width, 2 * width, 1),
            block(2 * width, 4 * width, 2), block(4 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(4 * width, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(images)
        return {name: head(features) for name, head in self.heads.items()}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [n, 32, 32, 3] -> float [n, 3, 32, 32] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def rendered(count: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``count`` ground-truth images and their labels, drawn from ``seed``."""
    items = dataset(count, seed)
    images = np.stack([render(scene, s) for scene, s in items])
    labels = {name: torch.tensor([scene.labels()[name] for scene, _ in items]) for name in ATTRIBUTES}
    return to_tensor(images), labels


@torch.no_grad()
def predict(judge: Judge, images: torch.Tensor, batch: int = 512) -> dict[str, torch.Tensor]:
    """Attribute -> predicted class index for each image."""
    judge.eval()
    out = {name: [] for name in ATTRIBUTES}
    for i in range(0, len(images), batch):
        logits = judge(images[i : i + batch])
        for name in ATTRIBUTES:
            out[name].append(logits[name].argmax(-1))
    return {name: torch.cat(v) for name, v in out.items()}


def accuracies(judge: Judge, images: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Attribute -> fraction of images whose attribute the judge names correctly."""
    predicted = predict(judge, images)
    return {name: float((predicted[name] == labels[name]).float().mean()) for name in ATTRIBUTES}


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild blur (on half of the images) and pixel noise: the softness of decoded generations,
    so that the judge reads textures through it. [n, 3, 32, 32] in [0, 1] -> the same shape."""
    from torchvision.transforms.functional import gaussian_blur

    n = len(images)
    sigma = float(torch.empty(()).uniform_(0.3, 0.7, generator=generator))
    blurred = gaussian_blur(images, kernel_size=5, sigma=sigma)
    images = torch.where((torch.rand(n, generator=generator) < 0.5)[:, None, None, None], blurred, images)
    noise = torch.rand(n, 1, 1, 1, generator=generator) * 0.04 * torch.randn(images.shape, generator=generator)
    return (images + noise).clamp(0, 1)


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Images [n, 3, 32, 32] in [0, 1] passed through an AutoencoderKL (posterior mean), in [0, 1]."""
    out = [vae.decode(vae.encode(images[i : i + batch] * 2 - 1).latent_dist.mean).sample for i in range(0, len(images), batch)]
    return ((torch.cat(out) + 1) / 2).clamp(0, 1)


MAX_WIDTH = 1024  # far above any judge trained here; a wider "judge" is a foreign file


def _judge_error(path: Path, why: str):
    """The one-sentence UsageError for a --judge file that is not a judge of this script."""
    return UsageError(f"judge {path} {why}; pass --judge with a file written by demo/judge.py (e.g. demo/judge.safetensors)")


def load_judge(path: str | Path) -> Judge:
    """The trained judge from its safetensors file. Its width is read from the first convolution's shape, every
    tensor's name and shape are checked against ``Judge(width)`` before anything is read, and the values must be
    finite. Raises UsageError (one sentence) for a missing, truncated, pickled or foreign file."""
    from safetensors import SafetensorError, safe_open

    from demo.checks import first_line

    path = Path(path)
    if not path.is_file():
        raise _judge_error(path, "is a folder" if path.is_dir() else "does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            first = shapes.get("features.0.0.weight", ())
            if len(first) != 4 or first[1:] != (3, 3, 3) or not 1 <= first[0] <= MAX_WIDTH:
                raise _judge_error(path, "does not hold the judge's first convolution")
            judge = Judge(first[0])
            expected = judge.state_dict()
            wrong = sorted(set(shapes) ^ set(expected)) or [k for k in expected if shapes[k] != tuple(expected[k].shape)]
            if wrong:
                raise _judge_error(path, f"holds other tensors than the judge's (first difference: {wrong[0]})")
            tensors = {key: handle.get_tensor(key) for key in expected}
    except (SafetensorError, OSError, ValueError) as err:  # truncated, pickled or not safetensors at all
        raise _judge_error(path, f"is not a readable safetensors file ({first_line(err)})") from None
    if any(t.is_floating_point() and not torch.isfinite(t).all() for t in tensors.values()):
        raise _judge_error(path, "holds NaN or infinite weights")
    judge.load_state_dict(tensors)
    return judge.eval()


BATCH = 128


def check_training_args(args) -> None:
    """UsageError (one sentence) for a value that would fail or mislead only after the rendering and training."""
    from demo.checks import integer, output_file

    integer(args.train_images, "--train_images", low=BATCH)  # at least one batch an epoch
    integer(args.epochs, "--epochs")
    integer(args.width, "--width")
    if args.width > MAX_WIDTH:
        raise UsageError(f"--width must be at most {MAX_WIDTH}, got {args.width}")
    integer(args.seed, "--seed", low=0)
    output_file(args.out, "--out", (".safetensors",))


def load_vae(folder: str):
    """The AutoencoderKL of a pipeline folder (its ``vae/``); UsageError when the folder has none that loads."""
    from diffusers import AutoencoderKL

    from demo.checks import first_line

    if not (Path(folder) / "vae" / "config.json").is_file():
        raise UsageError(f"--vae_from {folder} has no vae/config.json; pass a pipeline folder written by demo/train_model.py")
    try:
        return AutoencoderKL.from_pretrained(folder, subfolder="vae").eval()
    except (OSError, ValueError, RuntimeError) as err:
        raise UsageError(f"--vae_from {folder}: its VAE does not load ({first_line(err)}); pass a pipeline folder written by demo/train_model.py") from None


def main(argv=None) -> dict:
    """Parse ``argv`` (values checked first), train the judge, save it with its settings and accuracies; return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo/judge.safetensors")
    parser.add_argument("--train_images", type=int, default=40000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="train on mildly blurred and noisy images as well (see degrade)")
    parser.add_argument("--vae_from", default=None,
                        help="a pipeline folder: half of the training images are replaced by their reconstructions through its VAE (labels unchanged)")
    args = parser.parse_args(argv)
    check_training_args(args)
    vae = load_vae(args.vae_from) if args.vae_from else None  # a bad folder is refused before anything is rendered
    torch.manual_seed(args.seed)
    start = time.time()
    train_x, train_y = rendered(args.train_images, args.seed)
    test_x, test_y = rendered(4000, args.seed + 1)
    if vae is not None:  # the decoder's domain with the ground truth's labels
        half = args.train_images // 2
        train_x = torch.cat([reconstruct(vae, train_x[:half]), train_x[half:]])
        recon_x = reconstruct(vae, test_x)
        print(f"reconstructed {half} training images with {args.vae_from} ({time.time() - start:.0f} s)", flush=True)
    judge = Judge(args.width)
    optimizer = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * (args.train_images // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        judge.train()
        order = torch.randperm(args.train_images, generator=generator)
        for i in range(0, args.train_images - BATCH + 1, BATCH):
            idx = order[i : i + BATCH]
            batch = degrade(train_x[idx], generator) if args.augment else train_x[idx]
            logits = judge(batch)
            loss = sum(nn.functional.cross_entropy(logits[n], train_y[n][idx]) for n in ATTRIBUTES)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        acc = accuracies(judge, test_x, test_y)
        print(f"epoch {epoch + 1}: loss {loss.item():.4f} held-out accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()), flush=True)
    extra = {}
    if args.vae_from:
        extra["reconstruction_accuracy"] = accuracies(judge, recon_x, test_y)
        print(f"held-out reconstructions through {args.vae_from}: {extra['reconstruction_accuracy']}", flush=True)
    from utils.storage import save_tensors

    meta = {"width": args.width, "train_images": args.train_images, "epochs": args.epochs, "seed": args.seed, "augment": args.augment,
            "vae_from": args.vae_from, "accuracy": acc, **extra, "train_seconds": time.time() - start}
    save_tensors(args.out, judge.state_dict(), meta)
    print(json.dumps(meta, indent=2))
    return meta


if __name__ == "__main__":
    run_cli(main)
