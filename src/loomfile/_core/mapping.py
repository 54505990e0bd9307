"""Dict-like base for the managers: item access plus attribute access (``ds.ca.CellID``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar

from .._errors import LoomKeyError

V = TypeVar("V")
MAX_NAMES_SHOWN = 20  # names listed in the error for a missing one


class NamedMapping(MutableMapping[str, V]):
    """A ``MutableMapping`` whose keys can also be used as attributes.

    Subclasses implement ``_names``, ``_get``, ``_set`` and ``_delete``; ``keys()`` keeps the
    file's order. Attribute access only translates ``KeyError`` into ``AttributeError`` (the
    :class:`LoomKeyError` raised is both).
    """

    _kind = "item"
    #: Instance fields; every other attribute name is an item (velocyto's "_X" included).
    _fields: frozenset[str] = frozenset()

    def _names(self) -> list[str]:
        raise NotImplementedError

    def _get(self, name: str) -> V:
        raise NotImplementedError

    def _set(self, name: str, value: Any) -> None:
        raise NotImplementedError

    def _delete(self, name: str) -> None:
        raise NotImplementedError

    def _missing(self, name: object) -> LoomKeyError:
        """The error for a name that is not there, naming those that are (and the closest one)."""
        names = self._names()
        text = f"No {self._kind} named {name!r}"
        if isinstance(name, str):
            close = difflib.get_close_matches(name, names, n=1) or [
                n for n in names if n.lower() == name.lower()
            ]
            if close:
                text += f"; did you mean {close[0]!r}?"
        shown = ", ".join(repr(n) for n in names[:MAX_NAMES_SHOWN])
        more = f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
        text += f" (present: {shown}{more})" if names else " (none present)"
        return LoomKeyError(text)

    def __getitem__(self, name: str) -> V:
        if not isinstance(name, str) or name not in self._names():
            raise self._missing(name)
        return self._get(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._set(name, value)

    def __delitem__(self, name: str) -> None:
        if not isinstance(name, str) or name not in self._names():
            raise self._missing(name)
        self._delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._names()

    def keys(self) -> list[str]:  # type: ignore[override]
        """The names, as a list (as loompy returns them)."""
        return self._names()

    def __getattr__(self, name: str) -> V:
        if name.startswith("__") or name in type(self)._fields:
            raise AttributeError(name)
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._fields:
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        if name in type(self)._fields:
            object.__delattr__(self, name)
        else:
            del self[name]

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *(n for n in self._names() if n.isidentifier())]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._names()}>"
