"""The compiled code of the fused zonal kernel (numba; loaded on first use by ``_kernel``).

For each geometry the weights of the cells under it are computed once (exact coverage,
centre-in-polygon or all-touched) and reused for every leading index (time step, band,
variable) of the window; statistics are accumulated in float64.

Compilation is the cost of a first run, so the code is written for it: every helper has
one explicit signature, or is called from one place only (no specialisation per call
site or literal argument), the kernel is compiled once per dtype family
(:func:`kernel_for`), all with ``cache=True``; loops stand in for numpy calls whose numba
implementations take seconds to compile (array broadcasting, ``np.where``, sorting,
``np.searchsorted``). The less common statistics (quantiles, cell centres, weighted
statistics) are a function the kernel is given (:func:`more_statistics`), compiled the
first time a request asks for one, and the kernel's results are allocated by its caller
(numba compiles ``np.zeros`` anew for each shape and dtype): a first run without them
(the demo's) compiles 14 functions instead of 17, in about a fifth less CPU time
(benchmarks/README.md, session 7).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import types

from cas_xr.zonal._codes import (
    COUNT,
    CV,
    MAJORITY,
    MAX,
    MAX_X,
    MAX_Y,
    MEAN,
    MIN,
    MIN_X,
    MIN_Y,
    MINORITY,
    MODE_ALL_TOUCHED,
    NAN_COUNT,
    NODATA_COUNT,
    OPT_DEFAULT_VALUE,
    OPT_DEFAULT_WEIGHT,
    OPT_HAS_DEFAULT_VALUE,
    OPT_HAS_DEFAULT_WEIGHT,
    OPT_MIN_COVER,
    OPT_UNIT_COVER,
    QUANTILE,
    RANGE,
    STD,
    SUM,
    UNIQUE,
    VARIANCE,
    WEIGHTED_MEAN,
    WEIGHTED_STD,
    WEIGHTED_SUM,
    WEIGHTED_VARIANCE,
)
from cas_xr.zonal._coverage import cell_weights, geometry_window
from cas_xr.zonal._jit import jit

__all__ = ["FAMILIES", "kernel_for", "more_statistics"]

#: The dtypes the kernel is compiled for: values are cast to one of them (exactly) first.
FAMILIES = ("float32", "float64", "int64", "uint64")

_F8 = types.float64[::1]
_I8 = types.int64[::1]


@jit((_F8, types.float64, types.boolean))
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


@jit((_F8, _F8, types.int64))
def _sort_pairs(keys: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], n: int) -> None:
    """Sort ``keys[:n]`` ascending in place (no NaN among them), ``weights`` alongside.

    A least-significant-digit radix sort on the keys' bits (mapped so that their order as
    integers is the numbers' order), a byte per pass, skipping the bytes all keys
    share (most of a float's exponent; the low bytes of widened float32 values). Unlike a
    comparison sort it takes no branch on the data, so it pays no mispredictions, which
    is where a quicksort of a geometry's cells spent most of its time (3 times this
    sort's, measured on 10,000 polygons). Equal keys keep their order. numba's own
    ``np.argsort`` takes longer to compile than this whole module.
    """
    if n == 0:
        return
    low = 0x7FFFFFFFFFFFFFFF  # flipped for negative numbers: int64 order is then theirs
    bits = keys[:n].view(np.int64)  # sorted in place (the keys' own memory)
    varying = 0  # the bits in which some key differs from the first
    for i in range(n):
        if bits[i] < 0:
            bits[i] ^= low
        varying |= bits[i] ^ bits[0]
    src_bits, src_weights = bits, weights[:n]
    dst_bits, dst_weights = np.empty(n, dtype=np.int64), np.empty(n)
    start = np.empty(256, dtype=np.int64)
    for d in range(8):
        shift = 8 * d
        if (varying >> shift) & 255 == 0:
            continue  # every key has this byte: the pass would move nothing
        sign = 128 if d == 7 else 0  # the top byte of a negative int64 comes first
        for v in range(256):
            start[v] = 0
        for i in range(n):
            start[((src_bits[i] >> shift) & 255) ^ sign] += 1
        total = 0
        for v in range(256):
            count = start[v]
            start[v] = total
            total += count
        for i in range(n):
            key = src_bits[i]
            v = ((key >> shift) & 255) ^ sign
            dst_bits[start[v]] = key
            dst_weights[start[v]] = src_weights[i]
            start[v] += 1
        src_bits, dst_bits = dst_bits, src_bits
        src_weights, dst_weights = dst_weights, src_weights
    for i in range(n):  # back to floats, into keys and weights (src may be either buffer)
        key = src_bits[i]
        bits[i] = key ^ low if key < 0 else key
        weights[i] = src_weights[i]


@jit((_F8, _F8, types.int64))
def _pooled(
    x: npt.NDArray[np.float64], a: npt.NDArray[np.float64], n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distinct values of x[:n] (sorted) and the summed weights a of each."""
    values = x[:n].copy()
    weights = a[:n].copy()
    _sort_pairs(values, weights, n)
    m = -1
    for i in range(n):
        v = values[i]
        if m < 0 or v != values[m]:
            m += 1
            values[m] = v
            weights[m] = weights[i]
        else:
            weights[m] += weights[i]
    return values[: m + 1], weights[: m + 1]


@jit()
def _positions(weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Positions ``s_k = k w_k + (n - 1) (w_0 + ... + w_(k-1))`` of pooled, sorted values."""
    n = weights.size
    s = np.empty(n)
    cum = 0.0
    for k in range(n):
        s[k] = k * weights[k] + (n - 1) * cum
        cum += weights[k]
    return s


@jit()
def _quantile(values: npt.NDArray[np.float64], s: npt.NDArray[np.float64], q: float) -> float:
    """Weighted quantile (exactextract's definition) of pooled, sorted values.

    ``s`` holds their positions (:func:`_positions`).
    """
    n = values.size
    if n == 1:
        return values[0]
    h = q * s[n - 1]
    upper = _search(s, h, True)
    if upper == 0:
        return values[0]
    if upper >= n:
        return values[n - 1]
    lower = upper - 1
    return values[lower] + (h - s[lower]) / (s[upper] - s[lower]) * (values[upper] - values[lower])


@jit(types.float64(types.float64, types.float64))
def _ratio(num: float, den: float) -> float:
    """``num / den`` with IEEE semantics (numba raises on a zero division otherwise)."""
    if den != 0.0:
        return num / den
    if num == 0.0 or np.isnan(num):
        return np.nan
    return np.inf if num > 0.0 else -np.inf


@jit((_F8, _F8, types.float64, _F8, _F8))
def _shares(
    values: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    total: float,
    classes: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None:
    """The share of each class (of ``classes``) in the pooled ``weights`` of ``values``."""
    for k in range(values.size):
        j = _search(classes, values[k], False)
        if j < classes.size and classes[j] == values[k]:
            out[j] = _ratio(weights[k], total)


@jit()
def _extreme_centre(
    x: npt.NDArray[np.float64],
    cell: npt.NDArray[np.int64],
    n: int,
    smallest: bool,
    col_x: npt.NDArray[np.float64],
    row_y: npt.NDArray[np.float64],
) -> tuple[float, float]:
    """Centre ``(x, y)`` of the cell of the smallest (largest) value.

    Ties go to the northernmost cell, then the westernmost, as exactextract's scan of a
    north-up raster finds them first.
    """
    cols = col_x.size
    best = 0
    bx = col_x[cell[0] % cols]
    by = row_y[cell[0] // cols]
    for i in range(1, n):
        if x[i] == x[best]:
            cx = col_x[cell[i] % cols]
            cy = row_y[cell[i] // cols]
            if cy > by or (cy == by and cx < bx):
                best, bx, by = i, cx, cy
        elif (x[i] < x[best]) == smallest:
            best = i
            bx = col_x[cell[i] % cols]
            by = row_y[cell[i] // cols]
    return bx, by


@jit()
def _weighted(
    x: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    wt: npt.NDArray[np.float64],
    n: int,
    code: int,
) -> float:
    """A statistic weighted by coverage times the weights raster (exactextract's ``weighted_*``).

    ``weighted_sum`` is Σ x·w·weight, like ``sum``; the others weight by ``a``·weight,
    like ``mean``.
    """
    if code == WEIGHTED_SUM:
        total = 0.0
        for i in range(n):
            total += x[i] * w[i] * wt[i]
        return total
    wsum = 0.0
    wxsum = 0.0
    for i in range(n):
        wsum += a[i] * wt[i]
        wxsum += x[i] * a[i] * wt[i]
    mean = _ratio(wxsum, wsum)
    if code == WEIGHTED_MEAN:
        return mean
    spread = 0.0
    for i in range(n):
        spread += a[i] * wt[i] * (x[i] - mean) ** 2
    variance = _ratio(spread, wsum)
    return variance if code == WEIGHTED_VARIANCE else np.sqrt(variance)


#: ``more(x, w, a, wt, cell, n, codes, qs, values, weights, classes, weights_defined, col_x,
#: row_y, out, wdist)``: the statistics :func:`_summarise` leaves to a function passed in.
_MORE = types.void(
    _F8, _F8, _F8, _F8, _I8, types.int64, _I8, _F8, _F8, _F8, _F8, types.boolean, _F8, _F8, _F8,
    _F8,
)  # fmt: skip
_MORE_FUNCTION = types.FunctionType(_MORE)


@jit(_MORE)
def _no_more_statistics(
    x: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    wt: npt.NDArray[np.float64],
    cell: npt.NDArray[np.int64],
    n: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    weights_defined: bool,
    col_x: npt.NDArray[np.float64],
    row_y: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    wdist: npt.NDArray[np.float64],
) -> None:
    """``more`` of a request without any of :data:`~cas_xr.zonal._codes.MORE_STATISTICS`."""


@jit()  # compiled (for _MORE) by more_statistics(), when a request first needs it
def _more_statistics(
    x: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    wt: npt.NDArray[np.float64],
    cell: npt.NDArray[np.int64],
    n: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    weights_defined: bool,
    col_x: npt.NDArray[np.float64],
    row_y: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    wdist: npt.NDArray[np.float64],
) -> None:
    """Quantiles, cell centres, weighted statistics and the weighted distribution.

    The arguments are :func:`_summarise`'s, with ``values`` and ``weights`` the pooled
    values (sorted, distinct) and their summed weights (when pooling was needed).
    """
    positions = weights[:0]
    for code in codes:
        if code == QUANTILE:  # shared by every quantile
            positions = _positions(weights)
            break
    for s in range(codes.size):
        code = codes[s]
        if code == QUANTILE:
            out[s] = _quantile(values, positions, qs[s])
        elif code in (MIN_X, MIN_Y, MAX_X, MAX_Y):
            cx, cy = _extreme_centre(x, cell, n, code in (MIN_X, MIN_Y), col_x, row_y)
            out[s] = cx if code in (MIN_X, MAX_X) else cy
        elif code in (WEIGHTED_MEAN, WEIGHTED_SUM, WEIGHTED_STD, WEIGHTED_VARIANCE):
            out[s] = _weighted(x, w, a, wt, n, code) if weights_defined else np.nan
    if wdist.size:
        if weights_defined:
            awt = np.empty(n)
            awt_sum = 0.0
            for i in range(n):
                awt[i] = a[i] * wt[i]
                awt_sum += awt[i]
            wvalues, wweights = _pooled(x, awt, n)
            _shares(wvalues, wweights, awt_sum, classes, wdist)
        else:
            for k in range(wdist.size):
                wdist[k] = np.nan


@jit(
    (_F8, _F8, _F8, _F8, _I8, types.int64, _I8, _F8, _F8, types.boolean, types.boolean, _F8,
     _F8, _F8, _F8, _F8, _F8, types.boolean, _MORE_FUNCTION),
)  # fmt: skip
def _summarise(
    x: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    wt: npt.NDArray[np.float64],
    cell: npt.NDArray[np.int64],
    n: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    need_pooled: bool,
    weights_defined: bool,
    col_x: npt.NDArray[np.float64],
    row_y: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    dist: npt.NDArray[np.float64],
    wdist: npt.NDArray[np.float64],
    missing: npt.NDArray[np.float64],
    need_more: bool,
    more: Any,
) -> None:
    """Every requested statistic of n valid cells.

    ``x`` values, ``w`` coverage weights (count, sum), ``a`` statistic weights (``w``
    times true cell area when area weighting), ``wt`` the weights raster's values (when
    given), ``cell`` each cell's position ``row * cols + col`` in the window (when a
    centre coordinate is asked); ``missing`` holds the nodata and NaN counts. The
    statistics of :data:`~cas_xr.zonal._codes.MORE_STATISTICS` and the weighted
    distribution are ``more``'s (:func:`_more_statistics`, compiled only when asked),
    called when ``need_more`` (a call through a function pointer: not for nothing).
    """
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
    variance = np.nan
    for code in codes:
        if code in (STD, VARIANCE, CV):  # a second pass over the cells, only if asked
            spread = 0.0
            for i in range(n):
                spread += a[i] * (x[i] - mean) ** 2
            variance = spread / asum
            break
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
            out[s] = np.sqrt(variance)
        elif code == VARIANCE:
            out[s] = variance
        elif code == CV:
            out[s] = _ratio(np.sqrt(variance), mean)
        elif code == RANGE:
            out[s] = hi - lo
        elif code == NODATA_COUNT:
            out[s] = missing[0]
        elif code == NAN_COUNT:
            out[s] = missing[1]
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
        _shares(values, weights, asum, classes, dist)
    if need_more:
        more(x, w, a, wt, cell, n, codes, qs, values, weights, classes, weights_defined, col_x,
             row_y, out, wdist)  # fmt: skip


@jit(inline="always")
def _cell_weights(
    cover: float, unit: bool, touched: bool, cover_factor: float, row_factor: float
) -> tuple[float, float, float]:
    """A covered cell's weight of count and sum, of the averages, and its coverage."""
    weight = (1.0 if unit else cover) * cover_factor
    return weight, weight * row_factor, 1.0 if touched else cover


def _zonal_kernel(
    values: npt.NDArray[np.floating | np.integer],
    nodata: np.floating | np.integer,
    use_nodata: bool,
    marks: npt.NDArray[np.uint8],
    coords: npt.NDArray[np.float64],
    ring_offsets: npt.NDArray[np.int64],
    geom_ring_offsets: npt.NDArray[np.int64],
    row_factor: npt.NDArray[np.float64],
    cover_factor: npt.NDArray[np.float64],
    col_x: npt.NDArray[np.float64],
    row_y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    mode: int,
    codes: npt.NDArray[np.int64],
    qs: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    noise: float,
    opts: npt.NDArray[np.float64],
    more: Any,
    stats: npt.NDArray[np.float64],
    count: npt.NDArray[np.float64],
    pixels: npt.NDArray[np.int64],
    dist: npt.NDArray[np.float64],
    wdist: npt.NDArray[np.float64],
) -> None:
    """Zonal statistics of every polygon for every leading index of ``values``.

    Parameters
    ----------
    values
        ``(layers, rows, cols)`` window, C-contiguous, of a dtype of :data:`FAMILIES`.
    nodata, use_nodata
        Cells equal to ``nodata`` (when ``use_nodata``; a scalar of ``values``' dtype,
        compared before any cast) and NaN cells are not valid.
    marks
        ``(layers, rows, cols)``: 1 where a decoded NaN was a missing-value marker (so
        ``nodata_count`` and ``nan_count`` tell them apart), or empty.
    coords, ring_offsets, geom_ring_offsets
        Rings of polygons, lines and point sets in window cell units
        (:func:`~cas_xr.zonal._coverage.geometry_rings`).
    row_factor
        Per-row multiplier of the weights of averaging statistics (true cell area).
    cover_factor
        Per-row multiplier of every weight, ``count`` and ``sum`` included (the cell
        area of ``coverage_weight="area_*"``; else ones).
    col_x, row_y
        Centre coordinates of the window's columns and rows (for ``min_center_x`` ...).
    weights
        ``(1 or layers, rows, cols)`` values of the weights raster, NaN where undefined;
        or empty.
    mode
        ``MODE_EXACT``, ``MODE_CENTER`` or ``MODE_ALL_TOUCHED``.
    codes, qs
        The statistics to compute (and the quantile of each ``QUANTILE`` code).
    classes
        Sorted class values of the distribution (empty: no distribution).
    noise
        Exact coverage below this is dropped (:data:`~cas_xr.zonal.COVERAGE_NOISE`).
    opts
        The options of :func:`~cas_xr.zonal._codes.options`.
    more
        The statistics of :data:`~cas_xr.zonal._codes.MORE_STATISTICS` and the weighted
        distribution: :func:`more_statistics` when one is asked, else a function that
        computes nothing (passed in, so that the kernel compiles without them).
    stats, count, pixels, dist, wdist
        The results, filled in for the geometries with valid cells (allocated by the
        caller: numba's ``np.zeros`` of each shape and dtype is a compilation of its
        own): ``stats (g, layers, codes)``, ``count (g, layers)`` (sum of valid
        coverage), ``pixels (g, layers)`` (valid cells with weight > 0),
        ``dist (g, layers, classes)`` (area fraction of each class) and ``wdist`` (the
        same weighted by the weights raster; 0 classes unless asked). ``stats`` holds
        the statistics of a geometry without valid cells already, the others zeros.
    """
    ngeom = geom_ring_offsets.size - 1
    nlayers, nrows, ncols = values.shape
    need_pooled = classes.size > 0
    need_cells = False
    need_missing = False
    need_more = wdist.shape[2] > 0
    for code in codes:
        if code in (QUANTILE, MAJORITY, MINORITY, UNIQUE):
            need_pooled = True
        elif code in (MIN_X, MIN_Y, MAX_X, MAX_Y):
            need_cells = True
        elif code in (NODATA_COUNT, NAN_COUNT):
            need_missing = True
        if code == QUANTILE or MIN_X <= code <= MAX_Y or WEIGHTED_MEAN <= code <= WEIGHTED_VARIANCE:
            need_more = True  # MORE_STATISTICS (each a range of codes, see _codes)
    has_marks = marks.shape[0] > 0
    has_weights = weights.shape[0] > 0
    weight_layers = weights.shape[0]
    min_cover = opts[OPT_MIN_COVER]
    touched = mode == MODE_ALL_TOUCHED
    unit = touched or opts[OPT_UNIT_COVER] > 0.0
    fill = opts[OPT_HAS_DEFAULT_VALUE] > 0.0
    fill_value = opts[OPT_DEFAULT_VALUE]
    fill_weight = opts[OPT_HAS_DEFAULT_WEIGHT] > 0.0
    weight_value = opts[OPT_DEFAULT_WEIGHT]
    missing = np.empty(2)
    for g in range(ngeom):
        first, last = geom_ring_offsets[g], geom_ring_offsets[g + 1]
        if first == last:
            continue
        r0, r1, c0, c1 = geometry_window(coords, ring_offsets, first, last, nrows, ncols)
        buf = np.empty((r1 - r0, c1 - c0))
        cell_weights(buf, r0, c0, coords, ring_offsets, first, last, mode, noise)
        width = c1 - c0
        flat = buf.ravel()
        # with several layers, the cells with weight are listed once for all: position,
        # the weight of count and sum (cw), of the averages (ca) and the coverage (cc);
        # with one, its pass reads buf itself (listing first took 1.6x the kernel's
        # time on 100 large polygons, 1.1x on 100,000 small ones)
        listed = nlayers > 1
        listing = buf.size if listed else 0
        cells = np.empty((listing, 2), dtype=np.int64)
        cw = np.empty(listing)
        ca = np.empty(listing)
        cc = np.empty(listing)
        size = 0 if listed else buf.size
        for i in range(r1 - r0 if listed else 0):
            for j in range(width):
                cover = buf[i, j]
                if cover <= 0.0 or cover < min_cover:
                    continue
                cells[size, 0] = r0 + i
                cells[size, 1] = c0 + j
                cw[size], ca[size], cc[size] = _cell_weights(
                    cover, unit, touched, cover_factor[r0 + i], row_factor[r0 + i]
                )
                size += 1
        x = np.empty(size)
        w = np.empty(size)
        a = np.empty(size)
        wt = np.empty(size if has_weights else 0)
        cell = np.empty(size if need_cells else 0, dtype=np.int64)
        for layer in range(nlayers):
            n = 0
            covered = 0.0
            missing[0] = 0.0
            missing[1] = 0.0
            weights_defined = True
            wl = layer if weight_layers > 1 else 0
            r, c = r0, c0 - 1  # the cell of flat[k] (counted along, not divided out)
            for k in range(size):
                if listed:
                    r, c = cells[k, 0], cells[k, 1]
                    weight, averaged, cover = cw[k], ca[k], cc[k]
                else:
                    c += 1
                    if c == c1:
                        r, c = r + 1, c0
                    cover = flat[k]
                    if cover <= 0.0 or cover < min_cover:
                        continue
                    weight, averaged, cover = _cell_weights(
                        cover, unit, touched, cover_factor[r], row_factor[r]
                    )
                raw = values[layer, r, c]
                v = float(raw)
                if (
                    (use_nodata and raw == nodata)  # in the stored dtype: exact
                    or np.isnan(v)
                ):
                    if need_missing:
                        marked = (use_nodata and raw == nodata) or (
                            has_marks and marks[layer, r, c] > 0
                        )
                        missing[0 if marked else 1] += weight
                    if not fill:
                        continue
                    v = fill_value
                covered += cover
                x[n] = v
                w[n] = weight
                a[n] = averaged
                if has_weights:
                    wv = weights[wl, r, c]
                    if np.isnan(wv):
                        if fill_weight:
                            wv = weight_value
                        else:
                            weights_defined = False
                    wt[n] = wv
                if need_cells:
                    cell[n] = r * ncols + c
                n += 1
            if n == 0:
                if need_missing:
                    for s in range(codes.size):
                        if codes[s] == NODATA_COUNT:
                            stats[g, layer, s] = missing[0]
                        elif codes[s] == NAN_COUNT:
                            stats[g, layer, s] = missing[1]
                continue
            pixels[g, layer] = n
            count[g, layer] = covered
            _summarise(
                x, w, a, wt, cell, n, codes, qs, classes, need_pooled, weights_defined, col_x,
                row_y, stats[g, layer], dist[g, layer], wdist[g, layer], missing, need_more,
                more,
            )  # fmt: skip


def kernel_for(family: str) -> Any:
    """The kernel compiled (or loaded from numba's cache) for values of dtype ``family``.

    Parameters
    ----------
    family
        One of :data:`FAMILIES`.

    Returns
    -------
    numba.core.registry.CPUDispatcher
        ``kernel(values, nodata, use_nodata, marks, coords, ring_offsets,
        geom_ring_offsets, row_factor, cover_factor, col_x, row_y, weights, mode, codes, qs,
        classes, noise, opts, more, stats, count, pixels, dist, wdist)`` (see
        ``_zonal_kernel``), which releases the GIL (windows run in parallel on threads).
    """
    dtype = getattr(types, family)
    signature = (
        dtype[:, :, ::1], dtype, types.boolean, types.uint8[:, :, ::1], types.float64[:, ::1],
        _I8, _I8, _F8, _F8, _F8, _F8, types.float64[:, :, ::1], types.int64, _I8, _F8, _F8,
        types.float64, _F8, _MORE_FUNCTION, types.float64[:, :, ::1], types.float64[:, ::1],
        types.int64[:, ::1], types.float64[:, :, ::1], types.float64[:, :, ::1],
    )  # fmt: skip
    return jit(signature, nogil=True)(_zonal_kernel)


def more_statistics(needed: bool) -> Any:
    """The kernel's ``more`` argument: :func:`_more_statistics` if ``needed``, else none.

    :func:`_more_statistics` (and the helpers only it calls) is compiled, or loaded from
    numba's cache, on the first call that needs it.
    """
    if not needed:
        return _no_more_statistics
    _more_statistics.compile(_MORE)
    return _more_statistics
