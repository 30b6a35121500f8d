"""Content fingerprints of a loaded pipeline: one SHA-256 digest per component (weights and configs).

Stored norms are reused only when the model they were recorded with is the same model, byte for
byte: a scaled text encoder, an edited ``scheduler_config.json`` or replaced UNet weights all change
a digest. For a model on disk (a local folder, or a hub id's snapshot in the Hugging Face cache)
the files of every loaded component are hashed; each file's digest is cached by (real path, size,
modification time) in ``<res_path>/.cache/file_digests.json``, so an unchanged multi-GB model costs
one ``stat`` per file. A pipeline with no folder on disk is hashed from its tensors and configs in
memory. No torch import at module level.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from utils.storage import write_text

log = logging.getLogger(__name__)

CACHE_NAME = Path(".cache") / "file_digests.json"
CHUNK = 1 << 22


class DigestCache:
    """File digests keyed by ``realpath:size:mtime_ns``, read from and saved to one JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        self.changed = False
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self.entries = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
            except (ValueError, UnicodeDecodeError, OSError):
                self.entries = {}  # a damaged cache only costs hashing again

    def digest(self, file: Path) -> str:
        """SHA-256 hex digest of ``file``'s bytes (from the cache when size and mtime are unchanged)."""
        real = file.resolve()
        stat = real.stat()
        key = f"{real}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in self.entries:
            sha = hashlib.sha256()
            with real.open("rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    sha.update(chunk)
            self.entries[key] = sha.hexdigest()
            self.changed = True
        return self.entries[key]

    def save(self) -> None:
        """Write the cache back (atomically) when a digest was added."""
        if self.path is not None and self.changed:
            write_text(self.path, json.dumps(self.entries, indent=0, sort_keys=True) + "\n")
            self.changed = False


def hub_snapshot(model_id: str, filename: str) -> Path | None:
    """The Hugging Face cache snapshot folder (named by its commit) of hub id ``model_id`` when it holds
    ``filename``; None when it is not cached or not a valid repo id."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, filename)
    except Exception:  # not a valid repo id
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def model_folder(model_id: str) -> Path | None:
    """The folder a pipeline was loaded from: a local diffusers folder, or a hub id's snapshot in the
    Hugging Face cache; None when neither holds its ``model_index.json``."""
    path = Path(model_id).expanduser()
    if (path / "model_index.json").is_file():
        return path.resolve()
    return hub_snapshot(model_id, "model_index.json")


def folder_digest(folder: Path, cache: DigestCache) -> str:
    """One digest of every file under ``folder``: their relative paths and contents, in sorted order."""
    sha = hashlib.sha256()
    files = (p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for file in sorted(files):  # hidden files and folders (e.g. huggingface-cli's .cache/) are not the model
        sha.update(f"{file.relative_to(folder).as_posix()}\0{cache.digest(file)}\0".encode())
    return sha.hexdigest()


_PROCESS_CACHE = DigestCache(None)  # digests remembered for this process only (no file written)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file at ``path``, remembered in this process while its size and mtime hold."""
    return _PROCESS_CACHE.digest(Path(path))


def folder_sha256(folder: str | Path) -> str:
    """folder_digest of ``folder`` with this process's cache (hidden files and folders left out)."""
    return folder_digest(Path(folder), _PROCESS_CACHE)


def _update_with_object(sha, value: Any) -> None:
    """Feed a loaded component (module, scheduler, tokenizer, ...) into ``sha``: its tensors and config."""
    import torch

    config = getattr(value, "config", None)
    if config is not None:  # diffusers' FrozenDict, or transformers' PretrainedConfig
        settings = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        sha.update(json.dumps(settings, sort_keys=True, default=str).encode())
    if isinstance(value, torch.nn.Module):
        for name, tensor in sorted(value.state_dict().items()):
            sha.update(name.encode())
            sha.update(str(tensor.dtype).encode())
            sha.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif hasattr(value, "get_vocab"):
        sha.update(json.dumps(value.get_vocab(), sort_keys=True).encode())
    sha.update(type(value).__name__.encode())


def memory_digest(value: Any) -> str:
    """Digest of a component held in memory (no files): its class, config, tensors or vocabulary."""
    sha = hashlib.sha256()
    _update_with_object(sha, value)
    return sha.hexdigest()


def pipeline_content(pipe, model_id: str, res_path: str | Path | None) -> dict[str, str]:
    """Component name -> content digest for every component the pipeline loaded (None ones left out),
    plus ``model_index`` (the folder's model_index.json). Files are hashed where the model is on disk
    (digests cached under ``res_path``), the loaded objects otherwise."""
    folder = model_folder(model_id)
    cache = DigestCache(Path(res_path) / CACHE_NAME if res_path else None)
    content: dict[str, str] = {}
    if folder is not None:
        content["model_index"] = cache.digest(folder / "model_index.json")
    for name, value in sorted(pipe.components.items()):
        if value is None:
            continue
        sub = folder / name if folder is not None else None
        content[name] = folder_digest(sub, cache) if sub is not None and sub.is_dir() else memory_digest(value)
    cache.save()
    return content
