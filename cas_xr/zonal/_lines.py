"""Lines on the grid: the length of a line in each cell, by an exact grid walk (numba).

Each segment is clipped to a box and walked across the grid (Amanatides and Woo) with
the exact parameter of each grid-line crossing, computed from the segment's ends (never
accumulated); each piece between two crossings goes to the cell holding its midpoint, so
the pieces' lengths add up to the segment's. A piece lying on a cell edge goes to the
cell east of a vertical edge and south of a horizontal one, like a point on that edge.
The cost follows the cells a line crosses, not its bounding box.

In ``center`` mode a line is drawn instead as GDAL draws it without ``all_touched``
(:func:`_thin_cells`). Lines reach the kernel as *weighted cells* (see
:mod:`cas_xr.zonal._coverage`): this module is imported, and compiled, only when lines
are used.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cas_xr.zonal._coverage import CELLS, LINES
from cas_xr.zonal._jit import jit

__all__ = ["line_cells", "weighted_lines"]


@jit()
def _is_line(
    coords: npt.NDArray[np.float64], ring_offsets: npt.NDArray[np.int64], first: int, last: int
) -> bool:
    """Whether the rings ``first:last`` are a line's (open with a ``LINES`` header)."""
    header = ring_offsets[first]
    return bool(
        last > first and ring_offsets[first + 1] - header == 2 and coords[header, 0] == LINES
    )


@jit()
def _clip(
    ua: float, va: float, ub: float, vb: float, box: tuple[float, float, float, float]
) -> tuple[float, float]:
    """Parameters ``t0, t1`` of the part of segment a->b inside ``box`` (u0, u1, v0, v1)."""
    t0 = 0.0
    t1 = 1.0
    du = ub - ua
    dv = vb - va
    if du == 0.0:
        if ua < box[0] or ua > box[1]:
            return 1.0, 0.0
    else:
        ta = (box[0] - ua) / du
        tb = (box[1] - ua) / du
        t0 = max(t0, min(ta, tb))
        t1 = min(t1, max(ta, tb))
    if dv == 0.0:
        if va < box[2] or va > box[3]:
            return 1.0, 0.0
    else:
        ta = (box[2] - va) / dv
        tb = (box[3] - va) / dv
        t0 = max(t0, min(ta, tb))
        t1 = min(t1, max(ta, tb))
    return t0, t1


@jit()
def _pieces(
    ua: float,
    va: float,
    ub: float,
    vb: float,
    t0: float,
    t1: float,
    south_up: bool,
    west_up: bool,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    spans: npt.NDArray[np.float64],
) -> int:
    """Walk segment a->b from ``t0`` to ``t1`` across the grid; return the pieces' number.

    Piece ``k`` lies in cell ``rows[k], cols[k]`` (the cell of its midpoint) and spans
    ``spans[k]`` of the segment's parameter. Each crossing's parameter is computed from
    the segment's ends (never accumulated), so the spans add up to ``t1 - t0``. A piece
    on a horizontal cell edge goes to the row south of it, and one on a vertical edge to
    the column east of it, like a point on that edge (``south_up``: rows run north;
    ``west_up``: columns run west).
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
            um = ua + tm * du
            col = np.floor(um)
            if west_up and du == 0.0 and um == col:
                col -= 1.0
            rows[n] = int(row)
            cols[n] = int(col)
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


@jit()
def _snapped(a: float, b: float) -> tuple[float, float]:
    """Ends of an axis-parallel segment within 1e-9 of a grid line, moved onto it."""
    if a == b:
        r = np.round(a)
        if abs(a - r) <= 1e-9:
            return r, r
    return a, b


@jit()
def _line_pieces(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    box: tuple[float, float, float, float],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Rows, columns and lengths (CRS units) of the pieces of a line inside ``box``.

    ``first`` is the line's header ring; zero-length segments give no piece. A first
    pass bounds the number of pieces, so the arrays are allocated once.
    """
    header = ring_offsets[first]
    a = coords[header + 1, 0]
    e = coords[header + 1, 1]
    south_up, west_up = e > 0.0, a < 0.0  # rows run north, columns run west
    size = 0
    for twice in range(2):
        if twice:
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
                if not twice:
                    size += int(abs(ub - ua) * (t1 - t0)) + int(abs(vb - va) * (t1 - t0)) + 4
                    continue
                m = _pieces(
                    ua, va, ub, vb, t0, t1, south_up, west_up, rows[n:], cols[n:], lengths[n:]
                )
                for k in range(n, n + m):
                    lengths[k] *= length
                n += m
    return rows[:n], cols[:n], lengths[:n]


@jit()
def _thin_cells(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    first: int,
    last: int,
    box: tuple[float, float, float, float],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Rows and columns of a line's thin raster inside ``box`` (weight 1 each).

    GDAL's rasterisation of a line without ``all_touched`` (what rasterstats burns;
    checked against GDAL 3.10): per segment, Bresenham's line from the cell of its
    start to the cell of its end (the cells of ``floor(u), floor(v)``), 8-connected,
    one cell per step along the longer axis, stepping the shorter axis when the error
    term reaches 0. A south-up (west-running) grid is walked as its north-up (east-running)
    mirror, so that the cells do not depend on which way the axes run (and a vertex on a
    cell edge belongs to the cell a point there would).
    """
    flip = -1.0 if coords[ring_offsets[first] + 1, 1] > 0.0 else 1.0  # e > 0: south up
    flip_x = -1.0 if coords[ring_offsets[first] + 1, 0] < 0.0 else 1.0  # a < 0: x runs west
    size = 0
    for ring in range(first + 1, last):
        for i in range(ring_offsets[ring], ring_offsets[ring + 1] - 1):
            size += int(abs(np.floor(coords[i + 1, 0]) - np.floor(coords[i, 0])))
            size += int(abs(np.floor(coords[i + 1, 1]) - np.floor(coords[i, 1]))) + 3
    rows = np.empty(size, dtype=np.int64)
    cols = np.empty(size, dtype=np.int64)
    n = 0
    for ring in range(first + 1, last):
        for i in range(ring_offsets[ring], ring_offsets[ring + 1] - 1):
            x, y = int(np.floor(flip_x * coords[i, 0])), int(np.floor(flip * coords[i, 1]))
            x1 = int(np.floor(flip_x * coords[i + 1, 0]))
            y1 = int(np.floor(flip * coords[i + 1, 1]))
            dx, dy = abs(x1 - x), abs(y1 - y)
            sx = -1 if x > x1 else 1
            sy = -1 if y > y1 else 1
            major, minor = max(dx, dy), min(dx, dy)
            step = 2 * minor
            back = step - 2 * major
            error = step - major
            for _ in range(major + 1):
                row = y if flip > 0.0 else -y - 1
                col = x if flip_x > 0.0 else -x - 1
                if box[0] <= col < box[1] and box[2] <= row < box[3]:
                    rows[n] = row
                    cols[n] = col
                    n += 1
                if dx >= dy:
                    x += sx
                else:
                    y += sy
                if error >= 0:
                    if dx >= dy:
                        y += sy
                    else:
                        x += sx
                    error += back
                else:
                    error += step
    return rows[:n], cols[:n], np.ones(n)


@jit()
def line_cells(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    geom_ring_offsets: npt.NDArray[np.int64],
    box: tuple[float, float, float, float],
    thin: bool,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """Geometry, row, column and length of every piece of every line inside ``box``.

    ``box`` is ``(u0, u1, v0, v1)`` in cell units (infinite: the whole plane, so rows
    and columns may lie off the grid). With ``thin``, the cells of the line's thin
    raster instead, with length 1 (:func:`_thin_cells`). Geometries that are not lines
    give no piece; the pieces come in the order of the geometries. The caller sums and
    counts them.
    """
    geoms = []
    all_rows = []
    all_cols = []
    all_lengths = []
    for g in range(geom_ring_offsets.size - 1):
        first, last = geom_ring_offsets[g], geom_ring_offsets[g + 1]
        if not _is_line(coords, ring_offsets, first, last):
            continue
        if thin:
            rows, cols, lengths = _thin_cells(coords, ring_offsets, first, last, box)
        else:
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


def weighted_lines(
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    geom_ring_offsets: npt.NDArray[np.int64],
    shape: tuple[int, int],
    noise: float,
    thin: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Ring arrays (window cell units) with every line turned into its weighted cells.

    Parameters
    ----------
    coords, ring_offsets, geom_ring_offsets
        Ring arrays of :func:`~cas_xr.zonal._coverage.geometry_rings`.
    shape
        ``(rows, cols)`` of the window: only the line inside it is kept.
    noise
        A cell holding less than this many cell sides of line gets no weight.
    thin
        Weigh the cells of the line's thin raster instead (``center`` mode; see
        :func:`_thin_cells`).

    Returns
    -------
    tuple of numpy.ndarray
        The same geometries, each line as a header ``[(CELLS, least), (a, e)]``, the
        centres of the cells of its pieces and the pieces' lengths (CRS units).
    """
    box = (0.0, float(shape[1]), 0.0, float(shape[0]))
    g, rows, cols, lengths = line_cells(coords, ring_offsets, geom_ring_offsets, box, thin)
    starts = np.searchsorted(g, np.arange(geom_ring_offsets.size))
    out_coords: list[npt.NDArray[np.float64]] = []
    sizes: list[int] = []
    geom_rings = [0]
    for k in range(geom_ring_offsets.size - 1):
        first, last = geom_ring_offsets[k], geom_ring_offsets[k + 1]
        if _is_line(coords, ring_offsets, first, last):
            a, e = coords[ring_offsets[first] + 1]
            least = noise * min(abs(a), abs(e))
            piece = slice(starts[k], starts[k + 1])
            centres = np.column_stack([cols[piece] + 0.5, rows[piece] + 0.5])
            weights = np.column_stack([lengths[piece], np.zeros(len(centres))])
            parts = [np.array([[CELLS, least], [a, e]]), centres, weights]
        else:
            parts = [coords[ring_offsets[r] : ring_offsets[r + 1]] for r in range(first, last)]
        out_coords.extend(parts)
        sizes.extend(len(p) for p in parts)
        geom_rings.append(geom_rings[-1] + len(parts))
    return (
        np.ascontiguousarray(np.concatenate(out_coords) if out_coords else np.empty((0, 2))),
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        np.asarray(geom_rings, dtype=np.int64),
    )
