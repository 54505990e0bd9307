"""Hypothesis strategies for testing code that indexes Loom files, as loomfile's own tests do.

``axis_keys(n)`` draws one key for an axis of length ``n``: any of the kinds of key that
``ds[rows, cols]``, ``ds.layers[name][rows, cols]`` and ``ds.view[rows, cols]`` accept per axis.
Draw one per axis to select from a matrix:

```python
from hypothesis import given
from loomfile.testing import axis_keys

@given(rows=axis_keys(100), cols=axis_keys(20))
def test_reads(rows, cols):
    ...
```

Needs hypothesis, which is not a dependency of loomfile (it is in the ``test`` extra:
``pip install 'loomfile[test]'`` or ``pip install hypothesis``). ``import loomfile`` does not import
this module, nor hypothesis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

__all__ = ["AXIS_KEY_KINDS", "AxisKey", "AxisKeyKind", "axis_keys"]

AxisKeyKind: TypeAlias = Literal["int", "slice", "list", "mask", "array"]
"""The kinds of key ``axis_keys`` draws (see there)."""

AXIS_KEY_KINDS: tuple[AxisKeyKind, ...] = ("int", "slice", "list", "mask", "array")
"""Every kind of axis key, in the order hypothesis shrinks towards (an int first)."""

AxisKey: TypeAlias = int | slice | list[int] | npt.NDArray[np.bool_] | npt.NDArray[np.signedinteger[Any]]
"""A key for one axis: an int, a slice, a list of ints, a boolean mask or an integer array."""


def axis_keys(
    n: int,
    *,
    kinds: Sequence[AxisKeyKind] = AXIS_KEY_KINDS,
    max_list: int = 60,
    max_step: int = 40,
) -> st.SearchStrategy[AxisKey]:
    """A hypothesis strategy for one key on an axis of length ``n``.

    Each example is one of these kinds (``kinds`` chooses among them; hypothesis shrinks towards the
    first one given):

    - ``"int"``: an int in ``[-n, n)``; negative ints count from the end (``ds[...]`` drops the
      axis, as numpy does).
    - ``"slice"``: a slice whose start and stop are ``None`` or any int in ``[-n - 3, n + 3]`` (out
      of range included) and whose step is ``None`` or a non-zero int in ``[-max_step, max_step]``
      (negative steps included).
    - ``"list"``: a list of up to ``max_list`` ints in ``[-n, n)``, unsorted, repeated and negative
      ones included, possibly empty.
    - ``"mask"``: a boolean array of length ``n``.
    - ``"array"``: a sorted contiguous run ``np.arange(lo, hi)`` with ``0 <= lo < n`` and
      ``lo <= hi <= n`` (possibly empty), an integer array that selects whole runs of chunks as a
      band of a scan does.

    Parameters
    ----------
    n
        The length of the axis, at least 0. With ``n == 0`` there is no int to draw: the ``"int"``
        kind is left out (and ``kinds=("int",)`` is refused).
    kinds
        The kinds to draw from, a non-empty sequence of names from ``AXIS_KEY_KINDS``.
    max_list
        The longest list the ``"list"`` kind draws, at least 0.
    max_step
        The largest step (in absolute value) the ``"slice"`` kind draws, at least 1.

    Returns
    -------
    SearchStrategy
        Keys of type ``AxisKey``.

    Raises
    ------
    ValueError
        On a negative ``n``, an empty or unknown ``kinds``, a negative ``max_list`` or a
        ``max_step`` below 1.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import given
    >>> from loomfile.testing import axis_keys
    >>> @given(axis_keys(10))
    ... def test_keys_stay_on_the_axis(key):
    ...     assert set(np.atleast_1d(np.arange(10)[key])) <= set(range(10))
    >>> test_keys_stay_on_the_axis()

    Only slices and masks, with steps up to 3:

    >>> strategy = axis_keys(10, kinds=("slice", "mask"), max_step=3)
    """
    if n < 0:
        msg = f"The length of an axis is at least 0, not {n}"
        raise ValueError(msg)
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in AXIS_KEY_KINDS]
    if unknown or not chosen:
        msg = f"kinds must be a non-empty sequence of {list(AXIS_KEY_KINDS)}, not {list(chosen)}"
        raise ValueError(msg)
    if n == 0:
        chosen = tuple(k for k in chosen if k != "int")
        if not chosen:
            msg = "An axis of length 0 has no int key: give kinds other than 'int'"
            raise ValueError(msg)
    if max_list < 0:
        msg = f"max_list is at least 0, not {max_list}"
        raise ValueError(msg)
    if max_step < 1:
        msg = f"max_step is at least 1, not {max_step}"
        raise ValueError(msg)
    return _axis_keys(n, chosen, max_list, max_step)


@st.composite
def _axis_keys(
    draw: st.DrawFn, n: int, kinds: tuple[AxisKeyKind, ...], max_list: int, max_step: int
) -> AxisKey:
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return draw(st.integers(-n, n - 1))
    if kind == "slice":
        bound = st.none() | st.integers(-n - 3, n + 3)
        step = st.none() | st.integers(1, max_step) | st.integers(-max_step, -1)
        return slice(draw(bound), draw(bound), draw(step))
    if kind == "list":
        if not n:
            return []
        return draw(st.lists(st.integers(-n, n - 1), max_size=max_list))
    if kind == "array":
        if not n:
            return np.arange(0)
        lo = draw(st.integers(0, n - 1))
        return np.arange(lo, draw(st.integers(lo, n)))
    return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
