"""The lazy graph of :func:`~cas_xr.zonal.zonal`: one kernel task per window of polygons."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.zonal import _codes as K
from cas_xr.zonal._encoding import Encoding
from cas_xr.zonal._inputs import Geometries, Stats, cell_units
from cas_xr.zonal._partition import partition
from cas_xr.zonal._sparse import window_of

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["lazy_arrays"]


def _layer_stack(
    windows: Sequence[npt.NDArray[Any]], encodings: Sequence[Encoding]
) -> tuple[npt.NDArray[Any], Any, bool]:
    """All layers of all variables as one ``(layers, rows, cols)`` array, plus its marker.

    A single unpacked variable with at most one missing-value marker is passed through
    without a copy (the kernel skips the marker, compared in the stored dtype); otherwise
    the variables are decoded to float64 with NaN for missing cells and stacked.
    """
    if len(windows) == 1 and not encodings[0].packed and len(encodings[0].missing) <= 1:
        arr = np.asarray(windows[0])
        arr = arr.reshape(-1, *arr.shape[-2:])
        if encodings[0].missing:
            return arr, encodings[0].missing[0], True
        return arr, arr.dtype.type(0), False
    stacked = [
        e.decode(w).reshape(-1, *np.shape(w)[-2:]) for w, e in zip(windows, encodings, strict=True)
    ]
    return np.concatenate(stacked), np.float64(0.0), False


def _window_task(
    windows: Sequence[npt.NDArray[Any]],
    encodings: Sequence[Encoding],
    rings: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    row_factor: npt.NDArray[np.float64],
    mode: int,
    stats: Stats,
    classes: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """One partition of polygons: run the compiled kernel once over every layer."""
    from cas_xr.zonal._kernel import zonal_kernel  # compiled on first use

    values, nodata, use_nodata = _layer_stack(windows, encodings)
    coords, ring_offsets, geom_ring_offsets = rings
    return zonal_kernel(
        values, nodata, use_nodata, coords, ring_offsets, geom_ring_offsets, row_factor, mode,
        stats.codes, stats.qs, classes, K.empty_stats(stats.codes), K.COVERAGE_NOISE,
    )  # fmt: skip


def _point_task(
    values: Sequence[npt.NDArray[Any]],
    encodings: Sequence[Encoding],
    stats: Stats,
    classes: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """Statistics of points: each takes its one cell with weight 1."""
    columns = [  # (points, layers): decoded with the leading dims first, the points last
        np.moveaxis(e.decode(np.moveaxis(np.asarray(arr), 0, -1), cells=1), -1, 0).reshape(
            len(arr), -1
        )
        for arr, e in zip(values, encodings, strict=True)
    ]
    v = np.concatenate(columns, axis=1)
    valid = ~np.isnan(v)
    one = {
        K.COUNT: valid.astype(np.float64), K.SUM: np.where(valid, v, 0.0),
        K.STD: np.where(valid, 0.0, np.nan), K.UNIQUE: np.where(valid, 1.0, np.nan),
    }  # fmt: skip
    out = np.stack([one.get(int(code), v) for code in stats.codes], axis=-1)
    dist = (v[..., None] == classes).astype(np.float64)
    return out, valid.astype(np.float64), valid.astype(np.int64), dist


_Outputs = list[Any]  # stats (g, layers, codes), count (g, layers), pixels (g, layers), dist


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
    computed = compute(*[inputs[k] for k in lazy], scheduler="synchronous", optimize=False)
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
    row_factor: npt.NDArray[np.float64],
    mode: int,
    spec: Stats,
    class_codes: npt.NDArray[np.float64],
    window_cells: int,
) -> list[_Part]:
    """One kernel call per partition of polygons."""
    from cas_xr.zonal._coverage import polygon_rings

    to_cells = cell_units(geo.transform)
    polygons = np.flatnonzero(geo.kinds == K.KIND_POLYGON)
    if not polygons.size:
        return []
    parts = []
    for members, (r0, r1, c0, c1) in partition(geo.bounds[polygons], max_cells=window_cells):
        idx = polygons[members]
        offset = np.array([c0, r0])
        rings = polygon_rings(geo.shapes[idx], lambda xy, o=offset: to_cells(xy) - o)
        window = (r0, r1, c0, c1)
        windows = [
            window_of(v, e, window, geo.shapes[idx], to_cells, geo.bounds[idx])
            for v, e in zip(variables, encodings, strict=True)
        ]
        args = (encodings, rings, row_factor[r0:r1], mode, spec, class_codes)
        parts.append(_Part(idx, _window_task, windows, args))
    return parts


def _point_part(
    geo: Geometries,
    variables: list[xr.DataArray],
    encodings: list[Encoding],
    spec: Stats,
    class_codes: npt.NDArray[np.float64],
) -> list[_Part]:
    """The points' cells, gathered with vectorised indexing (only their chunks are read)."""
    import dask.array as dsa

    points = np.flatnonzero(geo.kinds == K.KIND_POINT)
    if not points.size:
        return []
    rows, cols = geo.points[points, 0], geo.points[points, 1]
    gathered = [
        dsa.moveaxis(dsa.asarray(v.data), (-2, -1), (0, 1)).vindex[rows, cols] for v in variables
    ]
    return [_Part(points, _point_task, gathered, (encodings, spec, class_codes))]


def lazy_arrays(
    geo: Geometries,
    variables: list[xr.DataArray],
    encodings: list[Encoding],
    row_factor: npt.NDArray[np.float64],
    mode: int,
    spec: Stats,
    class_codes: npt.NDArray[np.float64],
    window_cells: int,
    *,
    eager_cells: int = 0,
) -> _Outputs:
    """Every geometry's outputs as dask arrays in input order (see ``_Outputs``).

    Layers run over every variable's leading dims; ``window_cells`` bounds the cells a
    polygon task reads per layer. When the windows hold at most ``eager_cells`` cells in
    all, the outputs are computed here, in this thread, and returned as numpy arrays: the
    cells are read at once (:func:`~cas_xr.zonal._reads.compute`, synchronously) and
    the kernel runs on each window, with no Dask graph around it.
    """
    import dask.array as dsa

    layers = sum(int(np.prod(v.shape[:-2])) for v in variables)
    budget = max(window_cells // max(layers, 1), 1)
    parts = [
        *_polygon_parts(geo, variables, encodings, row_factor, mode, spec, class_codes, budget),
        *_point_part(geo, variables, encodings, spec, class_codes),
    ]
    empty = np.flatnonzero(geo.empty)
    inverse = np.argsort(np.concatenate([part.indices for part in parts] + [empty]))
    outputs = [
        ((layers, spec.codes.size), np.float64, K.empty_stats(spec.codes)),
        ((layers,), np.float64, 0.0),
        ((layers,), np.int64, 0),
        ((layers, class_codes.size), np.float64, 0.0),
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
