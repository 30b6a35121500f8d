"""Who judged: model ids with their revision or content hash, and library versions, for metrics.json.

Two runs are comparable exactly when their judges' identities (and thresholds and preprocessing,
recorded next to them by each evaluator) match.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from utils.fingerprint import file_sha256, folder_sha256, hub_snapshot  # noqa: F401 -- the judges' file digests


def model_identity(model_id: str) -> dict:
    """``{"model_id", "revision", "sha256"}`` of a judge given as a local folder or file, or a hub id.

    A folder or file: revision None and the content hash. A hub id in the local cache: the snapshot's
    commit as revision and the snapshot's content hash. Otherwise both None.
    """
    path = Path(model_id).expanduser()
    if path.is_dir():
        return {"model_id": model_id, "revision": None, "sha256": folder_sha256(path)}
    if path.is_file():
        return {"model_id": model_id, "revision": None, "sha256": file_sha256(path)}
    snapshot = hub_snapshot(model_id, "config.json")
    if snapshot is None:
        return {"model_id": model_id, "revision": None, "sha256": None}
    return {"model_id": model_id, "revision": snapshot.name, "sha256": folder_sha256(snapshot)}


def library(name: str) -> str:
    """``"<name> <version>"`` of an installed distribution, ``"<name> (not installed)"`` otherwise."""
    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name} (not installed)"
