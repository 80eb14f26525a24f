"""Spatial partitions of geometries: compact windows that bound the memory of each task."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["hilbert_order", "partition"]


def hilbert_order(u: npt.ArrayLike, v: npt.ArrayLike, *, bits: int = 16) -> npt.NDArray[np.intp]:
    """Order of points along a Hilbert curve over their bounding box.

    Parameters
    ----------
    u, v
        Point coordinates (any units).
    bits
        Resolution of the curve per axis.

    Returns
    -------
    numpy.ndarray
        Indices that sort the points along the curve.
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if u.size < 2:
        return np.arange(u.size, dtype=np.intp)
    side = (1 << bits) - 1

    def scale(a: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        span = a.max() - a.min()
        return (
            ((a - a.min()) / span * side).astype(np.int64)
            if span > 0
            else np.zeros(a.size, np.int64)
        )

    x, y = scale(u), scale(v)
    d = np.zeros(u.size, dtype=np.int64)
    s = 1 << (bits - 1)
    while s > 0:
        rx = ((x & s) > 0).astype(np.int64)
        ry = ((y & s) > 0).astype(np.int64)
        d += s * s * ((3 * rx) ^ ry)
        # rotate the quadrant so the curve stays continuous
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), side - x, x)
        swap_y = np.where(flip & (rx == 1), side - y, y)
        x, y = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s >>= 1
    return np.argsort(d, kind="stable")


def partition(
    bounds: npt.NDArray[np.int64], *, max_cells: int, max_geometries: int = 20_000
) -> list[tuple[npt.NDArray[np.intp], tuple[int, int, int, int]]]:
    """Group geometries into windows of at most ``max_cells`` cells, in Hilbert order.

    Parameters
    ----------
    bounds
        ``(n, 4)`` integer windows ``r0, r1, c0, c1`` of each geometry on the grid.
    max_cells
        Cell budget of a group's window; a geometry larger than it forms its own group.
    max_geometries
        Geometries per group at most.

    Returns
    -------
    list
        ``(indices, (r0, r1, c0, c1))`` for each group.
    """
    order = hilbert_order((bounds[:, 2] + bounds[:, 3]) / 2, (bounds[:, 0] + bounds[:, 1]) / 2)
    groups: list[tuple[npt.NDArray[np.intp], tuple[int, int, int, int]]] = []
    members: list[int] = []
    window = (0, 0, 0, 0)
    for i in order:
        r0, r1, c0, c1 = (int(b) for b in bounds[i])
        if members:
            grown = (min(window[0], r0), max(window[1], r1), min(window[2], c0), max(window[3], c1))
            cells = (grown[1] - grown[0]) * (grown[3] - grown[2])
            if cells <= max_cells and len(members) < max_geometries:
                members.append(int(i))
                window = grown
                continue
            groups.append((np.asarray(members, dtype=np.intp), window))
        members, window = [int(i)], (r0, r1, c0, c1)
    if members:
        groups.append((np.asarray(members, dtype=np.intp), window))
    return groups
