"""Warnings that point at the user's line, however deep inside loomfile they are raised."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PASS_THROUGH = ("contextlib.py", "functools.py")


def caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside loomfile (and the decorators it runs through),
    as seen from the function that calls this one."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE_DIR) or frame.f_code.co_filename.endswith(_PASS_THROUGH)
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message)`` attributed to the line of user code that called into loomfile."""
    warnings.warn(message, category, stacklevel=caller_stacklevel())
