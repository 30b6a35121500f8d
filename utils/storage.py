"""Atomic writes: safetensors with JSON metadata, text files and whole folders (temp file, then rename).

Every write goes to a temporary sibling named ``.<name>.<host>-<pid>.<random>.tmp`` and is renamed
over its target once complete, so a reader never sees half a file. A temporary file or folder left
behind by a killed process (of this machine, whose pid no longer runs; or of any machine, over a day
old) is removed by the next successful write of the same target. Files and folders get the user's umask, as ``open``
would give them. A folder is replaced only when it is ours: empty, or marked by ``OWNER_MARK`` and
holding nothing but what we wrote.

torch and safetensors are imported only by the functions that need them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from utils.errors import UsageError

if TYPE_CHECKING:
    import torch

OWNER_MARK = ".concept-prune-output.json"  # in a folder we wrote whole: the files we put there
STALE_SECONDS = 24 * 3600


def user_umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~user_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder: 0o777 less the umask."""
    return 0o777 & ~user_umask()


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


@lru_cache(maxsize=1)
def _host() -> str:
    """This machine's name, reduced to letters, digits and ``-`` (it goes into temporary file names)."""
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _is_stale(tmp: Path) -> bool:
    """Whether a temporary sibling was left by a writer that is gone: one of this machine whose process
    no longer runs, or any over a day old (a writer on another machine sharing the folder is judged by
    age alone)."""
    parts = tmp.name.rsplit(".", 3)  # ".<name>", "<host>-<pid>", "<random>", "tmp"
    try:
        host, pid_text = parts[-3].rsplit("-", 1)
        pid = int(pid_text)
        age = time.time() - tmp.lstat().st_mtime
    except (ValueError, IndexError, OSError):
        return False
    if age > STALE_SECONDS:
        return True
    return host == _host() and pid != os.getpid() and not _pid_running(pid)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` that killed writers left behind; return them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        if _is_stale(tmp):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_host()}-{os.getpid()}."


def _temp_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.chmod(name, file_mode())  # mkstemp makes 0600 files; results are meant to be read like any other file
    return Path(name)


def _finish(tmp: Path, path: Path) -> None:
    """Rename the complete temporary file over ``path`` and clear stale temporaries of earlier runs."""
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{path} is a folder, where a file is to be written; move it away or choose another output folder")
    os.replace(tmp, path)
    remove_stale_temps(path)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``tensors`` to a safetensors file atomically; each metadata value is stored as JSON."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = _temp_path(path)
    try:
        contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(contiguous, str(tmp), metadata={k: json.dumps(v) for k, v in metadata.items()})
        os.chmod(tmp, file_mode())  # safetensors writes a fresh 0600 file in place of the temp one
        _finish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON-decoded metadata of a safetensors file, keys sorted (the file keeps no order)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    return {k: json.loads(raw[k]) for k in sorted(raw)}


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a safetensors file written by ``save_tensors``."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        raw = handle.metadata() or {}
        for key in handle.keys():
            tensors[key] = handle.get_tensor(key)
    return tensors, {k: json.loads(v) for k, v in raw.items()}


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        _finish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_image(path: str | Path, image, text: dict[str, str] | None = None) -> None:
    """Save a PIL image atomically (format from the file suffix); ``text``: PNG text chunks (name -> text)."""
    path = Path(path)
    tmp = _temp_path(path)
    extra = {}
    if text:
        from PIL.PngImagePlugin import PngInfo

        extra["pnginfo"] = PngInfo()
        for name, value in text.items():
            extra["pnginfo"].add_text(name, value)
    try:
        image.save(tmp, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"), **extra)
        _finish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _owned_files(folder: Path) -> set[str] | None:
    """The files our mark in ``folder`` lists (relative paths), or None when the folder is not marked."""
    mark = folder / OWNER_MARK
    if not mark.is_file() or mark.is_symlink():
        return None
    try:
        listed = json.loads(mark.read_text(encoding="utf-8")).get("files")
    except (ValueError, UnicodeDecodeError, AttributeError, OSError):
        return None
    return {str(f) for f in listed} if isinstance(listed, list) else None


def _relative_files(folder: Path) -> set[str]:
    """Every file, link and empty folder under ``folder``, as paths relative to it."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        found.update(str(rel / name) if str(rel) != "." else name for name in files)
        found.update(str(rel / d) for d in dirs if (Path(root) / d).is_symlink())
        if not dirs and not files and str(rel) != ".":
            found.add(str(rel))
    return found


def check_replaceable(path: str | Path, what: str = "output folder", ours: str | None = None) -> None:
    """Raise UsageError unless ``path`` may be written as a whole folder: absent, an empty folder, or a
    folder we marked as ours that holds nothing but what we wrote there. Never touches anything.

    ours: a regular expression of the file names (relative paths) this kind of folder holds; an
    unmarked folder holding only such names (written before folders were marked) counts as ours.
    """
    path = Path(path)
    if path.is_symlink():
        raise UsageError(f"{what} {path} is a symbolic link; pass a new folder name")
    if not path.exists():
        return
    if not path.is_dir():
        raise UsageError(f"{what} {path} is an existing file; pass a new folder name")
    if path.resolve() == Path.cwd().resolve() or path.resolve() in Path.cwd().resolve().parents:
        raise UsageError(f"{what} {path} is the working folder or one above it; pass a new folder name")
    present = _relative_files(path)
    if not present:
        return
    owned = _owned_files(path)
    if owned is not None:
        foreign = sorted(present - owned - {OWNER_MARK})
    elif ours is not None:
        foreign = sorted(name for name in present if not re.fullmatch(ours, name))
    else:
        raise UsageError(f"{what} {path} already holds files that concept-prune did not write; pass a new or empty folder")
    if foreign:
        raise UsageError(f"{what} {path} holds {foreign[0]}, which concept-prune did not write there; move it away or pass a new folder")


def _apply_modes(folder: Path) -> None:
    """Give everything under ``folder`` (and the folder) the modes the user's umask gives new files."""
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, dir_mode())
        for name in files:
            if not (Path(root) / name).is_symlink():
                os.chmod(Path(root) / name, file_mode())
    os.chmod(folder, dir_mode())


@contextmanager
def atomic_directory(path: str | Path, what: str = "output folder", ours: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``, on error it is removed.

    ``path`` must be absent, empty, or a folder this function wrote before and that holds nothing
    else (see check_replaceable; ``ours`` as there), else UsageError before anything is written. Without
    ``ours`` the new folder is marked as ours (``OWNER_MARK`` lists its files); it gets the user's umask.
    """
    path = Path(path)
    check_replaceable(path, what, ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        if ours is None:  # a folder of known file names is recognised by them; any other gets the mark
            files = sorted(_relative_files(tmp))
            (tmp / OWNER_MARK).write_text(json.dumps({"written_by": "concept-prune", "files": files}, indent=1) + "\n", encoding="utf-8")
        _apply_modes(tmp)
        check_replaceable(path, what, ours)  # again: nothing of the user's may have arrived meanwhile
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
            os.replace(path, old / "previous")
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:  # put the previous folder back before reporting the failure
                os.replace(old / "previous", path)
            raise
        remove_stale_temps(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
