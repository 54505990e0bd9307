"""Warnings that point at the caller's line, however deep inside loomfile they are raised.

A fixed ``stacklevel`` is right for one call path only: the same drop of column attributes is
warned about from ``add_columns``, ``add_loom`` and ``combine``, each at another depth, and a
warning that points into loomfile tells the user nothing. :func:`warn` counts the frames up to the
first one outside the package (Python 3.12's ``skip_file_prefixes``, for 3.10 too).
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside loomfile."""
    level = 2  # 1 is this function, 2 the frame below
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
