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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.zonal._boxes import WASTE
from cas_xr.zonal._encoding import Encoding

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["touched_edges", "window_of"]

#: Cells by which a chunk's box is grown before testing it against the geometries, so a
#: cell that a geometry's edge crosses by a rounding error is never left out.
_GROW = 1e-6

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
    Windows close together give one part (see :func:`cas_xr.zonal._boxes.merged`).
    """
    from cas_xr.zonal._boxes import merged

    out: list[_Window] = []
    for a, b, c, d in boxes:
        near = bounds[
            (bounds[:, 0] < b) & (bounds[:, 1] > a) & (bounds[:, 2] < d) & (bounds[:, 3] > c)
        ]
        if not near.size:
            out.append((a, b, c, d))
            continue
        parts = [
            (max(int(p), a), min(int(q), b), max(int(u), c), min(int(v), d)) for p, q, u, v in near
        ]
        out.extend(box for box, _ in merged(parts))
    return out


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
        Their ``(n, 4)`` cell windows ``r0, r1, c0, c1``: when their areas add up to the
        window's, the geometries are dense and the window is read whole, without
        testing each chunk.

    Returns
    -------
    dask.array.Array or dask.delayed.Delayed or numpy.ndarray
        The window sliced whole when it is in memory, or every chunk in it is touched
        and the geometries' windows fill most of it; else a task assembling the parts of
        the touched chunks under the geometries' windows.
    """
    import dask

    r0, r1, c0, c1 = window
    data = var.data
    whole = data[..., r0:r1, c0:c1]
    if not dask.is_dask_collection(data):
        return whole
    if bounds is not None:  # boxes that fill the window: every chunk is likely touched
        boxes = (bounds[:, 1] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 2])
        if boxes.sum() >= (r1 - r0) * (c1 - c0):
            return whole
    touched, every = touched_edges(shapes, to_cells, (data.chunks[-2], data.chunks[-1]), window)
    if bounds is not None:
        touched = _clipped(touched, bounds)
    needed = sum((b - a) * (d - c) for a, b, c, d in touched)
    if every and (1 + WASTE) * needed >= (r1 - r0) * (c1 - c0):
        return whole
    pieces = [data[..., a:b, c:d] for a, b, c, d in touched]
    spans = [(a - r0, b - r0, c - c0, d - c0) for a, b, c, d in touched]
    shape = (*data.shape[:-2], r1 - r0, c1 - c0)
    return dask.delayed(_assemble, pure=True)(
        pieces, spans, shape, data.dtype, _fill(data.dtype, encoding)
    )
