"""loompy's ``loompy.loom_view`` module: in-memory slices of a file."""

from __future__ import annotations

from ._core.view import LoomView

__all__ = ["LoomView"]
