"""The compiled code of the fused zonal kernel (numba; loaded on first use by ``_kernel``).

For each geometry the weights of the cells under it are computed once (exact coverage,
centre-in-polygon or all-touched) and reused for every leading index (time step, band,
variable) of the window; statistics are accumulated in float64.

Compilation is the cost of a first run, so the code is written for it: every helper has
one explicit signature (no specialisation per call site or literal argument), the kernel
is compiled once per dtype family (:func:`kernel_for`), all with ``cache=True``; loops
stand in for numpy calls whose numba implementations take seconds to compile (array
broadcasting, ``np.where``, sorting, ``np.searchsorted``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit, types

from cas_xr.zonal._codes import (
    COUNT,
    MAJORITY,
    MAX,
    MEAN,
    MIN,
    MINORITY,
    MODE_ALL_TOUCHED,
    QUANTILE,
    STD,
    SUM,
    UNIQUE,
)
from cas_xr.zonal._coverage import cell_weights, geometry_window

__all__ = ["FAMILIES", "kernel_for"]

#: The dtypes the kernel is compiled for: values are cast to one of them (exactly) first.
FAMILIES = ("float32", "float64", "int64", "uint64")

_F8 = types.float64[::1]
_I8 = types.int64[::1]


@njit((_F8, types.float64, types.boolean), cache=True)
def _search(a: npt.NDArray[np.float64], v: float, right: bool) -> int:
    """``np.searchsorted(a, v, side="right" if right else "left")`` of a sorted array."""
    lo = 0
    hi = a.size
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < v or (right and a[mid] == v):
            lo = mid + 1
        else:
            hi = mid
    return lo


_RUN = 16  # _stable_order: runs this long are insertion-sorted, then merged


@njit((_F8, types.int64), cache=True)
def _stable_order(x: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.int64]:
    """The indices that sort ``x[:n]``, equal values in input order (a merge sort).

    The same order as ``np.argsort(x[:n], kind="stable")``, whose numba implementation
    takes longer to compile than this whole module: runs of ``_RUN`` values are
    insertion-sorted, then merged pairwise (runs already in order are left as they are).
    """
    keys = x[:n].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[i] = i
    for lo in range(0, n, _RUN):
        for i in range(lo + 1, min(lo + _RUN, n)):
            key = keys[i]
            index = order[i]
            j = i - 1
            while j >= lo and keys[j] > key:  # strict: equal keys keep their order
                keys[j + 1] = keys[j]
                order[j + 1] = order[j]
                j -= 1
            keys[j + 1] = key
            order[j + 1] = index
    left_keys = np.empty(n)  # the left run of a merge, copied out of the way
    left_order = np.empty(n, dtype=np.int64)
    width = _RUN
    while width < n:
        for lo in range(0, n - width, 2 * width):
            mid = lo + width
            hi = min(lo + 2 * width, n)
            if keys[mid - 1] <= keys[mid]:
                continue  # the two runs are already in order
            size = mid - lo
            for t in range(size):
                left_keys[t] = keys[lo + t]
                left_order[t] = order[lo + t]
            i = 0
            j = mid
            k = lo
            while i < size and j < hi:
                if keys[j] < left_keys[i]:  # strict: on a tie the left (earlier) one first
                    keys[k] = keys[j]
                    order[k] = order[j]
                    j += 1
                else:
                    keys[k] = left_keys[i]
                    order[k] = left_order[i]
                    i += 1
                k += 1
            while i < size:  # what is left of the right run is in place already
                keys[k] = left_keys[i]
                order[k] = left_order[i]
                i += 1
                k += 1
        width *= 2
    return order


@njit((_F8, _F8, types.int64), cache=True)
def _pooled(
    x: npt.NDArray[np.float64], a: npt.NDArray[np.float64], n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distinct values of x[:n] (sorted) and the summed weights a of each."""
    order = _stable_order(x, n)
    values = np.empty(n)
    weights = np.empty(n)
    m = -1
    for i in range(n):
        v = x[order[i]]
        if m < 0 or v != values[m]:
            m += 1
            values[m] = v
            weights[m] = 0.0
        weights[m] += a[order[i]]
    return values[: m + 1], weights[: m + 1]


@njit((_F8, _F8, types.float64), cache=True)
def _quantile(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], q: float) -> float:
    """Weighted quantile (exactextract's definition) of pooled, sorted values."""
    n = values.size
    if n == 1:
        return values[0]
    s = np.empty(n)
    cum = 0.0
    for k in range(n):
        s[k] = k * weights[k] + (n - 1) * cum
        cum += weights[k]
    h = q * s[n - 1]
    upper = _search(s, h, True)
    if upper == 0:
        return values[0]
    if upper >= n:
        return values[n - 1]
    lower = upper - 1
    return values[lower] + (h - s[lower]) / (s[upper] - s[lower]) * (values[upper] - values[lower])


@njit((_F8, _F8, _F8, types.int64, _I8, _F8, _F8, types.boolean, _F8, _F8), cache=True)
def _summarise(
    x: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    n: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    need_pooled: bool,
    out: npt.NDArray[np.float64],
    dist: npt.NDArray[np.float64],
) -> None:
    """Every requested statistic of n valid cells (x values, w coverage, a stat weights)."""
    count = 0.0
    total = 0.0
    asum = 0.0
    axsum = 0.0
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        count += w[i]
        total += x[i] * w[i]
        asum += a[i]
        axsum += x[i] * a[i]
        lo = min(lo, x[i])
        hi = max(hi, x[i])
    mean = axsum / asum
    spread = 0.0
    for i in range(n):
        spread += a[i] * (x[i] - mean) ** 2
    if need_pooled:
        values, weights = _pooled(x, a, n)
    else:
        values, weights = x[:0], a[:0]
    for s in range(codes.size):
        code = codes[s]
        if code == COUNT:
            out[s] = count
        elif code == SUM:
            out[s] = total
        elif code == MEAN:
            out[s] = mean
        elif code == MIN:
            out[s] = lo
        elif code == MAX:
            out[s] = hi
        elif code == STD:
            out[s] = np.sqrt(spread / asum)
        elif code == QUANTILE:
            out[s] = _quantile(values, weights, qs[s])
        elif code == UNIQUE:
            out[s] = values.size
        elif code in (MAJORITY, MINORITY):
            best = 0
            for k in range(1, values.size):  # strict comparison: ties keep the smaller value
                if (code == MAJORITY and weights[k] > weights[best]) or (
                    code == MINORITY and weights[k] < weights[best]
                ):
                    best = k
            out[s] = values[best]
    if classes.size:
        for k in range(values.size):
            j = _search(classes, values[k], False)
            if j < classes.size and classes[j] == values[k]:
                dist[j] = weights[k] / asum


def _zonal_kernel(
    values: npt.NDArray[np.floating | np.integer],
    nodata: np.floating | np.integer,
    use_nodata: bool,
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    geom_ring_offsets: npt.NDArray[np.int64],
    row_factor: npt.NDArray[np.float64],
    mode: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    empty_row: npt.NDArray[np.float64],
    noise: float,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
]:
    """Zonal statistics of every polygon for every leading index of ``values``.

    Parameters
    ----------
    values
        ``(layers, rows, cols)`` window, C-contiguous, of a dtype of :data:`FAMILIES`.
    nodata, use_nodata
        Cells equal to ``nodata`` (when ``use_nodata``; a scalar of ``values``' dtype,
        compared before any cast) and NaN cells are not valid.
    coords, ring_offsets, geom_ring_offsets
        Rings of polygons, lines and point sets in window cell units
        (:func:`~cas_xr.zonal._coverage.geometry_rings`).
    row_factor
        Per-row multiplier of the weights of weighted statistics (true cell area).
    mode
        ``MODE_EXACT``, ``MODE_CENTER`` or ``MODE_ALL_TOUCHED``.
    codes, qs
        The statistics to compute (and the quantile of each ``QUANTILE`` code).
    classes
        Sorted class values of the distribution (empty: no distribution).
    empty_row
        The statistics of a geometry without valid cells (:func:`~cas_xr.zonal._codes.empty_stats`).
    noise
        Exact coverage below this is dropped (:data:`~cas_xr.zonal.COVERAGE_NOISE`).

    Returns
    -------
    tuple of numpy.ndarray
        ``stats (g, layers, codes)`` (``empty_row`` without valid cells),
        ``count (g, layers)`` (sum of valid coverage), ``pixels (g, layers)`` (valid cells
        with weight > 0) and ``dist (g, layers, classes)`` (area fraction of each class).
    """
    ngeom = geom_ring_offsets.size - 1
    nlayers, nrows, ncols = values.shape
    stats = np.empty((ngeom, nlayers, codes.size))
    for g in range(ngeom):
        for layer in range(nlayers):
            for s in range(codes.size):
                stats[g, layer, s] = empty_row[s]
    count = np.zeros((ngeom, nlayers))
    pixels = np.zeros((ngeom, nlayers), dtype=np.int64)
    dist = np.zeros((ngeom, nlayers, classes.size))
    need_pooled = classes.size > 0
    for code in codes:
        if code in (QUANTILE, MAJORITY, MINORITY, UNIQUE):
            need_pooled = True
    for g in range(ngeom):
        first, last = geom_ring_offsets[g], geom_ring_offsets[g + 1]
        if first == last:
            continue
        r0, r1, c0, c1 = geometry_window(coords, ring_offsets, first, last, nrows, ncols)
        buf = np.empty((r1 - r0, c1 - c0))
        cell_weights(buf, r0, c0, coords, ring_offsets, first, last, mode, noise)
        size = buf.size
        x = np.empty(size)
        w = np.empty(size)
        a = np.empty(size)
        for layer in range(nlayers):
            n = 0
            for i in range(r1 - r0):
                for j in range(c1 - c0):
                    weight = buf[i, j]
                    if weight <= 0.0:
                        continue
                    if mode == MODE_ALL_TOUCHED:
                        weight = 1.0
                    raw = values[layer, r0 + i, c0 + j]
                    if use_nodata and raw == nodata:  # in the stored dtype: exact
                        continue
                    v = float(raw)
                    if np.isnan(v):
                        continue
                    x[n] = v
                    w[n] = weight
                    a[n] = weight * row_factor[r0 + i]
                    n += 1
            if n == 0:
                continue
            pixels[g, layer] = n
            _summarise(x, w, a, n, codes, qs, classes, need_pooled, stats[g, layer], dist[g, layer])
            if codes[0] == COUNT:
                count[g, layer] = stats[g, layer, 0]
            else:
                covered = 0.0
                for i in range(n):
                    covered += w[i]
                count[g, layer] = covered
    return stats, count, pixels, dist


def kernel_for(family: str) -> Any:
    """The kernel compiled (or loaded from numba's cache) for values of dtype ``family``.

    Parameters
    ----------
    family
        One of :data:`FAMILIES`.

    Returns
    -------
    numba.core.registry.CPUDispatcher
        ``kernel(values, nodata, use_nodata, coords, ring_offsets, geom_ring_offsets,
        row_factor, mode, codes, qs, classes, empty_row, noise)`` (see ``_zonal_kernel``),
        which releases the GIL (windows run in parallel on threads).
    """
    dtype = getattr(types, family)
    signature = (
        dtype[:, :, ::1], dtype, types.boolean, types.float64[:, ::1], _I8, _I8, _F8,
        types.int64, _I8, _F8, _F8, _F8, types.float64,
    )  # fmt: skip
    return njit(signature, cache=True, nogil=True)(_zonal_kernel)
