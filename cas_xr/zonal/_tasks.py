"""The lazy graph of :func:`~cas_xr.zonal.zonal`: one kernel task per window of geometries.

Polygons, lines and point sets go through the kernel in windows; points are gathered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.zonal import _codes as K
from cas_xr.zonal._encoding import Encoding
from cas_xr.zonal._inputs import Geometries, Stats, cell_units
from cas_xr.zonal._kinds import among
from cas_xr.zonal._partition import partition
from cas_xr.zonal._sparse import window_of

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Grid", "Setup", "lazy_arrays"]

_NO_MARKS = np.zeros((0, 0, 0), dtype=np.uint8)
_NO_WEIGHTS = np.zeros((0, 0, 0))


@dataclass(frozen=True)
class Setup:
    """What every task of one ``zonal()`` call shares (small: it travels with each task).

    ``weights`` is the encoding of the weights raster, when one is given.
    """

    mode: int
    stats: Stats
    classes: npt.NDArray[np.float64]
    options: npt.NDArray[np.float64]
    weights: Encoding | None = None

    @property
    def marks(self) -> bool:
        """Whether decoded missing-value markers must stay apart from NaN (their counts)."""
        return bool(among(self.stats.codes, (K.NODATA_COUNT, K.NAN_COUNT)).any())


@dataclass(frozen=True)
class Grid:
    """Per-row and per-column arrays of the grid, sliced for each window's task."""

    row_factor: npt.NDArray[np.float64]  # weights of averaging statistics (true cell area)
    cover_factor: npt.NDArray[np.float64]  # every weight (coverage_weight="area_*")
    row_y: npt.NDArray[np.float64]  # centre coordinates of the rows
    col_x: npt.NDArray[np.float64]  # centre coordinates of the columns

    def rows(self, r0: int, r1: int) -> tuple[npt.NDArray[np.float64], ...]:
        """``row_factor``, ``cover_factor`` and ``row_y`` of rows ``r0:r1``."""
        return self.row_factor[r0:r1], self.cover_factor[r0:r1], self.row_y[r0:r1]


def _layer_stack(
    windows: Sequence[npt.NDArray[Any]], encodings: Sequence[Encoding], marks: bool
) -> tuple[npt.NDArray[Any], Any, bool, npt.NDArray[np.uint8]]:
    """All layers of all variables as one ``(layers, rows, cols)`` array, plus its marker.

    A single unpacked variable with at most one missing-value marker is passed through
    without a copy (the kernel skips the marker, compared in the stored dtype); otherwise
    the variables are decoded to float64 with NaN for missing cells and stacked, and,
    when ``marks``, where a marker was stored is returned too (``nodata_count``).
    """
    if len(windows) == 1 and not encodings[0].packed and len(encodings[0].missing) <= 1:
        arr = np.asarray(windows[0])
        arr = arr.reshape(-1, *arr.shape[-2:])
        if encodings[0].missing:
            return arr, encodings[0].missing[0], True, _NO_MARKS
        return arr, arr.dtype.type(0), False, _NO_MARKS
    pairs = list(zip(windows, encodings, strict=True))
    stacked = [e.decode(w).reshape(-1, *np.shape(w)[-2:]) for w, e in pairs]
    flags = _NO_MARKS
    if marks:
        flags = np.concatenate(
            [np.isin(np.asarray(w), e.missing).reshape(-1, *np.shape(w)[-2:]) for w, e in pairs]
        ).astype(np.uint8)
    return np.concatenate(stacked), np.float64(0.0), False, flags


def _split(
    inputs: Sequence[npt.NDArray[Any]], encodings: Sequence[Encoding]
) -> tuple[Sequence[npt.NDArray[Any]], npt.NDArray[Any] | None]:
    """The variables' arrays of a task's inputs, and the weights raster's (or None)."""
    n = len(encodings)
    return inputs[:n], (inputs[n] if len(inputs) > n else None)


def _window_task(
    inputs: Sequence[npt.NDArray[Any]],
    encodings: Sequence[Encoding],
    rings: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    rows: tuple[npt.NDArray[np.float64], ...],
    col_x: npt.NDArray[np.float64],
    setup: Setup,
    lines: bool,
) -> tuple[npt.NDArray[Any], ...]:
    """One partition of geometries: run the compiled kernel once over every layer.

    ``inputs`` are the variables' windows, then the weights raster's if there is one.
    Lines, if any, are turned into their weighted cells in the window first.
    """
    from cas_xr.zonal._kernel import zonal_kernel  # compiled on first use

    windows, weights = _split(inputs, encodings)
    values, nodata, use_nodata, marks = _layer_stack(windows, encodings, setup.marks)
    if lines:
        from cas_xr.zonal._lines import weighted_lines  # compiled on first use

        thin = setup.mode == K.MODE_CENTER
        rings = weighted_lines(*rings, values.shape[-2:], K.COVERAGE_NOISE, thin)
    coords, ring_offsets, geom_ring_offsets = rings
    row_factor, cover_factor, row_y = rows
    weight_values = _NO_WEIGHTS
    if weights is not None and setup.weights is not None:
        weight_values = setup.weights.decode(weights).reshape(-1, *np.shape(weights)[-2:])
    stats = setup.stats
    return zonal_kernel(
        values, nodata, use_nodata, marks, coords, ring_offsets, geom_ring_offsets, row_factor,
        cover_factor, col_x, row_y, weight_values, setup.mode, stats.codes, stats.qs,
        setup.classes, stats.weighted_distribution, K.empty_stats(stats.codes),
        K.COVERAGE_NOISE, setup.options,
    )  # fmt: skip


def _point_task(
    inputs: Sequence[npt.NDArray[Any]],
    encodings: Sequence[Encoding],
    cells: npt.NDArray[np.float64],
    setup: Setup,
) -> tuple[npt.NDArray[Any], ...]:
    """Statistics of points: each takes its one cell with weight 1.

    ``inputs`` are the variables' values at the points, then the weights raster's if
    there is one; ``cells`` holds each point's cell centre ``x``, ``y`` and
    ``cover_factor``.
    """
    values, weights = _split(inputs, encodings)

    def columns(arrays: Sequence[Any], codes: Sequence[Encoding], marker: bool) -> Any:
        out = []  # (points, layers): decoded with the leading dims first, the points last
        for arr, e in zip(arrays, codes, strict=True):
            lead = np.moveaxis(np.asarray(arr), 0, -1)
            data = np.isin(lead, e.missing).astype(np.float64) if marker else e.decode(lead, 1)
            out.append(np.moveaxis(data, -1, 0).reshape(len(arr), -1))
        return np.concatenate(out, axis=1)

    opts = setup.options
    v = columns(values, encodings, False)
    nodata = columns(values, encodings, True) > 0
    nan = np.isnan(v) & ~nodata
    if opts[K.OPT_HAS_DEFAULT_VALUE]:
        v = np.where(np.isnan(v), opts[K.OPT_DEFAULT_VALUE], v)
    valid = ~np.isnan(v)
    factor = cells[:, 2:3]
    wt = np.full_like(v, np.nan)
    if weights is not None and setup.weights is not None:
        wt = np.broadcast_to(columns([weights], [setup.weights], False), v.shape)
        if opts[K.OPT_HAS_DEFAULT_WEIGHT]:
            wt = np.where(np.isnan(wt), opts[K.OPT_DEFAULT_WEIGHT], wt)
    zero = np.where(valid, 0.0, np.nan)
    one = {
        K.COUNT: valid * factor, K.SUM: np.where(valid, v * factor, 0.0), K.STD: zero,
        K.VARIANCE: zero, K.RANGE: zero, K.UNIQUE: np.where(valid, 1.0, np.nan),
        K.CV: np.where(v == 0, np.nan, zero), K.NODATA_COUNT: nodata * factor,
        K.NAN_COUNT: nan * factor, K.WEIGHTED_MEAN: np.where(np.isnan(wt), np.nan, v),
        K.WEIGHTED_SUM: np.where(valid, v * wt * factor, 0.0),
        K.WEIGHTED_STD: np.where(np.isnan(wt), np.nan, zero),
        K.WEIGHTED_VARIANCE: np.where(np.isnan(wt), np.nan, zero),
    }  # fmt: skip
    for code, column in ((K.MIN_X, 0), (K.MIN_Y, 1), (K.MAX_X, 0), (K.MAX_Y, 1)):
        one[code] = np.where(valid, cells[:, column : column + 1], np.nan)
    out = np.stack([one.get(int(code), v) for code in setup.stats.codes], axis=-1)
    dist = (v[..., None] == setup.classes).astype(np.float64)
    wdist = dist if setup.stats.weighted_distribution else dist[..., :0]
    if setup.stats.weighted_distribution:
        wdist = np.where(np.isnan(wt)[..., None], np.nan, dist)
    return out, valid.astype(np.float64), valid.astype(np.int64), dist, wdist


#: stats (g, layers, codes), count (g, layers), pixels (g, layers), dist and wdist
#: (g, layers, classes)
_Outputs = list[Any]


@dataclass(frozen=True)
class _Part:
    """Geometries computed by one call ``function(inputs, *args)``.

    ``inputs`` are the cells it reads (lazy: Dask arrays or delayed objects, or arrays
    in memory), ``args`` everything else.
    """

    indices: npt.NDArray[np.intp]
    function: Callable[..., Any]
    inputs: list[Any]
    args: tuple[Any, ...]

    def delayed(self) -> Any:
        """The call as a Dask task."""
        import dask

        return dask.delayed(self.function, pure=True)(self.inputs, *self.args)


def _run_now(parts: list[_Part]) -> list[Any]:
    """Every part's outputs, computed in this thread: their cells read together, no graph."""
    import dask

    from cas_xr.zonal._reads import compute

    inputs = [x for part in parts for x in part.inputs]
    lazy = [k for k, x in enumerate(inputs) if dask.is_dask_collection(x)]
    computed = compute(*[inputs[k] for k in lazy], scheduler="inline", optimize=False)
    for k, value in zip(lazy, computed, strict=True):
        inputs[k] = value
    done, start = [], 0
    for part in parts:
        stop = start + len(part.inputs)
        done.append(part.function(inputs[start:stop], *part.args))
        start = stop
    return done


def _polygon_parts(
    geo: Geometries,
    variables: list[xr.DataArray],
    encodings: list[Encoding],
    weights: xr.DataArray | None,
    grid: Grid,
    setup: Setup,
    window_cells: int,
) -> list[_Part]:
    """One kernel call per partition of polygons, lines and point sets."""
    from cas_xr.zonal._coverage import geometry_rings

    to_cells = cell_units(geo.transform)
    cell_size = (geo.transform.a, geo.transform.e)
    polygons = np.flatnonzero(among(geo.kinds, K.KERNEL_KINDS))
    if not polygons.size:
        return []
    parts = []
    for members, (r0, r1, c0, c1) in partition(geo.bounds[polygons], max_cells=window_cells):
        idx = polygons[members]
        offset = np.array([c0, r0])
        rings = geometry_rings(geo.shapes[idx], lambda xy, o=offset: to_cells(xy) - o, cell_size)
        window = (r0, r1, c0, c1)
        windows = [
            window_of(v, e, window, geo.shapes[idx], to_cells, geo.bounds[idx])
            for v, e in zip(variables, encodings, strict=True)
        ]
        if weights is not None and setup.weights is not None:
            windows.append(
                window_of(
                    weights, setup.weights, window, geo.shapes[idx], to_cells, geo.bounds[idx]
                )
            )
        lines = bool(np.any(geo.kinds[idx] == K.KIND_LINE))
        args = (encodings, rings, grid.rows(r0, r1), grid.col_x[c0:c1], setup, lines)
        parts.append(_Part(idx, _window_task, windows, args))
    return parts


def _point_part(
    geo: Geometries,
    variables: list[xr.DataArray],
    encodings: list[Encoding],
    weights: xr.DataArray | None,
    grid: Grid,
    setup: Setup,
) -> list[_Part]:
    """The points' cells, gathered with vectorised indexing (only their chunks are read)."""
    import dask.array as dsa

    points = np.flatnonzero(geo.kinds == K.KIND_POINT)
    if not points.size:
        return []
    rows, cols = geo.points[points, 0], geo.points[points, 1]

    def gather(v: xr.DataArray) -> Any:
        return dsa.moveaxis(dsa.asarray(v.data), (-2, -1), (0, 1)).vindex[rows, cols]

    gathered = [gather(v) for v in variables]
    if weights is not None:
        gathered.append(gather(weights))
    cells = np.column_stack([grid.col_x[cols], grid.row_y[rows], grid.cover_factor[rows]])
    return [_Part(points, _point_task, gathered, (encodings, cells, setup))]


def lazy_arrays(
    geo: Geometries,
    variables: list[xr.DataArray],
    encodings: list[Encoding],
    weights: xr.DataArray | None,
    grid: Grid,
    setup: Setup,
    window_cells: int,
    *,
    eager_cells: int = 0,
) -> _Outputs:
    """Every geometry's outputs as dask arrays in input order (see ``_Outputs``).

    Layers run over every variable's leading dims; ``window_cells`` bounds the cells a
    polygon task reads per layer. ``weights`` is the weights raster (its windows are
    read beside the values'). When the windows hold at most ``eager_cells`` cells in
    all, the outputs are computed here, in this thread, and returned as numpy arrays: the
    cells are read at once (:func:`~cas_xr.zonal._reads.compute`, inline) and
    the kernel runs on each window, with no Dask graph around it.
    """
    import dask.array as dsa

    layers = sum(int(np.prod(v.shape[:-2])) for v in variables)
    budget = max(window_cells // max(layers, 1), 1)
    parts = [
        *_polygon_parts(geo, variables, encodings, weights, grid, setup, budget),
        *_point_part(geo, variables, encodings, weights, grid, setup),
    ]
    empty = np.flatnonzero(geo.empty)
    inverse = np.argsort(np.concatenate([part.indices for part in parts] + [empty]))
    spec, classes = setup.stats, setup.classes.size
    outputs = [
        ((layers, spec.codes.size), np.float64, K.empty_stats(spec.codes)),
        ((layers,), np.float64, 0.0),
        ((layers,), np.int64, 0),
        ((layers, classes), np.float64, 0.0),
        ((layers, classes if spec.weighted_distribution else 0), np.float64, 0.0),
    ]
    if _cells(geo, layers) <= eager_cells:
        done = _run_now(parts)
        eager = []
        for k, (tail, dtype, fill) in enumerate(outputs):
            pieces = [np.asarray(result[k], dtype=dtype) for result in done]
            pieces.append(np.broadcast_to(np.asarray(fill, dtype=dtype), (empty.size, *tail)))
            eager.append(np.concatenate(pieces, axis=0)[inverse])
        return eager
    tasks = [(part.indices, part.delayed()) for part in parts]
    arrays = []
    for k, (tail, dtype, fill) in enumerate(outputs):
        pieces = [dsa.from_delayed(task[k], (len(idx), *tail), dtype=dtype) for idx, task in tasks]
        if empty.size:
            filled = np.broadcast_to(np.asarray(fill, dtype=dtype), (empty.size, *tail))
            pieces.append(dsa.from_array(filled))
        arrays.append(dsa.concatenate(pieces, axis=0)[inverse])
    return arrays


def _cells(geo: Geometries, layers: int) -> int:
    """Cells under the geometries' windows, over every layer (what the kernel reads)."""
    rows = geo.bounds[:, 1] - geo.bounds[:, 0]
    cols = geo.bounds[:, 3] - geo.bounds[:, 2]
    return int(np.sum(np.clip(rows, 0, None) * np.clip(cols, 0, None))) * layers
