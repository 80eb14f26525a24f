"""Validated inputs of :func:`~cas_xr.zonal.zonal`: statistics, geometries and the grid."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import (
    InvalidArgumentError,
    InvalidGeometryError,
    InvalidStatisticError,
    MissingCRSError,
    MissingDimensionError,
)
from cas_xr.zonal import _codes as K
from cas_xr.zonal._kinds import (
    SUPPORTED,
    among,
    coverage_scale,
    homogeneous,
    kinds_of,
    mixed_collections,
    point_cells,
    snapped_points,
)
from cas_xr.zonal._transform import grid_transform

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr
    from affine import Affine

__all__ = [
    "ALIASES",
    "DEFAULT_CHUNKS",
    "STATISTICS",
    "Geometries",
    "Stats",
    "carry_coords",
    "cell_units",
    "classes_of",
    "coords_along",
    "layers_of",
    "parse_stats",
    "prepare_geometries",
    "row_factors",
    "variables_of",
    "window_cells_of",
]

#: Statistic names accepted by :func:`zonal`, plus quantiles: ``pNN`` or ``pNN.N`` (e.g.
#: ``p10``, ``p2.5``, ``p100``), ``percentile_NN`` (rasterstats) and ``quantile(q=0.9)``
#: (exactextract). Aliases of other tools' names are listed in ``ALIASES``.
STATISTICS = (
    "mean", "median", "min", "max", "std", "sum", "count", "majority", "minority", "unique",
    "distribution", "variance", "coefficient_of_variation", "range", "nodata_count",
    "nan_count", "min_center_x", "min_center_y", "max_center_x", "max_center_y",
    "weighted_mean", "weighted_sum", "weighted_stdev", "weighted_variance",
    "weighted_distribution",
)  # fmt: skip
#: Other tools' names (exactextract, rasterstats, xvec) and the statistic each one means.
ALIASES = {
    "stdev": "std", "var": "variance", "variety": "unique", "mode": "majority",
    "nodata": "nodata_count", "nan": "nan_count", "frac": "distribution",
    "weighted_frac": "weighted_distribution", "weighted_std": "weighted_stdev",
    "weighted_var": "weighted_variance",
}  # fmt: skip
_CODES = {
    "count": K.COUNT, "sum": K.SUM, "mean": K.MEAN, "min": K.MIN, "max": K.MAX, "std": K.STD,
    "median": K.QUANTILE, "majority": K.MAJORITY, "minority": K.MINORITY, "unique": K.UNIQUE,
    "variance": K.VARIANCE, "coefficient_of_variation": K.CV, "range": K.RANGE,
    "nodata_count": K.NODATA_COUNT, "nan_count": K.NAN_COUNT, "min_center_x": K.MIN_X,
    "min_center_y": K.MIN_Y, "max_center_x": K.MAX_X, "max_center_y": K.MAX_Y,
    "weighted_mean": K.WEIGHTED_MEAN, "weighted_sum": K.WEIGHTED_SUM,
    "weighted_stdev": K.WEIGHTED_STD, "weighted_variance": K.WEIGHTED_VARIANCE,
}  # fmt: skip
_CLASS_OUTPUTS = ("distribution", "weighted_distribution")
_PERCENTILE = re.compile(r"^(?:p|percentile_)(\d{1,3}(?:\.\d+)?)$")
_QUANTILE = re.compile(r"^quantile\(\s*(?:q\s*=\s*)?(\d*\.?\d+(?:e-?\d+)?)\s*\)$")
_EARTH_RADIUS_M = 6_371_008.8
#: Window side (cells) of a task over an in-memory (NumPy-backed) raster.
DEFAULT_CHUNKS = 2048


@dataclass(frozen=True)
class Stats:
    """Parsed statistics: labels and codes of the numeric ones, and the class outputs.

    ``names`` are the names as the engine keys them: lower case, aliases of the class
    outputs (``frac``, ``weighted_frac``) replaced by ``distribution`` and
    ``weighted_distribution``.
    """

    labels: list[str]
    codes: npt.NDArray[np.int64]
    qs: npt.NDArray[np.float64]
    distribution: bool
    weighted_distribution: bool = False
    names: tuple[str, ...] = ()

    @property
    def needs_weights(self) -> bool:
        """Whether a weights raster is needed (a ``weighted_*`` statistic)."""
        return self.weighted_distribution or bool(among(self.codes, K.WEIGHTED_STATISTICS).any())

    @property
    def quantile_columns(self) -> npt.NDArray[np.bool_]:
        """Which numeric statistics (``labels``) are quantiles."""
        return np.asarray(self.codes[1:] == K.QUANTILE)


_ACCEPTED = (
    f"a statistic name or a list of names, each one of {', '.join(STATISTICS)}, an alias "
    f"({', '.join(ALIASES)}) or a quantile such as 'p10', 'p2.5', 'p100', 'percentile_90' "
    "or 'quantile(q=0.9)'"
)


def _quantile_of(name: str) -> float | None:
    """The quantile (0..1) a name spells, or None when it spells none."""
    if name == "median":
        return 0.5
    if match := _PERCENTILE.match(name):
        q = float(match[1]) / 100
    elif match := _QUANTILE.match(name):
        q = float(match[1])
    else:
        return None
    if not 0.0 <= q <= 1.0:
        raise InvalidStatisticError(
            f"{name!r} asks for a quantile outside 0..1 (percentiles 0..100); give e.g. 'p90' "
            "or 'quantile(q=0.9)'"
        )
    return q


def _names(stats: Any) -> list[str]:
    if isinstance(stats, str):
        return [stats]
    if isinstance(stats, Iterable) and not isinstance(stats, Mapping | bytes):
        names = list(stats)
        wrong = [n for n in names if not isinstance(n, str)]
        if not wrong:
            return names
        raise InvalidStatisticError(
            f"stats holds {wrong[0]!r} ({type(wrong[0]).__name__}); give {_ACCEPTED}"
        )
    raise InvalidStatisticError(f"stats={stats!r} ({type(stats).__name__}); give {_ACCEPTED}")


def _code(name: str) -> tuple[int, float]:
    """The kernel's code and quantile of a numeric statistic (name or alias, lower case)."""
    meaning = ALIASES.get(name, name)
    q = _quantile_of(meaning)
    if q is not None:
        return K.QUANTILE, q
    if meaning in _CODES:
        return _CODES[meaning], 0.0
    hint = ""
    if name == "quantile":  # xvec's stats="quantile" with zonal_stats(..., q=0.9)
        hint = "; a quantile names its q: 'quantile(q=0.9)', or ('q90', 'quantile', {'q': 0.9})"
    raise InvalidStatisticError(f"unknown statistic {name!r}; give {_ACCEPTED}{hint}")


def parse_stats(stats: str | Sequence[str], *, renamed: Sequence[tuple[str, str]] = ()) -> Stats:
    """The statistics asked, as codes for the kernel.

    Parameters
    ----------
    stats
        A name or a list of names: :data:`STATISTICS`, :data:`ALIASES` or quantiles.
    renamed
        ``(label, name)`` pairs of numeric statistics labelled otherwise (xvec's
        ``("q90", "quantile", {"q": 0.9})``, see :mod:`cas_xr.zonal._methods`): after
        ``stats``, in their order, with their labels as given; not in ``names``.

    Returns
    -------
    Stats
        Labels (the names as given, lower case) and codes of the numeric statistics,
        behind a ``count`` the coverage needs; whether class outputs are asked.

    Raises
    ------
    InvalidStatisticError
        For an unknown name, a quantile outside 0..1 or an empty list.
    """
    names = _names(stats)
    if not names and not renamed:
        raise InvalidStatisticError(f"stats is empty; give {_ACCEPTED}")
    labels: list[str] = []
    codes: list[int] = [K.COUNT]  # always first: coverage needs it
    qs: list[float] = [0.0]
    canonical: list[str] = []
    for name in dict.fromkeys(n.strip().lower() for n in names):
        meaning = ALIASES.get(name, name)
        canonical.append(meaning if meaning in _CLASS_OUTPUTS else name)
        if meaning in _CLASS_OUTPUTS:
            continue
        code, q = _code(name)
        codes.append(code)
        qs.append(q)
        labels.append(name)
    for label, name in renamed:
        code, q = _code(name.strip().lower())
        codes.append(code)
        qs.append(q)
        labels.append(label)
    return Stats(
        labels,
        np.asarray(codes, np.int64),
        np.asarray(qs),
        "distribution" in canonical,
        "weighted_distribution" in canonical,
        tuple(dict.fromkeys(canonical)),
    )


def _series(geometries: Any) -> gpd.GeoSeries:
    """The geometries as a GeoSeries (with the CRS they carry, if any)."""
    import geopandas as gpd
    import shapely

    if isinstance(geometries, gpd.GeoDataFrame):
        return geometries.geometry
    if isinstance(geometries, gpd.GeoSeries):
        return geometries
    if isinstance(geometries, Mapping) and geometries.get("type") == "FeatureCollection":
        try:
            return gpd.GeoSeries.from_features(geometries["features"])
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise InvalidGeometryError(f"cannot read the FeatureCollection ({err})") from None
    if isinstance(geometries, shapely.Geometry | Mapping):
        return gpd.GeoSeries([_shape(geometries)])
    if isinstance(geometries, Iterable) and not isinstance(geometries, str | bytes):
        return gpd.GeoSeries([_shape(g) for g in geometries])
    raise InvalidGeometryError(
        f"geometries={str(geometries)[:80]!r} ({type(geometries).__name__}); give a "
        "GeoSeries/GeoDataFrame, shapely geometries, GeoJSON mappings or a FeatureCollection"
    )


def _as_geoseries(geometries: Any, crs: Any) -> gpd.GeoSeries:
    import pyproj
    import shapely

    series = _series(geometries)
    if crs is not None:
        try:
            wanted = pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as err:
            raise InvalidArgumentError(
                f"crs={crs!r} is not a CRS ({err}); use e.g. 'EPSG:4326' or a WKT string"
            ) from None
        if series.crs is None:
            series = series.set_crs(wanted)
        elif not series.crs.equals(wanted):
            raise InvalidArgumentError(
                f"the geometries carry CRS {series.crs.to_string()} but crs={crs!r} was given; "
                "drop crs= or reproject the geometries (GeoSeries.to_crs)"
            )
    if series.crs is None:
        raise MissingCRSError(
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
    bad = kinds - set(SUPPORTED)
    if bad:
        raise InvalidGeometryError(
            f"geometry types {sorted(bad)} are not supported; use one of {', '.join(SUPPORTED)}"
        )
    mixed = np.flatnonzero(mixed_collections(series.to_numpy()))
    if mixed.size:
        raise InvalidGeometryError(
            f"GeometryCollections at positions {mixed[:10].tolist()} mix polygons, lines and "
            "points, whose areas, lengths and counts cannot be added; split them into one "
            "geometry per kind (e.g. GeoSeries.explode() then dissolve by kind) and compute "
            "each on its own"
        )
    if series.crs.is_geographic:
        from cas_xr.models import crosses_antimeridian

        across = np.flatnonzero(crosses_antimeridian(series.to_numpy()))
        if across.size:
            raise InvalidGeometryError(
                f"geometries at positions {across[:10].tolist()} cross the antimeridian (a "
                "ring or line has an edge jumping more than 180 degrees of longitude); split "
                "them at +/-180 into MultiPolygons or MultiLineStrings"
            )
    invalid = np.flatnonzero(~series.is_valid.to_numpy())
    if invalid.size:
        reasons = [shapely.is_valid_reason(series.iloc[i]) for i in invalid[:3]]
        raise InvalidGeometryError(
            f"{invalid.size} invalid geometries (positions {invalid[:10].tolist()}): {reasons}; "
            "repair them explicitly, e.g. GeoSeries.make_valid(), before computing statistics"
        )
    return series


def _shape(geometry: Any) -> Any:
    import shapely

    if geometry is None or isinstance(geometry, shapely.Geometry):
        return geometry
    try:
        return shapely.geometry.shape(geometry)
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.ShapelyError) as err:
        raise InvalidGeometryError(
            f"cannot read {str(geometry)[:80]!r} as a geometry ({err}); give shapely "
            "geometries, GeoJSON mappings, a FeatureCollection or a GeoSeries"
        ) from None


@functools.lru_cache(maxsize=64)
def _pyproj_crs(wkt: str) -> Any:
    """``pyproj.CRS.from_wkt(wkt)``, parsed once per CRS."""
    import pyproj

    return pyproj.CRS.from_wkt(wkt)


def _same_crs(crs: Any, raster_crs: Any) -> bool:
    """``crs.equals(raster_crs)`` for a pyproj CRS and a raster's (rasterio) CRS.

    pyproj would parse the raster's CRS on every comparison, which a small request pays.
    """
    return bool(crs.equals(_pyproj_crs(raster_crs.to_wkt())))


def _raster_crs(obj: xr.DataArray | xr.Dataset) -> Any:
    import rioxarray  # noqa: F401  (registers .rio)
    from rioxarray.exceptions import RioXarrayError

    try:
        crs = obj.rio.crs
    except RioXarrayError as err:  # e.g. variables with different grid mappings
        raise MissingCRSError(
            f"cannot read the raster's CRS ({err}); compute each variable on its own"
        ) from None
    if crs is not None:
        return crs
    names = _grid_mappings(obj)
    carried = [n for n in names if n in getattr(obj, "data_vars", {})]
    if carried:  # a CF grid mapping read as a data variable (xarray's decode_coords=True)
        crs = obj.set_coords(carried).rio.crs
        if crs is not None:
            return crs
    hint = ""
    if names:
        hint = (
            f"; its grid_mapping attribute names {names[0]!r}, which it does not carry: open "
            f"the file with xr.open_dataset(..., decode_coords='all') (or "
            f"ds.set_coords({names[0]!r})) before selecting a variable"
        )
    raise MissingCRSError(
        "the raster has no CRS; set one with obj.rio.write_crs('EPSG:...') (cas_xr never "
        f"assumes a CRS){hint}"
    )


def _grid_mappings(obj: xr.DataArray | xr.Dataset) -> list[str]:
    """The CF grid mapping variables the cube or its variables name."""
    owners = [obj, *getattr(obj, "data_vars", {}).values()]
    found = [o.encoding.get("grid_mapping", o.attrs.get("grid_mapping")) for o in owners]
    # CF's extended form "crs: x y other: lat lon" names several: take the names
    names = [n.rstrip(":") for f in found if isinstance(f, str) for n in f.split()[:1]]
    return list(dict.fromkeys(names))


def _grid(obj: xr.DataArray | xr.Dataset) -> tuple[Affine, tuple[int, int]]:
    """The affine transform and ``(rows, cols)`` of a cube with ``y``/``x`` dims."""
    return grid_transform(obj), (obj.sizes["y"], obj.sizes["x"])


def row_factors(
    obj: xr.DataArray | xr.Dataset, transform: Affine, crs: Any, area_weighted: bool
) -> npt.NDArray[np.float64]:
    rows = obj.sizes["y"]
    if not area_weighted:
        return np.ones(rows)
    if not crs.is_geographic:
        raise InvalidArgumentError(
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


def coords_along(
    obj: xr.DataArray | xr.Dataset, dims: Iterable[Hashable]
) -> Iterator[tuple[Hashable, xr.DataArray]]:
    """The non-index coordinates of ``obj`` that lie along some of ``dims`` and no other.

    The ones a reduction over the other dims keeps: a band's ``common_name`` along
    ``band``, a scene's cloud cover along ``time``; not scalar ones (``spatial_ref``).
    """
    kept = set(dims)
    for name, coord in obj.coords.items():
        if name not in obj.dims and coord.dims and set(coord.dims) <= kept:
            yield name, coord


def carry_coords(
    variables: Mapping[Hashable, xr.DataArray],
    coords: dict[Hashable, Any],
    data_vars: Mapping[Hashable, Any],
) -> None:
    """Add to ``coords`` the non-index coordinates of ``variables`` along their kept dims.

    As xarray's reductions keep them (:func:`coords_along`). Coordinates on a spatial
    dimension (the cells are reduced) and scalar ones (``spatial_ref``: the raster's, not
    the geometries') are not carried, nor one whose name the result already gives to
    something of its own.
    """
    for var in variables.values():
        for name, coord in coords_along(var, layers_of(var)[0]):
            if name not in coords and name not in data_vars:
                coords[name] = (coord.dims, np.asarray(coord.values))


def _bounds_in_cells(
    shapes: npt.NDArray[Any], to_cells: Any, shape: tuple[int, int]
) -> npt.NDArray[np.int64]:
    import shapely

    b = np.nan_to_num(shapely.bounds(shapes))  # empty geometries: 0-size windows
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
        raise InvalidArgumentError(
            f"'distribution' needs the class values of {var.name!r}: pass classes=[...] (or a "
            "{code: name} mapping), or set attrs['class_names'] / attrs['flag_values']"
        )
    codes = list(classes.keys()) if isinstance(classes, Mapping) else list(np.ravel(classes))
    try:
        return np.unique(np.asarray(codes, dtype=np.float64))
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"the classes of {var.name!r} must be numbers (the stored codes), got {codes[:5]}"
        ) from None


def window_cells_of(variables: Any, chunks: int | None) -> int:
    if chunks is not None:
        if chunks < 1:
            raise InvalidArgumentError(f"chunks must be a positive number of cells, got {chunks}")
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
    kept = {k: v for k, v in variables.items() if "y" in v.dims and "x" in v.dims}
    if not kept:
        raise MissingDimensionError(
            "no variable of the Dataset has both spatial dimensions; select or build one"
        )
    elsewhere = [k for k, v in variables.items() if k not in kept and _on_a_grid(v)]
    if elsewhere:  # rasters on another grid: leaving them out would lose them unseen
        raise InvalidArgumentError(
            f"variables {elsewhere} lie on other spatial dimensions than the grid of "
            f"{sorted(map(str, kept))}; compute each grid in its own call, e.g. "
            f"zonal(ds[{[str(k) for k in elsewhere]}], ...)"
        )
    return kept


def _on_a_grid(var: xr.DataArray) -> bool:
    """Whether a variable has two spatial dimensions of its own (a raster on another grid)."""
    from cas_xr.zonal._dims import spatial_dims

    if var.ndim < 2:
        return False
    try:
        spatial_dims(var)
    except MissingDimensionError:
        return False
    return True


@dataclass(frozen=True)
class Geometries:
    """Geometries on the raster grid: kinds, point cells and windows in cell units."""

    series: gpd.GeoSeries
    shapes: npt.NDArray[Any]  # in the raster CRS, on the grid's longitudes
    areas: npt.NDArray[np.float64]  # in the raster CRS, before any longitude shift
    raster_crs: Any
    transform: Affine
    kinds: npt.NDArray[np.int64]
    points: npt.NDArray[np.int64]
    bounds: npt.NDArray[np.int64]
    scale: npt.NDArray[np.float64]  # coverage fraction per unit of valid weight

    @property
    def empty(self) -> npt.NDArray[np.bool_]:
        return self.kinds == K.KIND_EMPTY


def prepare_geometries(
    obj: xr.DataArray | xr.Dataset,
    geometries: Any,
    crs: Any,
    *,
    mode: int = K.MODE_EXACT,
    area_weighted: bool = False,
    checked: bool = False,
) -> Geometries:
    """The geometries on the grid of ``obj``.

    ``checked``: ``geometries`` is a GeoSeries with a CRS whose geometries passed these
    checks before (none missing, of a supported kind, valid, no mixed collection, none
    across the antimeridian); they are not checked again.
    """
    import shapely

    from cas_xr.zonal._longitudes import match_longitudes

    raster_crs = _raster_crs(obj)
    transform, shape = _grid(obj)
    series = geometries if checked else _as_geoseries(geometries, crs)
    native = series if _same_crs(series.crs, raster_crs) else series.to_crs(raster_crs)
    shapes = homogeneous(native.to_numpy())
    areas = shapely.area(shapes)  # planar, in the raster CRS, like the cell area
    if raster_crs.is_geographic:
        edges = sorted((transform.c, transform.c + transform.a * shape[1]))
        shapes = match_longitudes(shapes, edges[0], edges[1])
    empty = shapely.is_empty(shapes)
    kinds = kinds_of(shapes)
    linear = among(kinds, (K.KIND_LINE, K.KIND_MULTIPOINT)) & ~empty
    if area_weighted and linear.any():
        raise InvalidArgumentError(
            f"area_weighted=True weights cells by their area, which means nothing for the "
            f"lines or point sets at positions {np.flatnonzero(linear)[:10].tolist()}; drop "
            "area_weighted, or reproject raster and lines to an equidistant CRS"
        )
    shapes = snapped_points(shapes, kinds, transform)
    is_point = (kinds == K.KIND_POINT) & ~empty
    bounds = _bounds_in_cells(shapes, cell_units(transform), shape)
    if transform.e > 0:  # a line on a row edge belongs to the row south of it, above it
        bounds[linear, 0] = np.maximum(bounds[linear, 0] - 1, 0)
    if transform.a < 0:  # and one on a column edge to the column east of it, left of it
        bounds[linear, 2] = np.maximum(bounds[linear, 2] - 1, 0)
    points = np.full((len(shapes), 2), -1, dtype=np.int64)
    if is_point.any():
        points[is_point] = point_cells(shapes[is_point], transform)
    outside = np.where(
        is_point,
        (points[:, 0] < 0)
        | (points[:, 0] >= shape[0])
        | (points[:, 1] < 0)
        | (points[:, 1] >= shape[1]),
        (bounds[:, 1] <= bounds[:, 0]) | (bounds[:, 3] <= bounds[:, 2]),
    )
    kinds[outside | empty] = K.KIND_EMPTY
    scale = coverage_scale(shapes, kinds, areas, transform, mode)
    return Geometries(series, shapes, areas, raster_crs, transform, kinds, points, bounds, scale)
