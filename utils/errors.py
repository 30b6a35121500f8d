"""One error type for bad input, and the wrapper that turns it into one sentence and exit code 2."""
from __future__ import annotations

import sys
from typing import Callable, Sequence


class UsageError(Exception):
    """Bad input from the user: the message is one sentence that says what to do."""


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)``; print a ``UsageError`` as ``error: <sentence>`` and exit with code 2."""
    try:
        main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
