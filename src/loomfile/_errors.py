"""Exception hierarchy.

Every class subclasses :class:`LoomError` *and* the builtin exception loompy raised in the same
situation, so code written against loompy (``except ValueError``, ``except AttributeError``...)
keeps working.
"""

from __future__ import annotations

__all__ = [
    "LoomClosedError",
    "LoomError",
    "LoomFormatError",
    "LoomKeyError",
    "LoomLockedError",
    "LoomNotFoundError",
    "LoomReadOnlyError",
    "LoomValueError",
    "SelectionError",
]


class LoomError(Exception):
    """Base class of every error loomfile raises on purpose."""


class LoomValueError(LoomError, ValueError):
    """A value given to loomfile is unusable (wrong shape, NaN, bad name, bad dtype...)."""


class LoomKeyError(LoomError, KeyError, AttributeError):
    """A named layer, attribute or graph does not exist.

    It is both a ``KeyError`` (``ds.ra["X"]``) and an ``AttributeError`` (``ds.ra.X``), as loompy
    raised ``AttributeError`` for both forms.
    """

    def __str__(self) -> str:
        # KeyError quotes its message; this message is a sentence, not a key.
        return str(self.args[0]) if self.args else ""


class LoomFormatError(LoomError, ValueError, OSError):
    """The file is not a readable Loom file (not HDF5, truncated, missing /matrix...)."""


class LoomNotFoundError(LoomError, FileNotFoundError):
    """The file does not exist."""


class LoomLockedError(LoomError, OSError):
    """Another process holds the HDF5 lock on the file (usually because it is writing)."""


class LoomReadOnlyError(LoomError, OSError):
    """A write was attempted on a connection opened with mode 'r'."""


class LoomClosedError(LoomError, ValueError):
    """The connection was used after it was closed."""


class SelectionError(LoomError, IndexError):
    """An index is out of range or a mask has the wrong length."""
