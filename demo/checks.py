"""Cheap checks of command-line and config values for the demo tools and the speed scripts (no torch import).

Each check raises ``UsageError`` with one sentence that says what to do, before any model is loaded or
anything is written; the scripts run their ``main`` through ``run_cli``, which prints it and exits with 2.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from utils.config import DEVICE_PATTERN  # the one device rule of every script
from utils.errors import UsageError



def integer(value: Any, option: str, low: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool, float or text) of at least ``low``; else UsageError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{option} must be an integer, got {value!r}")
    if value < low:
        kind = "a positive integer" if low == 1 else "zero or more" if low == 0 else f"an integer of at least {low}"
        raise UsageError(f"{option} must be {kind}, got {value}")
    return value


def number(value: Any, option: str, low: float | None = None, high: float | None = None, open_low: bool = False) -> float:
    """``value`` as a finite float (an int or float, not a bool or text) within [low, high] (low excluded with
    ``open_low``); else UsageError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value!r}")
    if (low is not None and (value < low or (open_low and value == low))) or (high is not None and value > high):
        lower = "-inf" if low is None else f"{low:g}"
        upper = "inf" if high is None else f"{high:g}"
        raise UsageError(f"{option} must lie in {'(' if open_low else '['}{lower}, {upper}], got {value:g}")
    return float(value)


def device_name(value: Any, option: str = "--device") -> str:
    """``value`` when it names a device torch understands (auto, cpu, cuda, cuda:N, mps); else UsageError."""
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise UsageError(f"unknown {option} {value!r}; use auto, cpu, cuda, cuda:N or mps")
    return value


def _blocking_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (so nothing can be written below it), or None."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def output_file(value: Any, option: str, suffixes: Iterable[str] = ()) -> Path:
    """``value`` as the path of a file to write: not an existing folder, below folders (not files), ending in one
    of ``suffixes`` (when given, case-insensitive); else UsageError. Nothing is created."""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{option} must name a file, got {value!r}")
    path = Path(value).expanduser()
    suffixes = tuple(suffixes)
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {value} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"{option} {value} is an existing folder; name a file to write instead")
    blocking = _blocking_ancestor(path)
    if blocking is not None:
        raise UsageError(f"{option} {value} lies below {blocking}, which is a file, not a folder; name a file in a folder")
    return path


def output_folder(value: Any, option: str) -> Path:
    """``value`` as a folder to write into: an existing folder or a path that can become one; else UsageError."""
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{option} must name a folder, got {value!r}")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {value} is an existing file, not a folder; name a folder")
    blocking = _blocking_ancestor(path)
    if blocking is not None:
        raise UsageError(f"{option} {value} lies below {blocking}, which is a file, not a folder; name a folder elsewhere")
    return path


def read_json(path: str | Path, what: str) -> Any:
    """The JSON of a file; UsageError (naming ``what`` it should be) when it is missing, a folder, not UTF-8 or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} is {'a folder' if path.is_dir() else 'missing'}; give {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; give {what}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}); give {what}") from None
    except OSError as err:
        raise UsageError(f"{path} cannot be read ({err.strerror}); give {what}") from None


def first_line(err: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message (its type's name when it has none), cut to ``limit`` characters."""
    return ((str(err).splitlines() or [""])[0] or type(err).__name__)[:limit]
