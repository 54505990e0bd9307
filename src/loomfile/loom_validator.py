"""loompy's ``loompy.loom_validator`` module: checks a file against the Loom spec."""

from __future__ import annotations

from ._core.validate import LoomValidator

__all__ = ["LoomValidator"]
