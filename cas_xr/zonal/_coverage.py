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
``(kind, 0)`` and the cell size ``(a, e)`` of the grid (a polygon's first ring has at
least four vertices, so it never looks like one). A line's weight in a cell is the
length of the line inside it, in CRS units (as in exactextract): each segment is clipped
to the window and walked across the grid (Amanatides and Woo) with the exact parameter of
each grid-line crossing, and each piece between two crossings is given to the cell that
holds its midpoint. A point set's weight in a cell is the number of its points there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from cas_xr.zonal._codes import MODE_CENTER, MODE_EXACT

__all__ = [
    "LINES",
    "POINTS",
    "POLYGONS",
    "cell_weights",
    "centre_coverage",
    "exact_coverage",
    "geometry_rings",
    "geometry_window",
    "line_cells",
]

#: Kinds of geometry in the ring arrays (the first vertex of a header ring).
POLYGONS, LINES, POINTS = 0, 1, 2
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
        (plus the end). A line's parts and a point set's points follow a header ring
        ``[(kind, 0), cell_size]`` (see the module's docstring).
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
        elif kind == "MultiPoint":
            add(np.array([[POINTS, 0.0], cell_size]))
            xy = shapely.get_coordinates(geom)
            if len(xy):
                add(to_cells(xy))
        geom_ring_offsets.append(len(ring_offsets) - 1)
    coords = np.concatenate(coords_parts) if coords_parts else np.empty((0, 2))
    return (
        np.ascontiguousarray(coords, dtype=np.float64),
        np.asarray(ring_offsets, dtype=np.int64),
        np.asarray(geom_ring_offsets, dtype=np.int64),
    )


@njit(cache=True, inline="always")
def _area_left(u: float) -> float:
    """Integral of clamp(t, 0, 1) dt from -inf to u."""
    if u <= 0.0:
        return 0.0
    if u < 1.0:
        return 0.5 * u * u
    return u - 0.5


@njit(cache=True)
def _right_area(c: int, xa: float, xb: float, dy: float) -> float:
    """Area, within a row piece of height dy, of column c's part right of the edge xa->xb."""
    span = xb - xa
    if abs(span) < 1e-12:
        return dy * min(max(c + 1.0 - xa, 0.0), 1.0)
    return dy * (_area_left(c + 1.0 - xa) - _area_left(c + 1.0 - xb)) / span


@njit(cache=True)
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


@njit(cache=True)
def _kind(
    coords: npt.NDArray[np.float64], ring_offsets: npt.NDArray[np.int64], first: int, last: int
) -> int:
    """The kind of the geometry with rings ``first:last``: its header's, else POLYGONS."""
    if last > first and ring_offsets[first + 1] - ring_offsets[first] == 2:
        return int(coords[ring_offsets[first], 0])
    return POLYGONS


@njit(cache=True)
def geometry_window(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    nrows: int,
    ncols: int,
) -> tuple[int, int, int, int]:
    """Rows ``r0:r1`` and columns ``c0:c1`` of the grid under the rings ``first:last``.

    For lines and point sets the window also holds the cells that a piece lying on a
    cell edge belongs to (east of a vertical edge, south of a horizontal one).
    """
    kind = _kind(coords, ring_offsets, first, last)
    start = ring_offsets[first] if kind == POLYGONS else ring_offsets[first + 1]
    stop = ring_offsets[last]
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
        top, bottom = np.floor(vmin) - 1.0, np.floor(vmax) + 1.0
        left, right = np.floor(umin), np.floor(umax) + 1.0
    r0 = int(min(max(top, 0.0), nrows))
    r1 = int(min(max(bottom, r0), nrows))
    c0 = int(min(max(left, 0.0), ncols))
    c1 = int(min(max(right, c0), ncols))
    return r0, r1, c0, c1


@njit(cache=True)
def _clip(
    ua: float, va: float, ub: float, vb: float, box: tuple[float, float, float, float]
) -> tuple[float, float]:
    """Parameters ``t0, t1`` of the part of segment a->b inside ``box`` (u0, u1, v0, v1)."""
    t0 = 0.0
    t1 = 1.0
    for p, d, lo, hi in ((ua, ub - ua, box[0], box[1]), (va, vb - va, box[2], box[3])):
        if d == 0.0:
            if p < lo or p > hi:
                return 1.0, 0.0
        else:
            ta = (lo - p) / d
            tb = (hi - p) / d
            t0 = max(t0, min(ta, tb))
            t1 = min(t1, max(ta, tb))
    return t0, t1


@njit(cache=True)
def _pieces(
    ua: float,
    va: float,
    ub: float,
    vb: float,
    t0: float,
    t1: float,
    south_up: bool,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    spans: npt.NDArray[np.float64],
) -> int:
    """Walk segment a->b from ``t0`` to ``t1`` across the grid; return the pieces' number.

    Piece ``k`` lies in cell ``rows[k], cols[k]`` (the cell of its midpoint) and spans
    ``spans[k]`` of the segment's parameter. Each crossing's parameter is computed from
    the segment's ends (never accumulated), so the spans add up to ``t1 - t0``. A piece
    on a horizontal cell edge goes to the row south of it, like a point on that edge.
    ``rows``/``cols``/``spans`` hold at least ``floor(|du|) + floor(|dv|) + 4`` entries
    (``du``, ``dv`` the clipped segment's extent in cells).
    """
    du = ub - ua
    dv = vb - va
    inf = np.inf
    ku = 0.0
    kv = 0.0
    su = 0.0
    sv = 0.0
    tu = inf
    tv = inf
    if du != 0.0:
        su = 1.0 if du > 0.0 else -1.0
        ku = np.floor(ua + t0 * du) + 1.0 if du > 0.0 else np.ceil(ua + t0 * du) - 1.0
        tu = (ku - ua) / du
    if dv != 0.0:
        sv = 1.0 if dv > 0.0 else -1.0
        kv = np.floor(va + t0 * dv) + 1.0 if dv > 0.0 else np.ceil(va + t0 * dv) - 1.0
        tv = (kv - va) / dv
    n = 0
    t = t0
    while t < t1:
        tn = min(tu, tv, t1)
        if tn > t:
            tm = 0.5 * (t + tn)
            vm = va + tm * dv
            row = np.floor(vm)
            if south_up and dv == 0.0 and vm == row:
                row -= 1.0
            rows[n] = int(row)
            cols[n] = int(np.floor(ua + tm * du))
            spans[n] = tn - t
            n += 1
            t = tn
        if tu <= t:
            ku += su
            tu = (ku - ua) / du
        if tv <= t:
            kv += sv
            tv = (kv - va) / dv
    return n


@njit(cache=True)
def _snapped(a: float, b: float) -> tuple[float, float]:
    """Ends of an axis-parallel segment within 1e-9 of a grid line, moved onto it."""
    if a == b:
        r = np.round(a)
        if abs(a - r) <= 1e-9:
            return r, r
    return a, b


@njit(cache=True)
def _line_pieces(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    box: tuple[float, float, float, float],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Rows, columns and lengths (CRS units) of the pieces of a line inside ``box``.

    ``first`` is the line's header ring; zero-length segments give no piece.
    """
    header = ring_offsets[first]
    a = abs(coords[header + 1, 0])
    e = coords[header + 1, 1]
    size = 64
    rows = np.empty(size, dtype=np.int64)
    cols = np.empty(size, dtype=np.int64)
    lengths = np.empty(size)
    n = 0
    for ring in range(first + 1, last):
        for i in range(ring_offsets[ring], ring_offsets[ring + 1] - 1):
            ua, ub = _snapped(coords[i, 0], coords[i + 1, 0])
            va, vb = _snapped(coords[i, 1], coords[i + 1, 1])
            length = np.hypot((ub - ua) * a, (vb - va) * e)
            if length == 0.0:
                continue
            t0, t1 = _clip(ua, va, ub, vb, box)
            if t1 <= t0:
                continue
            need = n + int(abs(ub - ua) * (t1 - t0)) + int(abs(vb - va) * (t1 - t0)) + 4
            if need > size:
                size = max(2 * size, need)
                rows = np.concatenate((rows[:n], np.empty(size - n, dtype=np.int64)))
                cols = np.concatenate((cols[:n], np.empty(size - n, dtype=np.int64)))
                lengths = np.concatenate((lengths[:n], np.empty(size - n)))
            m = _pieces(ua, va, ub, vb, t0, t1, e > 0.0, rows[n:], cols[n:], lengths[n:])
            for k in range(n, n + m):
                lengths[k] *= length
            n += m
    return rows[:n], cols[:n], lengths[:n]


@njit(cache=True)
def line_coverage(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    exact: bool,
    noise: float,
) -> None:
    """Fill ``buf`` with the length of the line (rings ``first:last``) inside each cell.

    Lengths are in CRS units; a cell holding less than ``noise`` cells' width of line
    gets 0. When not ``exact`` every cell the line runs through gets 1.
    """
    buf[:, :] = 0.0
    nrows, ncols = buf.shape
    box = (float(c0), float(c0 + ncols), float(r0), float(r0 + nrows))
    rows, cols, lengths = _line_pieces(coords, ring_offsets, first, last, box)
    for k in range(rows.size):
        i = rows[k] - r0
        j = cols[k] - c0
        if 0 <= i < nrows and 0 <= j < ncols:
            buf[i, j] += lengths[k]
    header = ring_offsets[first]
    least = noise * min(abs(coords[header + 1, 0]), abs(coords[header + 1, 1]))
    for i in range(nrows):
        for j in range(ncols):
            if buf[i, j] < least:
                buf[i, j] = 0.0
            elif not exact:
                buf[i, j] = 1.0


@njit(cache=True)
def line_cells(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    geom_ring_offsets: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """Geometry, row, column and length of every piece of every line, on the whole plane.

    Geometries that are not lines give no piece. The rows and columns may lie off the
    grid (a line leaving the raster); the caller sums and counts them as it needs.
    """
    box = (-np.inf, np.inf, -np.inf, np.inf)
    geoms = []
    all_rows = []
    all_cols = []
    all_lengths = []
    for g in range(geom_ring_offsets.size - 1):
        first, last = geom_ring_offsets[g], geom_ring_offsets[g + 1]
        if _kind(coords, ring_offsets, first, last) != LINES:
            continue
        rows, cols, lengths = _line_pieces(coords, ring_offsets, first, last, box)
        geoms.append(np.full(rows.size, g, dtype=np.int64))
        all_rows.append(rows)
        all_cols.append(cols)
        all_lengths.append(lengths)
    n = 0
    for part in geoms:
        n += part.size
    out_g = np.empty(n, dtype=np.int64)
    out_r = np.empty(n, dtype=np.int64)
    out_c = np.empty(n, dtype=np.int64)
    out_l = np.empty(n)
    k = 0
    for p in range(len(geoms)):
        m = geoms[p].size
        out_g[k : k + m] = geoms[p]
        out_r[k : k + m] = all_rows[p]
        out_c[k : k + m] = all_cols[p]
        out_l[k : k + m] = all_lengths[p]
        k += m
    return out_g, out_r, out_c, out_l


@njit(cache=True)
def point_coverage(
    buf: npt.NDArray[np.float64],
    r0: int,
    c0: int,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    exact: bool,
) -> None:
    """Fill ``buf`` with the number of points in each cell (1 per cell when not ``exact``).

    The points (rings after the header ``first``) are at their cells' centres already.
    """
    buf[:, :] = 0.0
    nrows, ncols = buf.shape
    for ring in range(first + 1, last):
        for k in range(ring_offsets[ring], ring_offsets[ring + 1]):
            i = int(np.floor(coords[k, 1])) - r0
            j = int(np.floor(coords[k, 0])) - c0
            if 0 <= i < nrows and 0 <= j < ncols:
                buf[i, j] = buf[i, j] + 1.0 if exact else 1.0


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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
    (``MODE_CENTER``); lines: length inside; point sets: number of points. Lines and
    point sets get 1 per cell they touch in the other modes.
    """
    kind = _kind(coords, ring_offsets, first, last)
    if kind == LINES:
        line_coverage(buf, r0, c0, coords, ring_offsets, first, last, mode == MODE_EXACT, noise)
    elif kind == POINTS:
        point_coverage(buf, r0, c0, coords, ring_offsets, first, last, mode == MODE_EXACT)
    elif mode == MODE_CENTER:
        centre_coverage(buf, r0, c0, coords, ring_offsets, first, last)
    else:
        exact_coverage(buf, r0, c0, coords, ring_offsets, first, last, noise)
