"""Who judged: model ids with their revision or content hash, and library versions, for metrics.json.

Two runs are comparable exactly when their judges' identities (and thresholds and preprocessing,
recorded next to them by each evaluator) match.
"""
from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

_CHUNK = 1 << 22


@functools.lru_cache(maxsize=256)
def _sha256_of(real: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(real, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of the file at ``path`` (remembered in this process while size and mtime hold)."""
    real = Path(path).resolve()
    stat = real.stat()
    return _sha256_of(str(real), stat.st_size, stat.st_mtime_ns)


def folder_sha256(folder: str | Path) -> str:
    """One SHA-256 over every non-hidden file under ``folder``: relative paths and contents, in sorted order."""
    folder = Path(folder)
    sha = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)):
        sha.update(f"{file.relative_to(folder).as_posix()}\0{file_sha256(file)}\0".encode())
    return sha.hexdigest()


def _hub_snapshot(model_id: str) -> Path | None:
    """The Hugging Face cache snapshot folder of hub id ``model_id`` (named by its commit), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 -- not a valid repo id, or no huggingface_hub
        return None
    return Path(cached).parent if isinstance(cached, str) else None


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
    snapshot = _hub_snapshot(model_id)
    if snapshot is None:
        return {"model_id": model_id, "revision": None, "sha256": None}
    return {"model_id": model_id, "revision": snapshot.name, "sha256": folder_sha256(snapshot)}


def library(name: str) -> str:
    """``"<name> <version>"`` of an installed distribution, ``"<name> (not installed)"`` otherwise."""
    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name} (not installed)"
