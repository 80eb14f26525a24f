"""Exact cell weights of polygons, lines and point sets, compiled with numba.

For each polygon the fraction of every grid cell it covers is computed analytically
(exactextract semantics) by accumulating, edge by edge and row by row, the signed area
between each edge and the right edge of the grid into a per-row difference buffer; a
prefix sum along each row then gives the covered area of every cell. The cost is
proportional to the polygon's perimeter plus its bounding box, in cells.

Coordinates are in *cell units* of the window: ``u`` = column (0 at the window's left
edge, growing east), ``v`` = row (0 at the window's first row). Rings must be oriented
consistently (exteriors one way, holes the other), which :func:`geometry_rings` ensures.

Lines and point sets travel in the same ring arrays, so the kernel takes every kind of
geometry through one signature: their rings open with a *header ring* of two vertices,
``(kind, least)`` and the cell size ``(a, e)`` of the grid (a polygon's first ring has
at least four vertices, so it never looks like one). The kernel knows polygons and
*weighted cells*: a ring of cell centres and a ring of their weights ``(w, 0)``; a
cell's weight is the sum of its entries, dropped below ``least``. A point set is its
points' cells with weight 1 each; a line is given in its own coordinates (kind
``LINES``) and turned into weighted cells, its length in each cell, by
:func:`cas_xr.zonal._lines.weighted_lines` before the kernel runs, so that code is
compiled only when lines are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cas_xr.zonal._codes import MODE_CENTER, MODE_EXACT
from cas_xr.zonal._jit import jit

__all__ = [
    "CELLS",
    "LINES",
    "POLYGONS",
    "cell_weights",
    "cells_coverage",
    "centre_coverage",
    "exact_coverage",
    "geometry_rings",
    "geometry_window",
    "has_lines",
]

#: Kinds of geometry in the ring arrays (the first vertex of a header ring).
POLYGONS, CELLS, LINES = 0, 1, 2
_LINEAR = frozenset({"LineString", "MultiLineString"})
_POLYGONAL = frozenset({"Polygon", "MultiPolygon"})


def geometry_rings(
    geometries: Any, to_cells: Any, cell_size: tuple[float, float] = (1.0, -1.0)
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Flatten polygons, lines and point sets into ring arrays in cell units.

    Parameters
    ----------
    geometries
        A sequence of shapely Polygons/MultiPolygons, LineStrings/MultiLineStrings and
        MultiPoints (other types give no rings).
    to_cells
        Function mapping an ``(n, 2)`` array of x/y to ``(n, 2)`` column/row units.
    cell_size
        The grid's ``(a, e)`` (cell width and signed height, in CRS units), stored in the
        header ring of lines (their lengths are in CRS units) and point sets.

    Returns
    -------
    tuple of numpy.ndarray
        ``(coords, ring_offsets, geom_ring_offsets)``: all ring vertices, the start of
        each ring in ``coords`` (plus the end), and the first ring of each geometry
        (plus the end). A line's parts, and a point set's cells and weights, follow a
        header ring ``[(kind, least), cell_size]`` (see the module's docstring).
    """
    import shapely

    oriented = shapely.orient_polygons(np.asarray(geometries, dtype=object))
    coords_parts: list[npt.NDArray[np.float64]] = []
    ring_offsets = [0]
    geom_ring_offsets = [0]

    def add(xy: npt.NDArray[np.float64]) -> None:
        coords_parts.append(xy)
        ring_offsets.append(ring_offsets[-1] + len(xy))

    for geom in oriented:
        kind = geom.geom_type if geom is not None else ""
        if kind in _POLYGONAL:
            parts = geom.geoms if kind == "MultiPolygon" else [geom]
            for poly in parts:
                for ring in (poly.exterior, *poly.interiors):
                    add(to_cells(np.asarray(ring.coords, dtype=np.float64)[:, :2]))
        elif kind in _LINEAR:
            add(np.array([[LINES, 0.0], cell_size]))
            for line in geom.geoms if kind == "MultiLineString" else [geom]:
                xy = np.asarray(line.coords, dtype=np.float64)[:, :2]
                if len(xy):
                    add(to_cells(xy))
        elif kind == "MultiPoint":  # already at its cells' centres: weight 1 per point
            add(np.array([[CELLS, 0.5], cell_size]))
            xy = shapely.get_coordinates(geom)
            add(to_cells(xy))
            add(np.column_stack([np.ones(len(xy)), np.zeros(len(xy))]))
        geom_ring_offsets.append(len(ring_offsets) - 1)
    coords = np.concatenate(coords_parts) if coords_parts else np.empty((0, 2))
    return (
        np.ascontiguousarray(coords, dtype=np.float64),
        np.asarray(ring_offsets, dtype=np.int64),
        np.asarray(geom_ring_offsets, dtype=np.int64),
    )


def has_lines(
    rings: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> bool:
    """Whether ring arrays hold a line still in its own coordinates (kind ``LINES``)."""
    coords, ring_offsets, geom_ring_offsets = rings
    first = geom_ring_offsets[:-1][np.diff(geom_ring_offsets) > 0]
    header = ring_offsets[first]
    is_header = ring_offsets[first + 1] - header == 2
    return bool(np.any(coords[header[is_header], 0] == LINES))


@jit(inline="always")
def _area_left(u: float) -> float:
    """Integral of clamp(t, 0, 1) dt from -inf to u."""
    if u <= 0.0:
        return 0.0
    if u < 1.0:
        return 0.5 * u * u
    return u - 0.5


@jit()
def _right_area(c: int, xa: float, xb: float, dy: float) -> float:
    """Area, within a row piece of height dy, of column c's part right of the edge xa->xb."""
    span = xb - xa
    if abs(span) < 1e-12:
        return dy * min(max(c + 1.0 - xa, 0.0), 1.0)
    return dy * (_area_left(c + 1.0 - xa) - _area_left(c + 1.0 - xb)) / span


@jit()
def _accumulate_edge(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    ua: float,
    va: float,
    ub: float,
    vb: float,
) -> None:
    """Add one edge's signed contributions to the difference buffer (rows r0.., cols c0..)."""
    if va == vb:
        return
    sign = 1.0
    if va > vb:  # walk downwards in v
        ua, va, ub, vb = ub, vb, ua, va
        sign = -1.0
    nrows, width = buf.shape
    first = max(int(np.floor(va)), r0)
    last = min(int(np.ceil(vb)), r0 + nrows)
    dudv = (ub - ua) / (vb - va)
    for row in range(first, last):
        top = max(va, float(row))
        bottom = min(vb, row + 1.0)
        dy = bottom - top
        if dy <= 0.0:
            continue
        xa = ua + (top - va) * dudv
        xb = ua + (bottom - va) * dudv
        lo = int(np.floor(min(xa, xb)))
        hi = int(np.floor(max(xa, xb)))
        line = row - r0
        previous = 0.0
        for c in range(lo, hi + 2):
            h = dy if c > hi else _right_area(c, xa, xb, dy)
            j = c - c0
            if j >= width:
                break
            buf[line, max(j, 0)] += sign * (h - previous)
            previous = h


@jit(inline="always")
def _kind(
    coords: npt.NDArray[np.float64], ring_offsets: npt.NDArray[np.int64], first: int, last: int
) -> int:
    """The kind of the geometry with rings ``first:last``: its header's, else POLYGONS."""
    if last > first and ring_offsets[first + 1] - ring_offsets[first] == 2:
        return int(coords[ring_offsets[first], 0])
    return POLYGONS


@jit()
def geometry_window(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    nrows: int,
    ncols: int,
) -> tuple[int, int, int, int]:
    """Rows ``r0:r1`` and columns ``c0:c1`` of the grid under the rings ``first:last``.

    For weighted cells, the cells of their centres.
    """
    kind = _kind(coords, ring_offsets, first, last)
    if kind == POLYGONS:
        start, stop = ring_offsets[first], ring_offsets[last]
    else:
        start, stop = ring_offsets[first + 1], ring_offsets[first + 2]
    if start >= stop:
        return 0, 0, 0, 0
    umin = np.inf
    umax = -np.inf
    vmin = np.inf
    vmax = -np.inf
    for i in range(start, stop):
        umin = min(umin, coords[i, 0])
        umax = max(umax, coords[i, 0])
        vmin = min(vmin, coords[i, 1])
        vmax = max(vmax, coords[i, 1])
    if kind == POLYGONS:
        top, bottom = np.floor(vmin), np.ceil(vmax)
        left, right = np.floor(umin), np.ceil(umax)
    else:
        top, bottom = np.floor(vmin), np.floor(vmax) + 1.0
        left, right = np.floor(umin), np.floor(umax) + 1.0
    r0 = int(min(max(top, 0.0), nrows))
    r1 = int(min(max(bottom, r0), nrows))
    c0 = int(min(max(left, 0.0), ncols))
    c1 = int(min(max(right, c0), ncols))
    return r0, r1, c0, c1


@jit()
def cells_coverage(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    exact: bool,
) -> None:
    """Fill ``buf`` with the summed weight of each cell of weighted cells (header ``first``).

    A cell whose weight is below the header's ``least`` gets 0; when not ``exact``,
    every other cell gets 1.
    """
    buf[:, :] = 0.0
    nrows, ncols = buf.shape
    least = coords[ring_offsets[first], 1]
    start, weights = ring_offsets[first + 1], ring_offsets[first + 2]
    for k in range(weights - start):
        i = int(np.floor(coords[start + k, 1])) - r0
        j = int(np.floor(coords[start + k, 0])) - c0
        if 0 <= i < nrows and 0 <= j < ncols:
            buf[i, j] += coords[weights + k, 0]
    for i in range(nrows):
        for j in range(ncols):
            if buf[i, j] < least:
                buf[i, j] = 0.0
            elif not exact:
                buf[i, j] = 1.0


@jit()
def exact_coverage(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first_ring: int,
    last_ring: int,
    noise: float,
) -> None:
    """Fill ``buf`` (rows ``r0..``, columns ``c0..``) with the covered fraction of each cell.

    Cells covered less than ``noise`` (:data:`~cas_xr.zonal.COVERAGE_NOISE`, passed in so
    that numba's on-disk cache never keeps a stale constant) are set to 0.
    """
    buf[:, :] = 0.0
    for ring in range(first_ring, last_ring):
        for i in range(ring_offsets[ring], ring_offsets[ring + 1] - 1):
            _accumulate_edge(
                buf, r0, c0, coords[i, 0], coords[i, 1], coords[i + 1, 0], coords[i + 1, 1]
            )
    for line in range(buf.shape[0]):
        acc = 0.0
        for j in range(buf.shape[1]):
            acc += buf[line, j]
            cover = min(abs(acc), 1.0)
            buf[line, j] = cover if cover >= noise else 0.0


@jit()
def centre_coverage(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first_ring: int,
    last_ring: int,
) -> None:
    """Fill ``buf`` with 1 for cells whose centre is inside the polygon (non-zero winding).

    An edge counts for a centre row when it spans ``va <= v < vb`` (half-open), and a
    crossing counts for the cells whose centre lies strictly east of it.
    """
    buf[:, :] = 0.0
    nrows, width = buf.shape
    for line in range(nrows):
        vc = r0 + line + 0.5
        for ring in range(first_ring, last_ring):
            for i in range(ring_offsets[ring], ring_offsets[ring + 1] - 1):
                ua, va = coords[i, 0], coords[i, 1]
                ub, vb = coords[i + 1, 0], coords[i + 1, 1]
                if va == vb:
                    continue
                winding = 1.0 if vb > va else -1.0
                lo, hi = min(va, vb), max(va, vb)
                if not (lo <= vc < hi):
                    continue
                u = ua + (vc - va) * (ub - ua) / (vb - va)
                # cells with centre c0 + j + 0.5 > u get this crossing's winding
                j = int(np.floor(u - c0 - 0.5)) + 1
                if j < width:
                    buf[line, max(j, 0)] += winding
        acc = 0.0
        for j in range(width):
            acc += buf[line, j]
            buf[line, j] = 1.0 if abs(acc) > 0.5 else 0.0


@jit(inline="always")
def cell_weights(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    mode: int,
    noise: float,
) -> None:
    """Fill ``buf`` with the weight of each cell for the geometry with rings ``first:last``.

    Polygons: covered fraction (``MODE_EXACT``, ``MODE_ALL_TOUCHED``) or centre inside
    (``MODE_CENTER``); weighted cells (lines, point sets): their weight in ``MODE_EXACT``,
    else 1 per cell. Lines not yet turned into weighted cells get no weight.
    """
    kind = _kind(coords, ring_offsets, first, last)
    if kind == CELLS:
        cells_coverage(buf, r0, c0, coords, ring_offsets, first, mode == MODE_EXACT)
    elif kind == POLYGONS and mode == MODE_CENTER:
        centre_coverage(buf, r0, c0, coords, ring_offsets, first, last)
    elif kind == POLYGONS:
        exact_coverage(buf, r0, c0, coords, ring_offsets, first, last, noise)
    else:
        buf[:, :] = 0.0
