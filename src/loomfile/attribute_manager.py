"""loompy's ``loompy.attribute_manager`` module: row and column attributes."""

from __future__ import annotations

from ._core.attributes import AttributeManager

__all__ = ["AttributeManager"]
