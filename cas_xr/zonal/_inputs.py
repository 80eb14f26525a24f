"""Validated inputs of :func:`~cas_xr.zonal.zonal`: statistics, geometries and the grid."""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidGeometryError
from cas_xr.zonal import _codes as K

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr
    from affine import Affine

__all__ = [
    "DEFAULT_CHUNKS",
    "STATISTICS",
    "Geometries",
    "Stats",
    "cell_units",
    "classes_of",
    "layers_of",
    "parse_stats",
    "prepare_geometries",
    "row_factors",
    "variables_of",
    "window_cells_of",
]

#: Statistic names accepted by :func:`zonal` (plus ``pNN`` quantiles such as ``p10``).
STATISTICS = (
    "mean", "median", "min", "max", "std", "sum", "count", "majority", "minority", "unique",
    "distribution",
)  # fmt: skip
_CODES = {
    "count": K.COUNT, "sum": K.SUM, "mean": K.MEAN, "min": K.MIN, "max": K.MAX, "std": K.STD,
    "median": K.QUANTILE, "majority": K.MAJORITY, "minority": K.MINORITY, "unique": K.UNIQUE,
}  # fmt: skip
_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_EARTH_RADIUS_M = 6_371_008.8
#: Window side (cells) of a task over an in-memory (NumPy-backed) raster.
DEFAULT_CHUNKS = 2048


@dataclass(frozen=True)
class Stats:
    labels: list[str]
    codes: npt.NDArray[np.int64]
    qs: npt.NDArray[np.float64]
    distribution: bool


def parse_stats(stats: str | Sequence[str]) -> Stats:
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
    return Stats(labels, np.asarray(codes, np.int64), np.asarray(qs), wants_distribution)


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
    if series.crs.is_geographic:
        spans = (series.bounds["maxx"] - series.bounds["minx"]).to_numpy()
        wide = np.flatnonzero(spans > 180.0)
        if wide.size:
            raise InvalidGeometryError(
                f"geometries at positions {wide[:10].tolist()} span more than 180 degrees of "
                "longitude, so they probably cross the antimeridian; split them at +/-180"
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


def row_factors(
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


def cell_units(transform: Affine) -> Any:
    def to_cells(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        u = (xy[:, 0] - transform.c) / transform.a
        v = (xy[:, 1] - transform.f) / transform.e
        return np.column_stack([u, v])

    return to_cells


def layers_of(var: xr.DataArray) -> tuple[list[Hashable], dict[Hashable, Any]]:
    """The leading (non-spatial) dims of a variable and their coordinates."""
    lead = [d for d in var.dims if d not in ("y", "x")]
    return lead, {d: var[d].values if d in var.coords else np.arange(var.sizes[d]) for d in lead}


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
            cell_units(transform)(shapely.get_coordinates(series[is_point].to_numpy())), 9
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
    r0 = np.clip(np.floor(v0), 0, shape[0]).astype(np.int64)
    r1 = np.clip(np.floor(v1) + 1, 0, shape[0]).astype(np.int64)
    c0 = np.clip(np.floor(u0), 0, shape[1]).astype(np.int64)
    c1 = np.clip(np.floor(u1) + 1, 0, shape[1]).astype(np.int64)
    return np.column_stack([r0, r1, c0, c1])


def classes_of(var: xr.DataArray, classes: Any) -> npt.NDArray[np.float64]:
    if classes is None:
        classes = var.attrs.get("class_names") or var.attrs.get("flag_values")
    if classes is None:
        raise ValueError(
            f"'distribution' needs the class values of {var.name!r}: pass classes=[...] (or a "
            "{code: name} mapping), or set attrs['class_names'] / attrs['flag_values']"
        )
    codes = list(classes.keys()) if isinstance(classes, Mapping) else list(np.ravel(classes))
    return np.unique(np.asarray(codes, dtype=np.float64))


def window_cells_of(variables: Any, chunks: int | None) -> int:
    if chunks is not None:
        if chunks < 1:
            raise ValueError(f"chunks must be a positive number of cells, got {chunks}")
        return chunks * chunks
    for var in variables:
        if var.chunks is not None:
            sizes = dict(zip(var.dims, var.chunks, strict=True))
            return max(sizes["y"]) * max(sizes["x"])
    return DEFAULT_CHUNKS * DEFAULT_CHUNKS


def variables_of(obj: xr.DataArray | xr.Dataset) -> dict[Hashable, xr.DataArray]:
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
class Geometries:
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


def prepare_geometries(obj: xr.DataArray | xr.Dataset, geometries: Any, crs: Any) -> Geometries:
    raster_crs = _raster_crs(obj)
    transform, shape = _grid(obj)
    series = _as_geoseries(geometries, crs)
    native = series.to_crs(raster_crs) if not series.crs.equals(raster_crs) else series
    is_point = (native.geom_type == "Point").to_numpy()
    kinds = np.where(is_point, K.KIND_POINT, K.KIND_POLYGON).astype(np.int64)
    bounds = _bounds_in_cells(native, cell_units(transform), shape)
    points = _point_cells(native, transform)
    outside = np.where(
        is_point,
        (points[:, 0] < 0)
        | (points[:, 0] >= shape[0])
        | (points[:, 1] < 0)
        | (points[:, 1] >= shape[1]),
        (bounds[:, 1] <= bounds[:, 0]) | (bounds[:, 3] <= bounds[:, 2]),
    )
    kinds[outside | native.is_empty.to_numpy()] = K.KIND_EMPTY
    return Geometries(series, native.to_numpy(), raster_crs, transform, kinds, points, bounds)
