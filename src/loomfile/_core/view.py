"""Views: in-memory slices through every layer, attribute and graph of a file or of another view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .._errors import SelectionError
from .._selection import AxisSelection, check_ordering, normalize_key
from .html import to_html

if TYPE_CHECKING:
    from .._engine.memory import Recycler
    from .attributes import AttributeManager, GlobalAttributeManager
    from .graphs import GraphManager
    from .layers import LayerManager


class Sliceable(Protocol):
    """What a view can be cut from: a LoomConnection or a LoomView."""

    filename: str

    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def layers(self) -> LayerManager: ...
    @property
    def ra(self) -> AttributeManager: ...
    @property
    def ca(self) -> AttributeManager: ...
    @property
    def row_graphs(self) -> GraphManager: ...
    @property
    def col_graphs(self) -> GraphManager: ...
    @property
    def attrs(self) -> GlobalAttributeManager: ...


def _as_axis(key: Any, n: int, axis: int) -> AxisSelection:
    sel = key if isinstance(key, AxisSelection) else AxisSelection.from_key(key, n, axis)
    # A view always keeps both axes: an int selects a band of one.
    return AxisSelection(sel.n, sel.indices, drop=False, contiguous=sel.contiguous)


def make_view(
    source: Sliceable,
    rows: Any,
    cols: Any,
    *,
    layers: Sequence[str] | None = None,
    what: Sequence[str] = ("col_attrs", "row_attrs", "layers", "col_graphs", "row_graphs"),
    ready: Mapping[str, AttributeManager | GraphManager] | None = None,
    whole: Mapping[str, AttributeManager | GraphManager] | None = None,
    buffers: Recycler | None = None,
) -> View:
    """Slice ``source`` by ``rows`` x ``cols`` (keys or AxisSelections) into a LoomView.

    ``ready`` may hold in-memory attributes or graphs already restricted to this selection, and
    ``whole`` in-memory ones of a whole axis to cut from instead of the file (a scan reads both
    once); the view always gets its own copies. The layers are read into ``buffers`` when given.
    """
    from .attributes import AttributeManager
    from .graphs import GraphManager

    shape = source.shape
    row_sel = _as_axis(rows, shape[0], 0)
    col_sel = _as_axis(cols, shape[1], 1)
    ready = ready or {}
    whole = whole or {}

    def part(key: str, manager: Any, sel: AxisSelection, empty: Any) -> Any:
        if key not in what:
            return empty
        if key in ready:
            return ready[key]._select(AxisSelection.full(sel.size))
        return whole.get(key, manager)._select(sel)

    ra = part("row_attrs", source.ra, row_sel, AttributeManager.in_memory(0, {}, row_sel.size))
    ca = part("col_attrs", source.ca, col_sel, AttributeManager.in_memory(1, {}, col_sel.size))
    rg = part("row_graphs", source.row_graphs, row_sel, GraphManager.in_memory(0, {}, row_sel.size))
    cg = part("col_graphs", source.col_graphs, col_sel, GraphManager.in_memory(1, {}, col_sel.size))
    lm = source.layers._select(row_sel, col_sel, layers, buffers)
    cls = getattr(source, "_view_class", View)
    return cls(lm, ra, ca, rg, cg, filename=source.filename, file_attrs=source.attrs.snapshot())


class ViewManager:
    """``ds.view[rows, cols]`` creates a :class:`LoomView`."""

    def __init__(self, ds: Sliceable) -> None:
        self._source = ds

    def __getitem__(self, key: Any) -> View:
        if not isinstance(key, tuple) or len(key) != 2:
            msg = "Views need a selection on both axes, like ds.view[rows, cols]"
            raise SelectionError(msg)
        rows, cols = normalize_key(key, self._source.shape)
        return make_view(self._source, rows, cols)


class View:
    """An in-memory slice of a Loom file, with the same read interface as a connection.

    Created by ``ds.view[rows, cols]`` or yielded by ``ds.scan(...)``; it keeps working after the
    file is closed.
    """

    _view_class: ClassVar[type[View]]  # what view.view[...] makes (LoomView: LoomView)

    def __init__(
        self,
        layers: LayerManager,
        row_attrs: AttributeManager,
        col_attrs: AttributeManager,
        row_graphs: GraphManager,
        col_graphs: GraphManager,
        *,
        filename: str = "",
        file_attrs: GlobalAttributeManager | None = None,
    ) -> None:
        from .attributes import GlobalAttributeManager

        self.filename = filename
        self.layers = layers
        self.ra = row_attrs
        self.ca = col_attrs
        self.row_graphs = row_graphs
        self.col_graphs = col_graphs
        self.attrs = file_attrs if file_attrs is not None else GlobalAttributeManager.in_memory({})
        # loompy's aliases
        self.layer = layers
        self.row_attrs = row_attrs
        self.col_attrs = col_attrs

    @property
    def view(self) -> ViewManager:
        """``view.view[rows, cols]``: a view of this view. (Made on demand: a stored one would be a
        reference cycle, keeping every band of a scan alive until the garbage collector ran.)"""
        return ViewManager(self)

    @property
    def shape(self) -> tuple[int, int]:
        return self.layers._shape

    def __getitem__(self, key: Any) -> Any:
        """``view[rows, cols]`` reads the main matrix; ``view["name"]`` returns a layer."""
        if isinstance(key, str):
            return self.layers[key]
        return self.layers[""][key]

    def __repr__(self) -> str:
        return f"<LoomView {self.shape[0]} rows x {self.shape[1]} columns, layers {self.layers.keys()}>"

    def _repr_html_(self) -> str:
        return to_html(self)

    def permute(self, ordering: Any, *, axis: int) -> None:
        """Reorder the view's rows (axis 0) or columns (axis 1) in memory."""
        order = check_ordering(ordering, self.shape[axis], axis)
        self.layers._permute(order, axis=axis)
        (self.ra if axis == 0 else self.ca)._permute(order)
        (self.row_graphs if axis == 0 else self.col_graphs)._permute(order)


View._view_class = View
