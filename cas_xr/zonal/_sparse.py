"""Windows read from only the chunks their geometries touch.

A task's window is the box around a group of geometries. When the geometries are sparse
(a few catchments scattered over a continent), most of the box lies under no geometry;
reading it whole would fetch every chunk (every COG tile, WCS tile or Zarr chunk) in the
box. Here a window is assembled from the Dask chunks that some geometry of the group
intersects; the other chunks are never part of the graph, so they are never read. The
cells they would hold lie outside every geometry of the group and carry no weight; they
are filled with the variable's missing-value marker (NaN, else 0) all the same.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.zonal._encoding import Encoding

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["touched_edges", "window_of"]

#: Cells by which a chunk's box is grown before testing it against the geometries, so a
#: cell that a geometry's edge crosses by a rounding error is never left out.
_GROW = 1e-6

#: A window whose geometries' windows cover all of it but this share of what they cover
#: is read whole: reading the few cells between them costs less than cutting it up.
_WHOLE = 0.05

#: Up to this many windows, :func:`_covered` counts their union exactly on the grid of
#: their edges.
_FEW = 16

#: Cells a side of the grid on which :func:`_covered` counts more windows (a coarser one
#: for a larger window).
_GRID = 512

_Window = tuple[int, int, int, int]


def _edges(chunks: Sequence[int], start: int, stop: int) -> list[tuple[int, int]]:
    """The chunk spans along one axis that overlap ``[start, stop)``, clipped to it."""
    spans = itertools.pairwise(itertools.accumulate(chunks, initial=0))
    return [(max(a, start), min(b, stop)) for a, b in spans if a < stop and b > start]


def touched_edges(
    shapes: npt.NDArray[Any],
    to_cells: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    chunks: tuple[Sequence[int], Sequence[int]],
    window: _Window,
    bounds: npt.NDArray[np.int64] | None = None,
) -> tuple[list[_Window], bool]:
    """The chunk boxes inside ``window`` that some geometry touches, and whether all are.

    Parameters
    ----------
    shapes
        The group's geometries in the raster's CRS.
    to_cells
        Maps ``(n, 2)`` CRS coordinates to cell units (column, row) of the whole grid.
    chunks
        The variable's chunk sizes along rows and columns.
    window
        ``(r0, r1, c0, c1)`` of the group.
    bounds
        The geometries' ``(n, 4)`` cell windows, if known: a chunk box that holds one of
        them whole is touched without a test of the shapes (all of them, in a dense
        group, without building a search tree of its 3,000 polygons).

    Returns
    -------
    tuple
        ``(r0, r1, c0, c1)`` of each touched chunk (clipped to the window), and True
        when every chunk in the window is touched.
    """
    import shapely

    r0, r1, c0, c1 = window
    boxes = [
        (a, b, c, d)
        for (a, b), (c, d) in itertools.product(
            _edges(chunks[0], r0, r1), _edges(chunks[1], c0, c1)
        )
    ]
    if len(boxes) == 1:
        return boxes, True
    if bounds is not None:
        box = np.array(boxes)[:, None, :]
        holds = (
            (bounds[:, 0] >= box[..., 0]) & (bounds[:, 1] <= box[..., 1])
            & (bounds[:, 2] >= box[..., 2]) & (bounds[:, 3] <= box[..., 3])
            & (bounds[:, 1] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 2])
        )  # fmt: skip
        if holds.any(axis=1).all():
            return boxes, True
    polygons = shapely.box(
        *np.array([(c - _GROW, a - _GROW, d + _GROW, b + _GROW) for a, b, c, d in boxes]).T
    )
    tree = shapely.STRtree(shapely.transform(shapes, to_cells))
    hit = np.unique(tree.query(polygons, predicate="intersects")[0])
    return [boxes[i] for i in hit], hit.size == len(boxes)


def _clipped(boxes: Sequence[_Window], bounds: npt.NDArray[np.int64]) -> list[_Window]:
    """The parts of each chunk box under the geometry windows that overlap it.

    The rest of the chunk lies outside every geometry's window, so a reader that can
    fetch any window (WCS) need not fetch it (see :func:`cas_xr.zonal._reads.compute`).
    A part inside another is left out; parts that overlap stay apart (the reader reads
    their cells once, see :func:`cas_xr.zonal._cover.cover`).
    """
    out: list[_Window] = []
    for a, b, c, d in boxes:
        near = bounds[
            (bounds[:, 0] < b) & (bounds[:, 1] > a) & (bounds[:, 2] < d) & (bounds[:, 3] > c)
        ]
        if not near.size:
            out.append((a, b, c, d))
            continue
        parts = np.unique(
            np.column_stack([
                np.maximum(near[:, 0], a), np.minimum(near[:, 1], b),
                np.maximum(near[:, 2], c), np.minimum(near[:, 3], d),
            ]),
            axis=0,
        )  # fmt: skip
        inside = (
            (parts[:, None, 0] >= parts[None, :, 0]) & (parts[:, None, 1] <= parts[None, :, 1])
            & (parts[:, None, 2] >= parts[None, :, 2]) & (parts[:, None, 3] <= parts[None, :, 3])
        )  # fmt: skip
        np.fill_diagonal(inside, False)
        out.extend(tuple(int(v) for v in p) for p in parts[~inside.any(axis=1)])  # type: ignore[misc]
    return out


def reads_any_window(data: Any) -> bool:
    """Whether a read task under the Dask array ``data`` fetches any window it is given.

    Such a reader (a WCS, ``reads_any_window``) is asked for the geometries' windows
    only; any other reads whole chunks (a COG's tiles, Zarr chunks), so cutting a chunk
    into the geometries' windows saves no byte and costs a task per part (100,000
    polygons: 2.5x the run).
    """
    from dask.highlevelgraph import MaterializedLayer

    for layer in data.dask.layers.values():
        if isinstance(layer, MaterializedLayer) and layer.mapping:
            task = next(iter(layer.mapping.values()))
            func = task[0] if isinstance(task, tuple) and task else getattr(task, "func", None)
            if getattr(func, "reads_any_window", False):
                return True
    return False


def _union_cells(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> int:
    """Cells under the union of rectangles ``rows[i, 0]:rows[i, 1], cols[i, 0]:cols[i, 1]``.

    Exact: marked on the grid of the rectangles' own edges, whose cells are summed by area.
    """
    keep = (rows[:, 1] > rows[:, 0]) & (cols[:, 1] > cols[:, 0])
    rows, cols = rows[keep], cols[keep]
    if not len(rows):
        return 0
    ys, xs = np.unique(rows), np.unique(cols)
    under = np.zeros((ys.size - 1, xs.size - 1), dtype=bool)
    top, bottom = np.searchsorted(ys, rows[:, 0]), np.searchsorted(ys, rows[:, 1])
    left, right = np.searchsorted(xs, cols[:, 0]), np.searchsorted(xs, cols[:, 1])
    for a, b, c, d in zip(top, bottom, left, right, strict=True):
        under[a:b, c:d] = True
    return int(np.outer(np.diff(ys), np.diff(xs))[under].sum())


def _covered(bounds: npt.NDArray[np.int64], window: _Window) -> int:
    """Cells of ``window`` under at least one of the windows ``bounds`` (``(n, 4)``).

    Up to :data:`_FEW` windows, exact: the union on the grid of their own edges. More
    are counted on a grid of at most :data:`_GRID` cells a side: exact when the window
    fits, else estimated (each window's edges rounded to the nearest grid line; the count
    only chooses how the window is read, never what it holds). Summed from a difference
    array, not a slice per geometry (3,000 per window of 100,000 polygons: 0.3 s).
    """
    r0, r1, c0, c1 = window
    if len(bounds) <= _FEW:  # a few large windows: two cumsums of 512^2 cost 1.5 ms
        return _union_cells(np.clip(bounds[:, :2], r0, r1), np.clip(bounds[:, 2:], c0, c1))
    step = max(-(-max(r1 - r0, c1 - c0) // _GRID), 1)
    rows, cols = np.clip(bounds[:, :2], r0, r1) - r0, np.clip(bounds[:, 2:], c0, c1) - c0
    top, bottom = (rows[:, 0] + step // 2) // step, (rows[:, 1] + step // 2) // step
    left, right = (cols[:, 0] + step // 2) // step, (cols[:, 1] + step // 2) // step
    keep = (bottom > top) & (right > left)
    top, bottom, left, right = top[keep], bottom[keep], left[keep], right[keep]
    height, width = -(-(r1 - r0) // step), -(-(c1 - c0) // step)
    corners = np.concatenate([top, top, bottom, bottom]) * (width + 1) + np.concatenate(
        [left, right, left, right]
    )
    signs = np.repeat([1, -1, -1, 1], top.size)
    starts = np.bincount(corners, signs, (height + 1) * (width + 1)).reshape(height + 1, -1)
    depth = np.cumsum(starts.astype(np.int32), axis=0, dtype=np.int32)  # int32: 4x faster
    under = np.cumsum(depth, axis=1, dtype=np.int32)[:height, :width] > 0
    return min(int(np.count_nonzero(under)) * step * step, (r1 - r0) * (c1 - c0))


def _assemble(
    pieces: Sequence[npt.NDArray[Any]],
    spans: Sequence[_Window],
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    fill: Any,
) -> npt.NDArray[Any]:
    """A window's array from its touched chunks; the rest holds ``fill``."""
    out = np.full(shape, fill, dtype=dtype)
    for piece, (a, b, c, d) in zip(pieces, spans, strict=True):
        out[..., a:b, c:d] = piece
    return out


def _fill(dtype: np.dtype[Any], encoding: Encoding) -> Any:
    """The marker of a cell that was not read: missing when the dtype can say so."""
    if encoding.missing:
        return encoding.missing[0]
    return np.nan if dtype.kind in "fc" else 0


def window_of(
    var: xr.DataArray,
    encoding: Encoding,
    window: _Window,
    shapes: npt.NDArray[Any],
    to_cells: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    bounds: npt.NDArray[np.int64] | None = None,
) -> Any:
    """The cells of ``var`` in ``window`` that the geometries ``cells`` need (lazy).

    Parameters
    ----------
    var
        A variable on the grid, dims ``(..., y, x)``.
    encoding
        Its missing-value markers.
    window
        ``(r0, r1, c0, c1)``.
    shapes, to_cells
        The geometries of the window's group and the map to cell units (see
        :func:`touched_edges`).
    bounds
        Their ``(n, 4)`` cell windows ``r0, r1, c0, c1``: when they cover the window
        (but :data:`_WHOLE`), it is read whole, without testing each chunk; else, for a
        reader of any window (:func:`reads_any_window`), only their parts in the chunks
        the geometries touch, and for others the touched chunks.

    Returns
    -------
    dask.array.Array or dask.delayed.Delayed or numpy.ndarray
        The window sliced whole when it is in memory, or the geometries' windows cover
        it, or every chunk in it is touched and the reader reads whole chunks; else a task
        assembling the touched chunks (or their parts under the geometries' windows).
    """
    import dask

    r0, r1, c0, c1 = window
    data = var.data
    whole = data[..., r0:r1, c0:c1]
    if not dask.is_dask_collection(data):
        return whole
    if bounds is not None and _covered(bounds, window) * (1 + _WHOLE) >= (r1 - r0) * (c1 - c0):
        return whole  # the geometries' windows fill it: every chunk is likely touched
    touched, every = touched_edges(
        shapes, to_cells, (data.chunks[-2], data.chunks[-1]), window, bounds
    )
    clip = bounds if bounds is not None and reads_any_window(data) else None
    if every and clip is None:
        return whole
    if clip is not None:
        touched = _clipped(touched, clip)
    spans = [(a - r0, b - r0, c - c0, d - c0) for a, b, c, d in touched]
    shape = (*data.shape[:-2], r1 - r0, c1 - c0)
    fill = _fill(data.dtype, encoding)
    if any(len(c) > 1 for c in data.chunks[:-2]):
        pieces = [data[..., a:b, c:d] for a, b, c, d in touched]
        return dask.delayed(_assemble, pure=True)(pieces, spans, shape, data.dtype, fill)
    return _assembled(data, touched, spans, shape, fill)


def _assembled(
    data: Any,
    touched: Sequence[_Window],
    spans: Sequence[_Window],
    shape: tuple[int, ...],
    fill: Any,
) -> Any:
    """:func:`_assemble` of the parts ``touched`` of ``data``'s chunks, as one Delayed.

    Each part lies in one chunk and is read by :func:`_part`; building the graph
    directly costs a fraction of slicing the Dask array once per part (a graph layer
    each).
    """
    from dask._task_spec import Task, TaskRef
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    rows, cols = (np.cumsum(c)[:-1] for c in data.chunks[-2:])
    lead = (0,) * (data.ndim - 2)
    everything = (slice(None),) * (data.ndim - 2)
    name = f"cas-window-{tokenize(data.name, touched, fill)}"
    layer: dict[Any, Any] = {}
    for n, (a, b, c, d) in enumerate(touched):
        i = int(np.searchsorted(rows, a, side="right"))
        j = int(np.searchsorted(cols, c, side="right"))
        top, left = (int(rows[i - 1]) if i else 0), (int(cols[j - 1]) if j else 0)
        index = (*everything, slice(a - top, b - top), slice(c - left, d - left))
        layer[(name, n)] = _part((name, n), data, (data.name, *lead, i, j), index)
    parts = [TaskRef((name, n)) for n in range(len(touched))]
    layer[name] = Task(name, _assemble_parts, spans, shape, data.dtype, fill, *parts)
    return Delayed(name, HighLevelGraph.from_collections(name, layer, dependencies=[data]))


def _assemble_parts(
    spans: Sequence[_Window], shape: tuple[int, ...], dtype: np.dtype[Any], fill: Any,
    *pieces: npt.NDArray[Any],
) -> npt.NDArray[Any]:  # fmt: skip
    """:func:`_assemble` with the pieces last (the graph's tasks pass them one by one)."""
    return _assemble(pieces, spans, shape, dtype, fill)


def _part(key: Any, data: Any, chunk: Any, index: tuple[Any, ...]) -> Any:
    """The task of ``key`` that takes ``index`` of the chunk ``chunk`` of ``data``.

    When the chunk is read by Dask's own getter (``dask.array.from_array`` of a lazily
    indexed array: rioxarray, xarray's backends), possibly through slices, the part
    reads only its cells: the getter's index and the slices are composed into one read,
    as Dask's slice fusion does for an array sliced whole. A chunk that several parts
    share is then never read whole: a window of a sparse group takes a few hundred
    cells of a 2,048-cell chunk. Any other read (a cas_xr remote reader, which
    :mod:`cas_xr.zonal._reads` crops and batches, or a computed chunk) is read once and
    each part is a getitem task on the chunk's key.
    """
    from dask._task_spec import DataNode, Task, TaskRef
    from dask.array.chunk import getitem
    from dask.array.core import getter, getter_inline, getter_nofancy
    from dask.array.optimization import fuse_slice

    composed, below = index, chunk
    while True:
        task = _task_of(data, below)
        if not isinstance(task, Task) or task.kwargs or len(task.args) not in (2, 4):
            break
        inner = task.args[1].value if isinstance(task.args[1], DataNode) else task.args[1]
        if not isinstance(inner, tuple) or not all(isinstance(i, slice | int) for i in inner):
            break
        try:
            composed = fuse_slice(inner, composed)
        except NotImplementedError:
            break
        if task.func in (getter, getter_inline, getter_nofancy):
            return Task(key, task.func, task.args[0], DataNode(None, composed), *task.args[2:])
        if task.func not in (operator.getitem, getitem) or not isinstance(task.args[0], TaskRef):
            break
        below = task.args[0].key
    return Task(key, operator.getitem, TaskRef(chunk), index)


def _task_of(data: Any, key: Any) -> Any:
    """The task of ``key`` in ``data``'s graph, without building the rest of its layer.

    A ``Blockwise`` layer (``dask.array.from_array``'s) is culled to the key first:
    building the whole layer takes 0.9 s for 40,000 chunks, once per opened cube (the
    service keeps them); culled, 0.05 ms a key. Other layers but materialized ones
    give nothing (the part is then sliced from the chunk's own task).
    """
    from dask.blockwise import Blockwise
    from dask.highlevelgraph import MaterializedLayer

    layer = data.dask.layers.get(key[0]) if isinstance(key, tuple) else None
    if isinstance(layer, Blockwise):
        layer = layer.cull({key}, set())[0]
        return dict(layer).get(key)
    return layer.mapping.get(key) if isinstance(layer, MaterializedLayer) else None
