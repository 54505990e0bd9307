"""What changed in an open file, and when.

Reads done ahead of time (a prefetched scan band) and cached structures (a layer's chunk layout)
record the generation they were made in, then ask whether anything they depend on has changed
since. Layer writes are recorded with the bounding box of the rows and columns they touched, so a
scan that writes results back band by band does not invalidate the band read ahead of it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection

Box = tuple[int, int]  # [start, stop) along one axis
EVERYTHING: Box = (0, 2**62)

LAYERS = "layers"  # a layer was created, deleted or resized: every layer counts as changed
META = "meta"  # attributes, graphs or global attributes


def layer_key(name: str) -> str:
    return f"layer:{name}"


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class ChangeLog:
    """Generation counter and a bounded log of recent changes."""

    def __init__(self, keep: int = 1024) -> None:
        self.generation = 0
        self._entries: deque[tuple[int, str, Box, Box]] = deque(maxlen=keep)
        self._lock = threading.Lock()  # prefetching threads read the log while the caller writes

    def record(self, what: str, rows: Box = EVERYTHING, cols: Box = EVERYTHING) -> None:
        with self._lock:
            self.generation += 1
            self._entries.append((self.generation, what, rows, cols))

    def changed_since(
        self, generation: int, what: Collection[str], rows: Box = EVERYTHING, cols: Box = EVERYTHING
    ) -> bool:
        """Whether anything in ``what`` (within rows x cols, for layers) changed after ``generation``."""
        with self._lock:
            if generation == self.generation:
                return False
            entries = list(self._entries)
        if not entries or entries[0][0] > generation + 1:
            return True  # older than the log remembers
        for g, key, r, c in reversed(entries):
            if g <= generation:
                break
            if key == LAYERS or (key in what and (key == META or (_overlap(r, rows) and _overlap(c, cols)))):
                return True
        return False
