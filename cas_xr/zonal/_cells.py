"""Per-cell outputs: every cell a geometry covers, as one long table along ``cell``.

:func:`cells` is exactextract's ``values``, ``coverage``, ``weights``, ``cell_id``,
``center_x`` and ``center_y`` for all geometries at once. The cells each geometry covers
and their weights come from the geometries alone (the kernel's coverage functions,
:mod:`cas_xr.zonal._coverage`), so they are computed at once, without reading a pixel;
the values are lazy, read by one task per window of geometries (the kernel's partition and
sparse windows), which gathers the cells of each of its geometries.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import ArgumentTypeError, InvalidArgumentError
from cas_xr.zonal import _codes as K

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.zonal._encoding import Encoding
    from cas_xr.zonal._inputs import Geometries

__all__ = [
    "MODES",
    "Covered",
    "cells",
    "covered_cells",
    "decoded_layers",
    "polygon_windows",
    "same_grid",
]

#: The weight modes of ``weights=`` and their kernel codes.
MODES = {"exact": K.MODE_EXACT, "center": K.MODE_CENTER, "all_touched": K.MODE_ALL_TOUCHED}

#: Names of the table's own columns (an input index of that name is shown as ``index``).
_COLUMNS = ("geometry", "cell_id", "center_x", "center_y", "coverage", "values", "weights")
#: Key of ``weights_raster`` among the variables read (no variable name can be it).
_WEIGHTS = ("weights_raster",)


@dataclass(frozen=True)
class Covered:
    """The cells a group of geometries covers, geometry after geometry, row-major within each.

    ``offsets[g]:offsets[g + 1]`` are geometry ``g``'s cells; ``rows``/``cols`` are in
    the coordinates of the array the rings were given in; ``weight`` is the weight of the
    mode (covered fraction, or 1).
    """

    offsets: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float64]


def covered_cells(
    rings: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    shape: tuple[int, int],
    mode: int,
) -> Covered:
    """The cells of a ``shape`` window that each geometry covers, with the kernel's weights.

    Parameters
    ----------
    rings
        The rings of the polygons, lines and point sets in the window's cell units
        (:func:`~cas_xr.zonal._coverage.geometry_rings`); lines are turned into their
        weighted cells here, as in the kernel's tasks.
    shape
        ``(rows, cols)`` of the window.
    mode
        ``MODE_EXACT``, ``MODE_CENTER`` or ``MODE_ALL_TOUCHED``, as in the kernel: a cell
        counts when its weight is above zero (exact coverage below
        :data:`~cas_xr.zonal.COVERAGE_NOISE` is dropped), with weight 1 outside exact mode.
        A line's weight is its length in the cell, a point set's its number of points.
    """
    from cas_xr.zonal._coverage import cell_weights, geometry_window, has_lines

    if has_lines(rings):
        from cas_xr.zonal._lines import weighted_lines

        thin = mode == K.MODE_CENTER
        rings = weighted_lines(*rings, shape, K.COVERAGE_NOISE, thin)
    coords, ring_offsets, geom_ring_offsets = rings
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    weights: list[npt.NDArray[np.float64]] = []
    counts = [0]
    for g in range(geom_ring_offsets.size - 1):
        first, last = int(geom_ring_offsets[g]), int(geom_ring_offsets[g + 1])
        if first == last:
            counts.append(0)
            continue
        r0, r1, c0, c1 = geometry_window(coords, ring_offsets, first, last, *shape)
        buf = np.empty((r1 - r0, c1 - c0))
        cell_weights(buf, r0, c0, coords, ring_offsets, first, last, mode, K.COVERAGE_NOISE)
        i, j = np.nonzero(buf > 0.0)
        rows.append(i + r0)
        cols.append(j + c0)
        weights.append(buf[i, j] if mode == K.MODE_EXACT else np.ones(i.size))
        counts.append(i.size)

    def joined(parts: list[Any], dtype: type) -> Any:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)

    return Covered(
        np.cumsum(counts, dtype=np.int64),
        joined(rows, np.int64),
        joined(cols, np.int64),
        joined(weights, np.float64),
    )


def decoded_layers(
    windows: Sequence[npt.NDArray[Any]], encodings: Sequence[Encoding]
) -> npt.NDArray[np.float64]:
    """Every layer of every variable, float64 with NaN where missing: ``(layers, ...)``."""
    return np.concatenate(
        [
            e.decode(w).reshape(-1, *np.shape(w)[-2:])
            for w, e in zip(windows, encodings, strict=True)
        ]
    )


def polygon_windows(
    geo: Geometries,
    variables: Sequence[xr.DataArray],
    encodings: Sequence[Encoding],
    window_cells: int,
) -> Iterator[tuple[npt.NDArray[np.intp], tuple[int, int, int, int], Any, list[Any]]]:
    """The kernel's windows of geometries: ``(indices, window, rings, lazy windows)``.

    The same Hilbert partition and sparse windows as the kernel's tasks
    (:mod:`cas_xr.zonal._partition`, :mod:`cas_xr.zonal._sparse`): each polygon, line
    and point set lies in exactly one window, whole, and only the chunks under them are
    read. ``window_cells`` bounds a window's cells over every layer.
    """
    from cas_xr.zonal._coverage import geometry_rings
    from cas_xr.zonal._inputs import cell_units
    from cas_xr.zonal._partition import partition
    from cas_xr.zonal._sparse import window_of

    to_cells = cell_units(geo.transform)
    cell_size = (geo.transform.a, geo.transform.e)
    polygons = np.flatnonzero(np.isin(geo.kinds, K.KERNEL_KINDS))
    if not polygons.size:
        return
    layers = sum(int(np.prod(v.shape[:-2])) for v in variables)
    budget = max(window_cells // max(layers, 1), 1)
    for members, window in partition(geo.bounds[polygons], max_cells=budget):
        idx = polygons[members]
        offset = np.array([window[2], window[0]])
        rings = geometry_rings(geo.shapes[idx], lambda xy, o=offset: to_cells(xy) - o, cell_size)
        lazy = [
            window_of(v, e, window, geo.shapes[idx], to_cells, geo.bounds[idx])
            for v, e in zip(variables, encodings, strict=True)
        ]
        yield idx, window, rings, lazy


def _gather(
    windows: Sequence[npt.NDArray[Any]],
    encodings: Sequence[Encoding],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
) -> list[npt.NDArray[np.float64]]:
    """The decoded cells ``rows, cols`` of each variable's window: ``(..., cells)`` each."""
    return [
        e.decode(np.asarray(w)[..., rows, cols], cells=1)
        for w, e in zip(windows, encodings, strict=True)
    ]


def _point_cells(values: Sequence[Any], encodings: Sequence[Encoding]) -> list[Any]:
    """The points' cells, gathered ``(points, ...)``, decoded with the points last."""
    return [
        e.decode(np.moveaxis(np.asarray(v), 0, -1), cells=1)
        for v, e in zip(values, encodings, strict=True)
    ]


def same_grid(
    obj: xr.DataArray | xr.Dataset,
    other: xr.DataArray,
    x_dim: Hashable | None,
    y_dim: Hashable | None,
) -> xr.DataArray:
    """``weights_raster`` on the grid of ``obj`` (same CRS, transform and shape), else an error."""
    import xarray as xr

    from cas_xr.zonal._dims import on_grid

    if not isinstance(other, xr.DataArray):
        raise ArgumentTypeError(
            f"weights_raster must be a DataArray on the raster's grid, got {type(other).__name__}"
        )
    gridded = on_grid(other, x_dim=x_dim, y_dim=y_dim)
    assert isinstance(gridded, xr.DataArray)
    other = gridded
    mine, theirs = obj.rio, other.rio
    same = (
        (obj.sizes["y"], obj.sizes["x"]) == (other.sizes["y"], other.sizes["x"])
        and theirs.crs is not None
        and mine.crs == theirs.crs
        and np.allclose(
            mine.transform(recalc=True),
            theirs.transform(recalc=True),
            rtol=0,
            atol=1e-9 * abs(mine.transform(recalc=True).a),
        )
    )
    if not same:
        raise InvalidArgumentError(
            "weights_raster must be on the same grid as the raster (same CRS, transform and "
            f"shape); got shape {other.shape[-2:]} and CRS {theirs.crs}; reproject it first, "
            "e.g. weights.rio.reproject_match(raster)"
        )
    return other


def cells(
    obj: xr.DataArray | xr.Dataset,
    geometries: Any,
    *,
    crs: Any = None,
    weights: str = "exact",
    weights_raster: xr.DataArray | None = None,
    nodata: float | None = None,
    chunks: int | None = None,
    x_dim: Hashable | None = None,
    y_dim: Hashable | None = None,
) -> xr.Dataset:
    """Every cell each geometry covers, as one long table along ``cell`` (lazy values).

    exactextract's per-cell outputs ``values``, ``coverage``, ``weights``, ``cell_id``,
    ``center_x`` and ``center_y``, for all geometries in one table with a row per
    geometry and cell. ``ds.to_dataframe()`` turns it into a pandas DataFrame.

    Parameters
    ----------
    obj
        A DataArray or Dataset on a grid, as for :func:`~cas_xr.zonal.zonal`.
    geometries
        Any kind :func:`~cas_xr.zonal.zonal` takes. A point covers the one cell that
        holds it, with coverage 1; in ``"exact"`` mode a line's ``coverage`` is its
        length in the cell (CRS units) and a MultiPoint's its number of points there.
    crs
        CRS of ``geometries`` when they carry none.
    weights
        The weight mode, as for :func:`~cas_xr.zonal.zonal`: ``"exact"`` (``coverage`` is
        the covered fraction of the cell), ``"center"`` or ``"all_touched"`` (the cells
        that mode selects, ``coverage`` 1).
    weights_raster
        A DataArray on the same grid (CRS, transform and shape); its cells become the
        ``weights`` variable (float64, NaN where missing).
    nodata
        Missing-value marker of ``obj``, as for :func:`~cas_xr.zonal.zonal`.
    chunks
        Window side of a read task, as for :func:`~cas_xr.zonal.zonal`.
    x_dim, y_dim
        Names of the spatial dimensions, when they cannot be told.

    Returns
    -------
    xarray.Dataset
        Along dimension ``cell``, geometry after geometry and, within a geometry, row
        after row (column after column within a row) of the grid as stored. Geometries
        come in the engine's order (window after window, Hilbert order; points last), so
        that no read task waits for another: ``df.sort_values(["geometry", "cell_id"])``
        gives input order (reordering the lazy Dataset would shuffle every task).
        Coordinates ``geometry`` (position of the geometry in the input), the input index
        (under its name, else ``index``), ``cell_id`` (``row * columns + column`` of the
        grid as stored; exactextract's on a north-up grid), ``center_x`` and ``center_y``
        (the cell's centre in the raster's CRS); variables ``coverage`` (the weight of the
        mode) and ``values`` (float64, NaN where the cell is missing; for a Dataset one
        ``<name>_values`` per variable), with the leading dims of ``obj``, and ``weights``
        when ``weights_raster`` is given. Every covered cell is a row whatever its value:
        exactextract leaves out missing cells, which ``ds.where(ds["values"].notnull(),
        drop=True)`` (one layer) or ``df.dropna(subset=["values"])`` does here. ``values``
        and ``weights`` are Dask-backed and read nothing until computed; the other
        columns depend on the geometries only and are computed at once.

    Raises
    ------
    cas_xr.errors.CasError
        As :func:`~cas_xr.zonal.zonal`; ``InvalidArgumentError`` when ``weights_raster``
        is not on the raster's grid.
    """
    import dask
    import dask.array as dsa

    from cas_xr.zonal._dims import on_grid
    from cas_xr.zonal._encoding import encoding_of
    from cas_xr.zonal._inputs import prepare_geometries, variables_of, window_cells_of

    if weights not in MODES:
        raise InvalidArgumentError(f"weights must be one of {sorted(MODES)}, got {weights!r}")
    obj = on_grid(obj, x_dim=x_dim, y_dim=y_dim)
    variables = variables_of(obj)
    if weights_raster is not None:
        variables = {**variables, _WEIGHTS: same_grid(obj, weights_raster, x_dim, y_dim)}
    geo = prepare_geometries(obj, geometries, crs, mode=MODES[weights])
    arrays = list(variables.values())
    encodings = [encoding_of(v, nodata if k != _WEIGHTS else None) for k, v in variables.items()]
    geometry: list[npt.NDArray[np.int64]] = []
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    cover: list[npt.NDArray[np.float64]] = []
    pieces: list[list[Any]] = [[] for _ in arrays]
    leads = [v.shape[:-2] for v in arrays]

    def add(task: Any, n: int) -> None:
        for k, lead in enumerate(leads):
            pieces[k].append(dsa.from_delayed(task[k], (*lead, n), dtype=np.float64))

    for idx, (r0, r1, c0, c1), rings, lazy in polygon_windows(
        geo, arrays, encodings, window_cells_of(arrays, chunks)
    ):
        covered = covered_cells(rings, (r1 - r0, c1 - c0), MODES[weights])
        geometry.append(np.repeat(idx, np.diff(covered.offsets)))
        rows.append(covered.rows + r0)
        cols.append(covered.cols + c0)
        cover.append(covered.weight)
        task = dask.delayed(_gather, pure=True)(lazy, encodings, covered.rows, covered.cols)
        add(task, covered.rows.size)
    points = np.flatnonzero(geo.kinds == K.KIND_POINT)
    if points.size:
        prow, pcol = geo.points[points, 0], geo.points[points, 1]
        gathered = [
            dsa.moveaxis(dsa.asarray(v.data), (-2, -1), (0, 1)).vindex[prow, pcol] for v in arrays
        ]
        geometry.append(points.astype(np.int64))
        rows.append(prow)
        cols.append(pcol)
        cover.append(np.ones(points.size))
        add(dask.delayed(_point_cells, pure=True)(gathered, encodings), points.size)
    columns = {
        "geometry": np.concatenate([np.empty(0, np.int64), *geometry]),
        "row": np.concatenate([np.empty(0, np.int64), *rows]),
        "col": np.concatenate([np.empty(0, np.int64), *cols]),
        "coverage": np.concatenate([np.empty(0), *cover]),
    }
    lazy_columns = [
        dsa.concatenate(p, axis=-1) if p else dsa.zeros((*lead, 0), dtype=np.float64)
        for p, lead in zip(pieces, leads, strict=True)
    ]
    return _table(obj, geo, variables, columns, lazy_columns)


def _table(
    obj: xr.DataArray | xr.Dataset,
    geo: Geometries,
    variables: dict[Hashable, xr.DataArray],
    columns: dict[str, npt.NDArray[Any]],
    lazy_columns: list[Any],
) -> xr.Dataset:
    """The long table: geometry columns as coordinates, values (and weights) as variables."""
    import xarray as xr

    from cas_xr.zonal._inputs import carry_coords, layers_of

    t = geo.transform
    row, col = columns["row"], columns["col"]
    index = geo.series.index
    label = index.name if index.name is not None and index.name not in _COLUMNS else "index"
    coords: dict[Hashable, Any] = {
        "geometry": ("cell", columns["geometry"]),
        label: ("cell", index.to_numpy()[columns["geometry"]]),
        "cell_id": ("cell", row * obj.sizes["x"] + col),
        "center_x": ("cell", t.c + (col + 0.5) * t.a),
        "center_y": ("cell", t.f + (row + 0.5) * t.e),
    }
    data_vars: dict[Hashable, Any] = {"coverage": ("cell", columns["coverage"])}
    single = isinstance(obj, xr.DataArray)
    for (name, var), data in zip(variables.items(), lazy_columns, strict=True):
        dims, dim_coords = layers_of(var)
        coords.update(dim_coords)
        if name == _WEIGHTS:
            data_vars["weights"] = ((*dims, "cell"), data)
        else:
            units = {"units": var.attrs["units"]} if "units" in var.attrs else {}
            data_vars["values" if single else f"{name}_values"] = ((*dims, "cell"), data, units)
    carry_coords(variables, coords, data_vars)
    out = xr.Dataset(data_vars, coords=coords)
    out.attrs["crs"] = geo.raster_crs.to_string()  # of center_x / center_y
    return out
