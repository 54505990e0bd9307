"""``LoomValidator``: the structure checks of the storage layer, plus the content checks of the
object model (attributes, global attributes and graphs read as users get them)."""

from __future__ import annotations

from functools import partial
from typing import Any

from .._store.store import LoomStore, open_h5
from .._store.validate import StructureValidator, problems_of
from .attributes import AttributeManager, GlobalAttributeManager
from .graphs import GraphManager


class LoomValidator(StructureValidator):
    """Check a file against the Loom format; collect ``errors`` and ``warnings`` (lists of str).

    Examples
    --------
    >>> v = LoomValidator()
    >>> v.validate("data.loom")
    True
    >>> v.warnings
    []
    """

    def content_problems(self, path: str, problems: list[str]) -> None:
        """Add to ``problems`` what loomfile cannot read as Loom content: attributes (string decoding
        included), global attributes, graphs (vertex ids in range, vectors of one length)."""
        store = LoomStore(open_h5(path, "r"), path)
        try:
            managers: list[tuple[str, Any]] = [
                ("row attribute", AttributeManager(store, 0)),
                ("column attribute", AttributeManager(store, 1)),
                ("global attribute", GlobalAttributeManager(store)),
                ("row graph", GraphManager(store, 0)),
                ("column graph", GraphManager(store, 1)),
            ]
            for word, manager in managers:
                for name in manager.keys():
                    problems += problems_of(f"{word} {name!r}", partial(manager.__getitem__, name))
        finally:
            store.close()

