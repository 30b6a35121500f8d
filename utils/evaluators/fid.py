"""Fréchet Inception Distance, computed the usual way and streamed.

- Preprocessing (``preprocessing``): every image, real or generated, is resized (bicubic) so its
  shorter side fits the generation size and centre-cropped to it (``fit_to_size``), then resized to
  299x299 with clean-fid's resize-correct PIL bicubic on float channels (``cleanfid.resize``), scaled
  to [0, 1] and fed to pytorch-fid's InceptionV3 (the TensorFlow FID weights), whose own
  normalisation maps it to [-1, 1]; the 2048-d pool3 features are kept in float64.
- Streaming (``path_statistics``): images are read, preprocessed and featurised ``batch_size`` at a
  time into running sums (``RunningStatistics``), so memory does not grow with the number of images.
- Reference statistics (``reference_statistics``) are computed once and cached in an .npz (no pickle)
  keyed by the reference files' SHA-256 digests (``utils.fingerprint.DigestCache``: a file is read
  again only when its path, size or mtime changes), the preprocessing and the extractor's identity.
- The distance (``fid_from_statistics``) is pytorch-fid's ``calculate_frechet_distance``;
  ``frechet_distance`` is our eigenvalue form, used only when pytorch-fid is absent.

``pytorch_fid`` and ``cleanfid`` are optional: this module imports without them, and
``InceptionFID`` raises ``FIDUnavailable`` (with what to install or pass) when one or the weights
are missing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from scipy import linalg

from utils.errors import UsageError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}"
FID_DIMS = 2048
INCEPTION_SIZE = 299
CACHE_FORMAT = "concept-prune FID reference statistics v1"


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


def _clean_resizer():
    """clean-fid's resize-correct 299x299 resize (PIL bicubic on float channels); FIDUnavailable without clean-fid."""
    try:
        from cleanfid.resize import make_resizer
    except ImportError:
        raise FIDUnavailable("FID needs the clean-fid package for its resize-correct preprocessing; install it with pip install clean-fid") from None
    return make_resizer("PIL", False, "bicubic", (INCEPTION_SIZE, INCEPTION_SIZE))


def preprocessing(size: tuple[int, int]) -> dict:
    """The FID preprocessing for generation size ``(width, height)``, as recorded in metrics.json and the cache key."""
    return {
        "fit": f"resize the shorter side (PIL bicubic) and centre-crop to {size[0]}x{size[1]}, the generation size",
        "inception_resize": f"{INCEPTION_SIZE}x{INCEPTION_SIZE} PIL bicubic on float channels (cleanfid.resize, mode clean)",
        "scale": "[0, 255] -> [0, 1], then pytorch-fid InceptionV3's 2x - 1",
        "features": f"pool3, {FID_DIMS}-d, float64",
    }


def fit_to_size(image, size: tuple[int, int]):
    """``image`` (PIL) resized with bicubic so it covers ``size = (width, height)`` and centre-cropped to it (RGB)."""
    from PIL import Image

    width, height = size
    image = image.convert("RGB")
    if image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    resized = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(resized, Image.BICUBIC)
    left, top = (resized[0] - width) // 2, (resized[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


class RunningStatistics:
    """Mean and covariance of feature rows fed batch by batch, in float64, in O(d^2) memory.

    Sums are taken around the first batch's mean (a fixed shift), which keeps the covariance exact
    to rounding however large the features' mean.
    """

    def __init__(self) -> None:
        self.count = 0
        self.shift = self.total = self.outer = None

    def update(self, features: np.ndarray) -> None:
        """Add the rows of ``features`` ([n, d])."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] == 0:
            return
        if self.shift is None:
            self.shift = features.mean(axis=0)
            self.total = np.zeros_like(self.shift)
            self.outer = np.zeros((features.shape[1],) * 2)
        centred = features - self.shift
        self.total += centred.sum(axis=0)
        self.outer += centred.T @ centred
        self.count += features.shape[0]

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean [d], covariance [d, d] with n - 1 as divisor); ValueError for fewer than 2 rows."""
        if self.count < 2:
            raise ValueError(f"feature statistics need at least 2 images, got {self.count}")
        mean = self.total / self.count
        covariance = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return self.shift + mean, (covariance + covariance.T) / 2


class FeatureExtractor:
    """A [n, 3, 299, 299] -> [n, d] module behind the FID preprocessing: PIL images in, float64 features out."""

    def __init__(self, model, identity: dict, device: str = "cpu", batch_size: int = 32):
        """Wrap ``model`` (its output may be a list, as pytorch-fid's is; the first entry is used);
        ``identity`` names it in metrics.json and in the reference cache key."""
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device, torch.float32).eval()
        self.batch_size = max(1, batch_size)
        self.resize = _clean_resizer()
        self._identity = dict(identity)

    def identity(self) -> dict:
        """What computes the features (model, weights hash, library), for metrics.json and the cache key."""
        return dict(self._identity)

    def _inception_input(self, image) -> np.ndarray:
        """PIL image -> [3, 299, 299] float32 in [0, 1] (clean-fid's resize of the uint8 RGB pixels)."""
        pixels = self.resize(np.asarray(image.convert("RGB")))
        return (np.asarray(pixels, dtype=np.float32) / 255.0).transpose(2, 0, 1)

    def features(self, images: Sequence) -> np.ndarray:
        """PIL images (already fitted to the generation size) -> [n, d] float64 features."""
        import torch

        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = np.stack([self._inception_input(im) for im in images[start : start + self.batch_size]])
                out = self.model(torch.from_numpy(batch).to(self.device, torch.float32))
                out = out[0] if isinstance(out, (list, tuple)) else out
                chunks.append(out.flatten(1).double().cpu().numpy())
        if not chunks:
            raise ValueError("no images to extract features from")
        return np.concatenate(chunks)


class InceptionFID(FeatureExtractor):
    """pytorch-fid's InceptionV3 (the TensorFlow FID weights), giving 2048-d pool3 features in float64."""

    def __init__(self, weights_path: str | Path | None = None, device: str = "cpu", batch_size: int = 32):
        """Build the extractor from ``weights_path`` (``pt_inception-2015-12-05-6726825d.pth``) or, when None,
        the copy in the torch hub cache. Raises FIDUnavailable when pytorch-fid, clean-fid or the weights are missing.
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
                model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]], resize_input=False)
        except Exception as err:  # noqa: BLE001 -- a corrupt or wrong file fails in many ways (pickle, struct, shapes)
            detail = (str(err).splitlines() or [type(err).__name__])[0][:120]
            raise FIDUnavailable(f"could not load the FID Inception weights from {path} ({detail}); {get}") from None
        from utils.evaluators.identity import file_sha256, library

        identity = {
            "model": "pytorch-fid InceptionV3 pool3 (TensorFlow FID weights)",
            "weights_file": path.name,
            "sha256": file_sha256(path),
            "features_by": library("pytorch-fid"),
            "resize_by": library("clean-fid"),
        }
        super().__init__(model, identity, device, batch_size)


def _extractor_identity(extractor) -> dict:
    identity = getattr(extractor, "identity", None)
    return identity() if callable(identity) else {"model": type(extractor).__name__}


def fitted_batches(paths: Iterable[Path], size: tuple[int, int], batch_size: int) -> Iterator[list]:
    """The images at ``paths`` fitted to ``size``, ``batch_size`` at a time (one batch in memory at once).

    Raises UsageError naming the first file that does not decode.
    """
    from PIL import Image

    batch = []
    for path in paths:
        try:
            with Image.open(path) as image:
                batch.append(fit_to_size(image, size))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise UsageError(f"image {path} could not be read ({str(err)[:80]}); replace or remove it and run again") from None
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def path_statistics(paths: Sequence[Path], extractor, size: tuple[int, int], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, covariance, count) of the features of the images at ``paths``, streamed ``batch_size`` at a time."""
    running = RunningStatistics()
    for batch in fitted_batches(paths, size, batch_size):
        running.update(extractor.features(batch))
    mu, sigma = running.statistics()
    return mu, sigma, running.count


def reference_key(paths: Sequence[Path], extractor, size: tuple[int, int], digests) -> str:
    """SHA-256 over the reference files (names and content digests), the preprocessing and the extractor."""
    files = sorted((Path(p).name, digests.digest(Path(p))) for p in paths)
    payload = {"format": CACHE_FORMAT, "files": files, "preprocessing": preprocessing(size), "extractor": _extractor_identity(extractor)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _load_cached(path: Path, key: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The statistics in cache file ``path`` when it is complete and made for ``key``; None otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return data["mu"], data["sigma"], int(data["count"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # missing, damaged or foreign: computed again
        return None


def reference_statistics(
    paths: Sequence[Path], extractor, size: tuple[int, int], cache_dir: Path, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mean, covariance, info) of the reference images, from ``cache_dir`` when computed before.

    The cache file is ``cache_dir/fid_reference_<key[:16]>.npz`` (``reference_key``); file digests are
    kept in ``cache_dir/file_digests.json``. ``info`` says the images, the key, the file and whether it
    was reused.
    """
    from utils.fingerprint import DigestCache
    from utils.storage import _finish, _temp_path

    cache_dir = Path(cache_dir)
    digests = DigestCache(cache_dir / "file_digests.json")
    key = reference_key(paths, extractor, size, digests)
    digests.save()
    cache = cache_dir / f"fid_reference_{key[:16]}.npz"
    cached = _load_cached(cache, key)
    info = {"images": len(paths), "key": key, "cache_file": str(cache), "reused": cached is not None}
    if cached is not None:
        return cached[0], cached[1], info
    mu, sigma, count = path_statistics(paths, extractor, size, batch_size)
    tmp = _temp_path(cache)
    with open(tmp, "wb") as handle:
        np.savez(handle, key=np.array(key), mu=mu, sigma=sigma, count=np.array(count))
    _finish(tmp, cache)
    return mu, sigma, info


def fid_from_statistics(mu1, sigma1, mu2, sigma2) -> tuple[float, str]:
    """(FID, what computed it): pytorch-fid's ``calculate_frechet_distance``, or ``frechet_distance`` without pytorch-fid."""
    try:
        from pytorch_fid.fid_score import calculate_frechet_distance
    except ImportError:
        return frechet_distance(mu1, sigma1, mu2, sigma2), "concept-prune frechet_distance (pytorch-fid absent)"
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a note when it adds eps to a singular product
        value = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    from utils.evaluators.identity import library

    return float(value), f"pytorch_fid.fid_score.calculate_frechet_distance ({library('pytorch-fid')})"


def compute_fid(generated: list, reference: list, extractor) -> float:
    """FID between two lists of PIL images (at least 2 each) using ``extractor.features(images) -> [n, d]``."""
    stats = []
    for images in (generated, reference):
        running = RunningStatistics()
        running.update(extractor.features(images))
        stats.append(running.statistics())
    return fid_from_statistics(*stats[0], *stats[1])[0]
