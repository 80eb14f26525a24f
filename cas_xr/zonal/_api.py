"""``zonal()``: exact zonal statistics of a raster cube as an xvec vector data cube."""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidGeometryError
from cas_xr.zonal import _kernel as K
from cas_xr.zonal._coverage import COVERAGE_NOISE, polygon_rings
from cas_xr.zonal._partition import partition

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr
    from affine import Affine

__all__ = ["STATISTICS", "zonal"]

#: Statistic names accepted by :func:`zonal` (plus ``pNN`` quantiles such as ``p10``).
STATISTICS = (
    "mean", "median", "min", "max", "std", "sum", "count", "majority", "minority", "unique",
    "distribution",
)  # fmt: skip
_CODES = {
    "count": K.COUNT, "sum": K.SUM, "mean": K.MEAN, "min": K.MIN, "max": K.MAX, "std": K.STD,
    "median": K.QUANTILE, "majority": K.MAJORITY, "minority": K.MINORITY, "unique": K.UNIQUE,
}  # fmt: skip
_MODES = {"exact": K.MODE_EXACT, "center": K.MODE_CENTER, "all_touched": K.MODE_ALL_TOUCHED}
_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_EARTH_RADIUS_M = 6_371_008.8
#: Cells (times layers) a task reads at most, unless one geometry alone needs more.
DEFAULT_WINDOW_CELLS = 2048 * 2048


@dataclass(frozen=True)
class _Stats:
    labels: list[str]
    codes: npt.NDArray[np.int64]
    qs: npt.NDArray[np.float64]
    distribution: bool


def _parse_stats(stats: str | Sequence[str]) -> _Stats:
    names = [stats] if isinstance(stats, str) else list(stats)
    if not names:
        raise ValueError(f"stats is empty; choose from {', '.join(STATISTICS)} or pNN")
    labels: list[str] = []
    codes: list[int] = [K.COUNT]  # always first: coverage needs it
    qs: list[float] = [0.0]
    for name in dict.fromkeys(str(n).lower() for n in names):
        if name == "distribution":
            continue
        match = _QUANTILE.match(name)
        if name in _CODES:
            codes.append(_CODES[name])
            qs.append(0.5 if name == "median" else 0.0)
        elif match and float(match[1]) <= 100:
            codes.append(K.QUANTILE)
            qs.append(float(match[1]) / 100)
        else:
            raise ValueError(
                f"unknown statistic {name!r}; choose from {', '.join(STATISTICS)} or a "
                "quantile such as 'p10' or 'p90'"
            )
        labels.append(name)
    wants_distribution = any(str(n).lower() == "distribution" for n in names)
    return _Stats(labels, np.asarray(codes, np.int64), np.asarray(qs), wants_distribution)


def _as_geoseries(geometries: Any, crs: Any) -> gpd.GeoSeries:
    import geopandas as gpd
    import shapely

    if isinstance(geometries, gpd.GeoDataFrame):
        series = geometries.geometry
    elif isinstance(geometries, gpd.GeoSeries):
        series = geometries
    elif isinstance(geometries, Mapping) and geometries.get("type") == "FeatureCollection":
        series = gpd.GeoSeries.from_features(geometries["features"], crs=crs)
    else:
        items = [geometries] if isinstance(geometries, shapely.Geometry | Mapping) else geometries
        shapes = [
            g if isinstance(g, shapely.Geometry) or g is None else shapely.geometry.shape(g)
            for g in items
        ]
        series = gpd.GeoSeries(shapes, crs=crs)
    if crs is not None:
        if series.crs is None:
            series = series.set_crs(crs)
        elif not series.crs.equals(crs):
            raise ValueError(
                f"the geometries carry CRS {series.crs.to_string()} but crs={crs!r} was given; "
                "drop crs= or reproject the geometries (GeoSeries.to_crs)"
            )
    if series.crs is None:
        raise ValueError(
            "the geometries have no CRS; pass crs=... (e.g. 'EPSG:4326') or a GeoSeries "
            "with a CRS; cas_xr never assumes one"
        )
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise InvalidGeometryError(
            f"{missing.size} geometries are missing (None) at positions {missing[:10].tolist()}; "
            "drop them or use empty geometries (their statistics are NaN)"
        )
    kinds = set(series.geom_type.dropna())
    bad = kinds - {"Polygon", "MultiPolygon", "Point"}
    if bad:
        raise InvalidGeometryError(
            f"geometry types {sorted(bad)} are not supported; use Polygon, MultiPolygon or Point"
        )
    invalid = np.flatnonzero(~series.is_valid.to_numpy())
    if invalid.size:
        reasons = [shapely.is_valid_reason(series.iloc[i]) for i in invalid[:3]]
        raise InvalidGeometryError(
            f"{invalid.size} invalid geometries (positions {invalid[:10].tolist()}): {reasons}; "
            "repair them explicitly, e.g. GeoSeries.make_valid(), before computing statistics"
        )
    return series


def _raster_crs(obj: xr.DataArray | xr.Dataset) -> Any:
    import rioxarray  # noqa: F401  (registers .rio)

    crs = obj.rio.crs
    if crs is None:
        raise ValueError(
            "the raster has no CRS; set one with obj.rio.write_crs('EPSG:...') (cas_xr never "
            "assumes a CRS)"
        )
    return crs


def _grid(obj: xr.DataArray | xr.Dataset) -> tuple[Affine, tuple[int, int]]:
    if "y" not in obj.dims or "x" not in obj.dims:
        raise ValueError(
            f"zonal() needs 'y' and 'x' dimensions, got {tuple(obj.dims)}; rename them, e.g. "
            "obj.rename(latitude='y', longitude='x')"
        )
    transform = obj.rio.transform(recalc=True)
    if transform.b or transform.d:
        raise ValueError("rotated grids are not supported; reproject the raster first")
    return transform, (obj.sizes["y"], obj.sizes["x"])


def _row_factor(
    obj: xr.DataArray | xr.Dataset, transform: Affine, crs: Any, area_weighted: bool
) -> npt.NDArray[np.float64]:
    rows = obj.sizes["y"]
    if not area_weighted:
        return np.ones(rows)
    if not crs.is_geographic:
        raise ValueError(
            "area_weighted=True applies to geographic (lon/lat) grids; on a projected grid "
            "every cell already has the same area"
        )
    edges = np.radians(transform.f + transform.e * np.arange(rows + 1))
    band = np.abs(np.sin(edges[:-1]) - np.sin(edges[1:]))
    width = abs(math.radians(transform.a))
    return np.asarray(_EARTH_RADIUS_M**2 * width * band / 1e6)  # km² per cell


def _cell_units(transform: Affine) -> Any:
    def to_cells(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        u = (xy[:, 0] - transform.c) / transform.a
        v = (xy[:, 1] - transform.f) / transform.e
        return np.column_stack([u, v])

    return to_cells


def _layers(var: xr.DataArray) -> tuple[list[Hashable], dict[Hashable, Any]]:
    """The leading (non-spatial) dims of a variable and their coordinates."""
    lead = [d for d in var.dims if d not in ("y", "x")]
    return lead, {d: var[d].values if d in var.coords else np.arange(var.sizes[d]) for d in lead}


def _window_task(
    windows: Sequence[npt.NDArray[Any]],
    nodatas: Sequence[float | None],
    kinds: npt.NDArray[np.int64],
    points: npt.NDArray[np.int64],
    rings: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    row_factor: npt.NDArray[np.float64],
    mode: int,
    stats: _Stats,
    classes: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """One partition: stack every variable's layers as float64 and run the kernel once."""
    stacked = []
    for window, nodata in zip(windows, nodatas, strict=True):
        arr = np.asarray(window)
        arr = arr.reshape(-1, *arr.shape[-2:]).astype(np.float64)
        if nodata is not None and not math.isnan(nodata):
            arr[arr == nodata] = np.nan
        stacked.append(arr)
    values = np.concatenate(stacked) if len(stacked) > 1 else stacked[0]
    coords, ring_offsets, geom_ring_offsets = rings
    return K.zonal_kernel(
        values, np.nan, False, kinds, points, coords, ring_offsets, geom_ring_offsets,
        row_factor, mode, stats.codes, stats.qs, classes,
    )  # fmt: skip


def _point_cells(series: gpd.GeoSeries, transform: Affine) -> npt.NDArray[np.int64]:
    """Row and column of the cell holding each point (-1, -1 for other geometries).

    A point on a cell edge (to within float noise) belongs to the cell east of a vertical
    edge and south of a horizontal one, whichever way the y axis runs.
    """
    import shapely

    out = np.full((len(series), 2), -1, dtype=np.int64)
    is_point = (series.geom_type == "Point").to_numpy()
    if is_point.any():
        uv = np.round(
            _cell_units(transform)(shapely.get_coordinates(series[is_point].to_numpy())), 9
        )
        out[is_point, 1] = np.floor(uv[:, 0]).astype(np.int64)
        rows = np.floor(uv[:, 1]) if transform.e < 0 else np.ceil(uv[:, 1]) - 1
        out[is_point, 0] = rows.astype(np.int64)
    return out


def _bounds_in_cells(
    series: gpd.GeoSeries, to_cells: Any, shape: tuple[int, int]
) -> npt.NDArray[np.int64]:
    b = np.nan_to_num(series.bounds.to_numpy())  # missing/empty geometries: 0-size windows
    corners = np.concatenate([to_cells(b[:, [0, 1]]), to_cells(b[:, [2, 3]])], axis=1)
    u0, u1 = np.minimum(corners[:, 0], corners[:, 2]), np.maximum(corners[:, 0], corners[:, 2])
    v0, v1 = np.minimum(corners[:, 1], corners[:, 3]), np.maximum(corners[:, 1], corners[:, 3])
    # one cell of margin: edge-touching points may belong to the neighbouring cell
    r0 = np.clip(np.floor(v0) - 1, 0, shape[0]).astype(np.int64)
    r1 = np.clip(np.floor(v1) + 2, 0, shape[0]).astype(np.int64)
    c0 = np.clip(np.floor(u0) - 1, 0, shape[1]).astype(np.int64)
    c1 = np.clip(np.floor(u1) + 2, 0, shape[1]).astype(np.int64)
    return np.column_stack([r0, r1, c0, c1])


def _classes_of(var: xr.DataArray, classes: Any) -> npt.NDArray[np.float64]:
    if classes is None:
        classes = var.attrs.get("class_names") or var.attrs.get("flag_values")
    if classes is None:
        raise ValueError(
            f"'distribution' needs the class values of {var.name!r}: pass classes=[...] (or a "
            "{code: name} mapping), or set attrs['class_names'] / attrs['flag_values']"
        )
    codes = list(classes.keys()) if isinstance(classes, Mapping) else list(np.ravel(classes))
    return np.unique(np.asarray(codes, dtype=np.float64))


def zonal(
    obj: xr.DataArray | xr.Dataset,
    geometries: Any,
    stats: str | Sequence[str] = ("mean",),
    *,
    crs: Any = None,
    weights: str = "exact",
    area_weighted: bool = False,
    classes: npt.ArrayLike | Mapping[int, str] | None = None,
    nodata: float | None = None,
    max_window_cells: int = DEFAULT_WINDOW_CELLS,
) -> xr.Dataset:
    """Zonal statistics of a raster cube over polygons and points, lazily.

    Parameters
    ----------
    obj
        A DataArray or Dataset with ``y`` and ``x`` dimensions (other dimensions such as
        ``time`` and ``band`` are kept) and a CRS readable by rioxarray.
    geometries
        A GeoSeries/GeoDataFrame (its CRS and index are used), shapely geometries, GeoJSON
        mappings or a FeatureCollection. Polygons, MultiPolygons and Points.
    stats
        Names from :data:`STATISTICS` and quantiles ``pNN`` (e.g. ``"p10"``).
    crs
        CRS of ``geometries`` when they carry none. Geometries are reprojected to the
        raster's CRS explicitly; a geometry CRS is never assumed.
    weights
        ``"exact"`` (covered fraction of each cell, exactextract semantics),
        ``"center"`` (cells whose centre is inside) or ``"all_touched"`` (every cell
        sharing area with the polygon, weight 1).
    area_weighted
        On geographic grids, also weight cells by their true area (mean, median, std,
        quantiles, majority, minority, distribution; ``sum``, ``count`` and coverage stay
        coverage-weighted so they match exactextract).
    classes
        Class values (or ``{code: name}``) of the ``distribution``; default from
        ``attrs["class_names"]`` / ``attrs["flag_values"]``.
    nodata
        Missing-value marker; default from rioxarray (``_FillValue``/``nodata`` attrs).
        NaN is always missing.
    max_window_cells
        Cell budget of one task's window (geometries are grouped in Hilbert order so each
        task reads a compact window); bounds the memory of a task.

    Returns
    -------
    xarray.Dataset
        A vector data cube: dimension ``geometry`` with a CRS-aware xvec GeometryIndex
        (the input index kept as a coordinate), the leading dims of ``obj``, and per
        variable ``v``: ``v`` along ``zonal_statistics`` (numeric statistics),
        ``v_distribution`` along ``class`` (if asked), ``v_coverage_fraction`` and
        ``v_pixel_count``. For a DataArray the extra variables drop the ``v_`` prefix.
        Dask-backed: nothing is computed until ``.compute()``.
    """
    import xarray as xr
    import xvec  # noqa: F401  (registers .xvec)

    if weights not in _MODES:
        raise ValueError(f"weights must be one of {sorted(_MODES)}, got {weights!r}")
    spec = _parse_stats(stats)
    variables = _variables(obj)
    geo = _prepare_geometries(obj, geometries, crs)
    row_factor = _row_factor(obj, geo.transform, geo.raster_crs, area_weighted)
    class_codes = (
        np.unique(np.concatenate([_classes_of(v, classes) for v in variables.values()]))
        if spec.distribution
        else np.empty(0)
    )
    nodatas = [nodata if nodata is not None else v.rio.nodata for v in variables.values()]
    arrays = _lazy_arrays(
        geo, list(variables.values()), nodatas, row_factor, _MODES[weights], spec, class_codes,
        max_window_cells,
    )  # fmt: skip
    out = _to_dataset(geo, variables, isinstance(obj, xr.DataArray), spec, arrays, class_codes)
    if spec.distribution:
        names_map = _class_names(classes, variables.values())
        if names_map:
            labels = [str(names_map.get(int(c), c)) for c in class_codes]
            out = out.assign_coords(class_name=("class", labels))
    out.attrs.update(_provenance(obj, weights=weights, area_weighted=area_weighted))
    return out.xvec.set_geom_indexes("geometry", crs=geo.series.crs)


def _variables(obj: xr.DataArray | xr.Dataset) -> dict[Hashable, xr.DataArray]:
    import xarray as xr

    if isinstance(obj, xr.DataArray):
        variables = {obj.name if obj.name is not None else "value": obj}
    else:
        variables = dict(obj.data_vars)
    variables = {k: v for k, v in variables.items() if "y" in v.dims and "x" in v.dims}
    if not variables:
        raise ValueError("obj has no variable with 'y' and 'x' dimensions")
    return variables


@dataclass(frozen=True)
class _Geometries:
    """Geometries on the raster grid: kinds, point cells and windows in cell units."""

    series: gpd.GeoSeries
    shapes: npt.NDArray[Any]  # in the raster CRS
    raster_crs: Any
    transform: Affine
    kinds: npt.NDArray[np.int64]
    points: npt.NDArray[np.int64]
    bounds: npt.NDArray[np.int64]

    @property
    def empty(self) -> npt.NDArray[np.bool_]:
        return self.kinds == K.KIND_EMPTY


def _prepare_geometries(obj: xr.DataArray | xr.Dataset, geometries: Any, crs: Any) -> _Geometries:
    raster_crs = _raster_crs(obj)
    transform, shape = _grid(obj)
    series = _as_geoseries(geometries, crs)
    native = series.to_crs(raster_crs) if not series.crs.equals(raster_crs) else series
    kinds = np.where(
        native.is_empty.to_numpy(),
        K.KIND_EMPTY,
        np.where((native.geom_type == "Point").to_numpy(), K.KIND_POINT, K.KIND_POLYGON),
    ).astype(np.int64)
    bounds = _bounds_in_cells(native, _cell_units(transform), shape)
    kinds[(bounds[:, 1] <= bounds[:, 0]) | (bounds[:, 3] <= bounds[:, 2])] = K.KIND_EMPTY
    return _Geometries(
        series, native.to_numpy(), raster_crs, transform, kinds,
        _point_cells(native, transform), bounds,
    )  # fmt: skip


def _lazy_arrays(
    geo: _Geometries,
    variables: list[xr.DataArray],
    nodatas: list[float | None],
    row_factor: npt.NDArray[np.float64],
    mode: int,
    spec: _Stats,
    class_codes: npt.NDArray[np.float64],
    max_window_cells: int,
) -> list[Any]:
    """One delayed kernel call per partition, assembled into dask arrays in input order.

    Returns ``stats (g, layers, codes)``, ``count (g, layers)``, ``pixels (g, layers)`` and
    ``dist (g, layers, classes)``, where layers run over every variable's leading dims.
    """
    import dask
    import dask.array as dsa

    to_cells = _cell_units(geo.transform)
    layers = sum(int(np.prod(v.shape[:-2])) for v in variables)
    active = np.flatnonzero(~geo.empty)
    budget = max(max_window_cells // max(layers, 1), 1)
    groups = partition(geo.bounds[active], max_cells=budget) if active.size else []
    parts: list[tuple[npt.NDArray[np.intp], Any]] = []
    for members, (r0, r1, c0, c1) in groups:
        idx = active[members]
        local = np.column_stack([geo.points[idx, 0] - r0, geo.points[idx, 1] - c0])
        local[geo.kinds[idx] != K.KIND_POINT] = -1
        offset = np.array([c0, r0])
        rings = polygon_rings(geo.shapes[idx], lambda xy, o=offset: to_cells(xy) - o)
        windows = [v.data[..., r0:r1, c0:c1] for v in variables]
        task = dask.delayed(_window_task, pure=True)(
            windows, nodatas, geo.kinds[idx], local, rings, row_factor[r0:r1], mode, spec,
            class_codes,
        )  # fmt: skip
        parts.append((idx, task))
    ngeom = len(geo.kinds)
    empty = np.flatnonzero(geo.empty)
    inverse = np.argsort(np.concatenate([idx for idx, _ in parts] + [empty]))
    outputs = [
        ((layers, spec.codes.size), np.float64, K.empty_stats(spec.codes)),
        ((layers,), np.float64, 0.0),
        ((layers,), np.int64, 0),
        ((layers, class_codes.size), np.float64, 0.0),
    ]
    arrays = []
    for k, (tail, dtype, fill) in enumerate(outputs):
        pieces = [dsa.from_delayed(task[k], (len(idx), *tail), dtype=dtype) for idx, task in parts]
        if empty.size:
            filled = np.broadcast_to(np.asarray(fill, dtype=dtype), (empty.size, *tail))
            pieces.append(dsa.from_array(filled))
        arrays.append(dsa.concatenate(pieces, axis=0)[inverse] if ngeom else pieces)
    return arrays


def _to_dataset(
    geo: _Geometries,
    variables: dict[Hashable, xr.DataArray],
    is_array: bool,
    spec: _Stats,
    arrays: list[Any],
    class_codes: npt.NDArray[np.float64],
) -> xr.Dataset:
    """Name, reshape and label the kernel outputs as a vector data cube."""
    import dask.array as dsa
    import shapely
    import xarray as xr

    stats_arr, count_arr, pixel_arr, dist_arr = arrays
    ngeom = len(geo.kinds)
    areas = shapely.area(geo.shapes)  # planar, in the raster CRS, like the cell area
    cell_area = abs(geo.transform.a * geo.transform.e)
    scale = np.divide(cell_area, areas, out=np.zeros(ngeom), where=areas > 0)
    coverage = dsa.clip(count_arr * scale[:, None], 0.0, 1.0)
    # float noise of summing many cell fractions: within COVERAGE_NOISE of full is full
    coverage = dsa.where(coverage > 1.0 - COVERAGE_NOISE, 1.0, coverage)
    is_point = (geo.kinds == K.KIND_POINT)[:, None]
    coverage = dsa.where(is_point, (pixel_arr > 0).astype(np.float64), coverage)
    keep = list(range(1, spec.codes.size))  # column 0 is the count coverage needs
    data_vars: dict[Hashable, Any] = {}
    coords: dict[Hashable, Any] = {"geometry": geo.series.to_numpy()}
    offset = 0
    for name, var in variables.items():
        dims, dim_coords = _layers(var)
        sizes = [var.sizes[d] for d in dims]
        sl = slice(offset, offset + int(np.prod(sizes)))
        offset = sl.stop
        coords.update(dim_coords)

        def shaped(a: Any, *tail: int, sl: slice = sl, sizes: list[int] = sizes) -> Any:
            return a[:, sl].reshape(ngeom, *sizes, *tail)

        prefix = "" if is_array else f"{name}_"
        if keep:
            stats_dims = ("geometry", *dims, "zonal_statistics")
            data_vars[name] = (
                stats_dims,
                shaped(stats_arr[..., keep], len(keep)),
                _kept(var.attrs),
            )
        if spec.distribution:
            dist_dims = ("geometry", *dims, "class")
            data_vars[f"{prefix}distribution"] = (dist_dims, shaped(dist_arr, class_codes.size))
        data_vars[f"{prefix}coverage_fraction"] = (("geometry", *dims), shaped(coverage))
        data_vars[f"{prefix}pixel_count"] = (("geometry", *dims), shaped(pixel_arr))
    if keep:
        coords["zonal_statistics"] = spec.labels
    if spec.distribution:
        coords["class"] = class_codes
    coords[geo.series.index.name or "index"] = ("geometry", geo.series.index.to_numpy())
    return xr.Dataset(data_vars, coords=coords)


_KEPT_ATTRS = (
    "units",
    "long_name",
    "standard_name",
    "license",
    "citation",
    "valid_range",
    "cas_provenance",
)


def _kept(attrs: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
    return {k: v for k, v in attrs.items() if k in _KEPT_ATTRS}


def _class_names(classes: Any, variables: Any) -> Mapping[int, str] | None:
    if isinstance(classes, Mapping):
        return classes
    for var in variables:
        if isinstance(var.attrs.get("class_names"), Mapping):
            return var.attrs["class_names"]
    return None


def _provenance(
    obj: xr.DataArray | xr.Dataset, *, weights: str, area_weighted: bool
) -> dict[Hashable, Any]:
    attrs = _kept(obj.attrs)
    attrs["zonal_weights"] = weights
    attrs["zonal_area_weighted"] = int(area_weighted)
    return attrs
