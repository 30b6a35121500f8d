"""Fréchet Inception Distance: the distance itself (numpy/scipy) and pytorch-fid's InceptionV3 pool3 features.

``pytorch_fid`` is optional: this module imports without it, and ``InceptionFID`` raises
``FIDUnavailable`` (with what to install or pass) when the package or its weights are missing.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from scipy import linalg

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}"
FID_DIMS = 2048


class FIDUnavailable(Exception):
    """FID cannot be computed here; the message says what to install or pass."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n, d] features (n >= 2) -> (mean [d], covariance [d, d]) in float64, covariance with n - 1 as divisor."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"feature statistics need an [n, d] array with n >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2))`` as a float.

    ``tr(sqrtm(sigma1 @ sigma2))`` is computed as the sum of the square roots of the eigenvalues of
    the symmetric ``A @ sigma2 @ A`` with ``A = sqrtm(sigma1)`` (the same eigenvalues as
    ``sigma1 @ sigma2``): two symmetric eigendecompositions, seconds for 2048-d Inception features
    where ``scipy.linalg.sqrtm`` of the product takes about a minute on 2 cores. ``eps`` is added to
    both diagonals when a covariance is singular (fewer samples than dimensions); tiny negative
    eigenvalues from rounding are clipped to 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    s1, s2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    if min(linalg.eigvalsh(s1)[0], linalg.eigvalsh(s2)[0]) <= 0:
        offset = np.eye(s1.shape[0]) * eps
        s1, s2 = s1 + offset, s2 + offset
    values, vectors = linalg.eigh(s1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product = root1 @ s2 @ root1
    trace_root = np.sqrt(np.clip(linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def _cached_weights() -> Path:
    """Where torch.hub (and so pytorch-fid) keeps the FID Inception weights: ``$TORCH_HOME/hub/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


@contextlib.contextmanager
def _weights_from_memory(module, state_dict: dict):
    """Make ``module.load_state_dict_from_url`` return ``state_dict`` instead of downloading, then restore it."""
    original = module.load_state_dict_from_url
    module.load_state_dict_from_url = lambda url, *args, **kwargs: state_dict
    try:
        yield
    finally:
        module.load_state_dict_from_url = original


class InceptionFID:
    """pytorch-fid's InceptionV3 (the TensorFlow FID weights), giving 2048-d pool3 features in float32."""

    def __init__(self, weights_path: str | Path | None = None, device: str = "cpu", batch_size: int = 32):
        """Build the extractor from ``weights_path`` (``pt_inception-2015-12-05-6726825d.pth``) or, when None,
        the copy in the torch hub cache. Raises FIDUnavailable when pytorch-fid or the weights are missing.
        """
        import torch

        try:
            from pytorch_fid import inception
        except ImportError:
            raise FIDUnavailable("FID needs the pytorch-fid package; install it with pip install pytorch-fid") from None
        get = f"download {FID_WEIGHTS_URL} and pass it with --fid_weights PATH"
        if weights_path is not None:
            path = Path(weights_path).expanduser()
            if not path.is_file():
                raise FIDUnavailable(f"FID Inception weights file {weights_path} does not exist; {get}")
        else:
            path = _cached_weights()
            if not path.is_file():
                raise FIDUnavailable(f"the FID Inception weights are not in the torch hub cache ({path.parent}); {get}")
        try:
            state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
            with _weights_from_memory(inception, state_dict):
                model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]])
        except Exception as err:  # noqa: BLE001 -- a corrupt or wrong file fails in many ways (pickle, struct, shapes)
            detail = (str(err).splitlines() or [type(err).__name__])[0][:120]
            raise FIDUnavailable(f"could not load the FID Inception weights from {path} ({detail}); {get}") from None
        self.device = torch.device(device)
        self.model = model.to(self.device, torch.float32).eval()
        self.batch_size = max(1, batch_size)

    def features(self, images: list) -> np.ndarray:
        """PIL images -> [n, 2048] float64 pool3 features (RGB in [0, 1]; the model resizes each to 299x299 bilinearly)."""
        import torch
        from torchvision.transforms.functional import to_tensor

        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = [to_tensor(im.convert("RGB")) for im in images[start : start + self.batch_size]]
                # images of different sizes (e.g. COCO references) go through one at a time
                groups = [torch.stack(batch)] if len({t.shape for t in batch}) == 1 else [t[None] for t in batch]
                for group in groups:
                    pooled = self.model(group.to(self.device, torch.float32))[0]
                    chunks.append(pooled.flatten(1).double().cpu().numpy())
        if not chunks:
            raise ValueError("no images to extract features from")
        return np.concatenate(chunks)


def compute_fid(generated: list, reference: list, extractor) -> float:
    """FID between two lists of PIL images (at least 2 each) using ``extractor.features(images) -> [n, d]``."""
    mu1, sigma1 = feature_statistics(extractor.features(generated))
    mu2, sigma2 = feature_statistics(extractor.features(reference))
    return frechet_distance(mu1, sigma1, mu2, sigma2)
