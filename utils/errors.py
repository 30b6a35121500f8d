"""One error type for bad input, and the wrapper that turns it into one sentence and exit code 2."""
from __future__ import annotations

import errno
import sys
from typing import Callable, Sequence

# What the file system says when the user's folder cannot take our files: one sentence, not a traceback.
FILE_SYSTEM_ERRORS = {
    errno.EACCES: "you may not write there; pass a folder you can write to (--res_path, --out_dir)",
    errno.EPERM: "you may not write there; pass a folder you can write to (--res_path, --out_dir)",
    errno.EROFS: "the file system is read-only; pass a folder on a writable one",
    errno.ENOSPC: "the disk is full; free some space or pass a folder on another disk",
    errno.EDQUOT: "your disk quota is used up; free some space or pass a folder on another disk",
    errno.ENAMETOOLONG: "a file name is too long for the file system; pass a shorter folder or name",
}


class UsageError(Exception):
    """Bad input from the user: the message is one sentence that says what to do."""


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)``; print a ``UsageError`` (or a file system refusal: permissions, a full disk, a
    name too long) as ``error: <sentence>`` and exit with code 2. Files are written atomically, so such a
    refusal leaves no half-written file behind."""
    try:
        main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        advice = FILE_SYSTEM_ERRORS.get(err.errno)
        if advice is None:
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {err.strerror or 'the file system refused'}{where}: {advice}", file=sys.stderr)
        sys.exit(2)
