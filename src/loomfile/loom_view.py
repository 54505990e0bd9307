"""loompy's ``loompy.loom_view`` module: in-memory slices of a file."""

from __future__ import annotations

from ._api.connection import LoomView

__all__ = ["LoomView"]
