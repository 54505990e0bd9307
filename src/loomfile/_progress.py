"""Progress bars for long operations (combine, add_loom, permute, export, map, scan, imports).

Every long public call takes ``progress=None | True | False``. ``None`` (the default) shows a bar
when standard error is a terminal, so scripts and pipelines writing to logs stay quiet; the
environment variable ``LOOMFILE_PROGRESS=0`` or ``=1`` overrides that default. A bar appears only
once an operation has run for ``DELAY`` seconds, so quick calls print nothing.

Operations report work done through a plain callable (``tick(n)``) they receive from the public
call; code below the public layer never looks at bars.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

Tick = Callable[[int], None]
DELAY = 1.0  # seconds before a bar is drawn


def nothing(n: int) -> None:
    """The tick of an operation nobody watches."""


def wanted(progress: bool | None) -> bool:
    """Whether to draw a bar: the caller's choice, else LOOMFILE_PROGRESS, else "stderr is a terminal"."""
    if progress is not None:
        return bool(progress)
    setting = os.environ.get("LOOMFILE_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty()


@contextmanager
def bar(total: int, what: str, progress: bool | None, unit: str = "it") -> Iterator[Tick]:
    """A bar counting ``total`` units of ``what``; yields the function that advances it."""
    if not wanted(progress):
        yield nothing
        return
    with tqdm(
        total=total, desc=what, unit=unit, unit_scale=True, delay=DELAY, leave=False, file=sys.stderr
    ) as shown:
        yield shown.update
