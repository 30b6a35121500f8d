"""ImageNet top-1 with torchvision's ResNet50 on the ten Imagenette classes (the object benchmark)."""
from __future__ import annotations

from pathlib import Path

import torch

from utils.errors import UsageError

# our object names (datasets/objects.txt) -> ImageNet-1k class indices
IMAGENETTE_CLASSES = {
    "tench": 0,
    "english springer": 217,
    "cassette player": 482,
    "chain saw": 491,
    "church": 497,
    "french horn": 566,
    "garbage truck": 569,
    "gas pump": 571,
    "golf ball": 574,
    "parachute": 701,
}
STATE_DICT_SUFFIXES = (".pth", ".pt", ".safetensors")


def _load_state_dict(path: Path) -> dict:
    """A state dict from a .pth/.pt (``torch.load(weights_only=True)``) or a .safetensors file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _build_resnet50(weights: str) -> torch.nn.Module:
    """A torchvision ResNet50 with ``weights``: a ResNet50_Weights name (``DEFAULT``, ``IMAGENET1K_V2``, ...) or a state dict file."""
    from torchvision.models import ResNet50_Weights, resnet50

    hint = "pass --classifier_weights with a local .pth/.safetensors state dict of torchvision's resnet50"
    if weights.endswith(STATE_DICT_SUFFIXES) or "/" in weights or Path(weights).exists():
        path = Path(weights)
        if not path.is_file():
            raise UsageError(f"classifier weights file {weights} does not exist; {hint}")
        if path.suffix not in STATE_DICT_SUFFIXES:
            raise UsageError(f"classifier weights {weights} is not a .pth, .pt or .safetensors file; {hint}")
        model = resnet50(weights=None)
        try:
            model.load_state_dict(_load_state_dict(path))
        except Exception as err:  # noqa: BLE001 -- a corrupt or wrong file fails in many ways (pickle, struct, keys, shapes)
            detail = (str(err).splitlines() or [type(err).__name__])[0][:160]
            raise UsageError(f"could not load {weights} into torchvision's resnet50 ({detail}); {hint}") from None
        return model
    try:
        enum = ResNet50_Weights[weights]
    except KeyError:
        names = ", ".join(["DEFAULT", *ResNet50_Weights.__members__])
        raise UsageError(f"unknown classifier weights {weights!r}; pass one of {names} or a state dict file") from None
    try:
        return resnet50(weights=enum)
    except Exception as err:  # noqa: BLE001 -- any download failure (URLError, OSError, hash mismatch) has one remedy
        raise UsageError(
            f"could not download torchvision's resnet50 {weights} weights ({type(err).__name__}); {hint}"
        ) from None


class ObjectClassifier:
    """torchvision ResNet50 in float32 on ``device`` with the IMAGENET1K_V2 preprocessing."""

    def __init__(self, weights: str = "DEFAULT", device: str | torch.device = "cpu", batch_size: int = 32):
        """Build the classifier; ``weights`` is a torchvision ResNet50_Weights name or a state dict path.

        Raises UsageError when the weights cannot be found, downloaded or loaded.
        """
        from torchvision.models import ResNet50_Weights

        if batch_size < 1:
            raise UsageError(f"the classifier batch size must be at least 1, got {batch_size}; pass a positive number")
        self.device = torch.device(device)
        self.model = _build_resnet50(weights).to(self.device, torch.float32).eval()
        self.transform = ResNet50_Weights.IMAGENET1K_V2.transforms()
        self.batch_size = batch_size

    @torch.no_grad()
    def top1(self, images: list) -> list[int]:
        """PIL images -> their top-1 ImageNet class indices (ints in [0, 1000))."""
        predictions: list[int] = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.transform(im.convert("RGB")) for im in images[start : start + self.batch_size]])
            logits = self.model(batch.to(self.device, torch.float32))
            predictions += [int(i) for i in logits.argmax(dim=-1).cpu()]
        return predictions


def accuracy(predictions: list[int], labels: list[int]) -> float:
    """Fraction of predictions equal to their label (float in [0, 1]); raises ValueError on empty or unequal lists."""
    if len(predictions) != len(labels):
        raise ValueError(f"got {len(predictions)} predictions but {len(labels)} labels")
    if not predictions:
        raise ValueError("no predictions to score")
    return sum(int(p) == int(t) for p, t in zip(predictions, labels)) / len(predictions)


def classifier_identity(weights: str) -> dict:
    """The classifier's identity for metrics.json: torchvision's weights name and their file (whose name
    carries torchvision's hash) or a state dict file's SHA-256, the library and the preprocessing."""
    from torchvision.models import ResNet50_Weights

    from utils.evaluators.identity import file_sha256, library

    identity: dict = {"model": "torchvision resnet50", "library": library("torchvision"), "decision": "top-1 over the 1000 ImageNet classes"}
    if Path(weights).is_file():
        identity.update(weights_file=str(weights), sha256=file_sha256(weights))
    elif weights in ResNet50_Weights.__members__ or weights == "DEFAULT":
        enum = ResNet50_Weights[weights]
        identity.update(weights=f"ResNet50_Weights.{enum.name}", url=enum.url)
    identity["preprocessing"] = " ".join(str(ResNet50_Weights.IMAGENET1K_V2.transforms()).split())
    return identity
