"""loompy's ``loompy.global_attribute_manager`` module: file-level attributes."""

from __future__ import annotations

from ._core.attributes import GlobalAttributeManager

__all__ = ["GlobalAttributeManager"]
