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
) -> list[_Window] | None:
    """The chunk boxes inside ``window`` that some geometry touches; None when all are.

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
    list or None
        ``(r0, r1, c0, c1)`` of each touched chunk (clipped to the window), or None when
        every chunk in the window is touched, so the window can be read whole.
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
        return None
    polygons = shapely.box(
        *np.array([(c - _GROW, a - _GROW, d + _GROW, b + _GROW) for a, b, c, d in boxes]).T
    )
    tree = shapely.STRtree(shapely.transform(shapes, to_cells))
    hit = np.unique(tree.query(polygons, predicate="intersects")[0])
    if hit.size == len(boxes):
        return None
    return [boxes[i] for i in hit]


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
        The window sliced whole when it is in memory or every chunk in it is touched;
        else a task assembling the touched chunks.
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
    touched = touched_edges(shapes, to_cells, (data.chunks[-2], data.chunks[-1]), window)
    if touched is None:
        return whole
    pieces = [data[..., a:b, c:d] for a, b, c, d in touched]
    spans = [(a - r0, b - r0, c - c0, d - c0) for a, b, c, d in touched]
    shape = (*data.shape[:-2], r1 - r0, c1 - c0)
    return dask.delayed(_assemble, pure=True)(
        pieces, spans, shape, data.dtype, _fill(data.dtype, encoding)
    )
