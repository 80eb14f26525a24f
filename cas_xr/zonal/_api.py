"""``zonal()``: exact zonal statistics of a raster cube as an xvec vector data cube."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidArgumentError
from cas_xr.zonal import _codes as K
from cas_xr.zonal._callables import split_stats, with_reductions
from cas_xr.zonal._cells import same_grid
from cas_xr.zonal._codes import COVERAGE_NOISE
from cas_xr.zonal._dims import on_grid
from cas_xr.zonal._encoding import Encoding, encoding_of
from cas_xr.zonal._inputs import (
    ALIASES,
    STATISTICS,
    Geometries,
    Stats,
    carry_coords,
    classes_of,
    layers_of,
    parse_stats,
    prepare_geometries,
    row_factors,
    variables_of,
    window_cells_of,
)
from cas_xr.zonal._options import (
    check_weights_mode,
    cover_factors,
    kernel_options,
    weights_raster_of,
)
from cas_xr.zonal._tasks import Grid, Setup, lazy_arrays

_MODES = {"exact": K.MODE_EXACT, "center": K.MODE_CENTER, "all_touched": K.MODE_ALL_TOUCHED}

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.zonal._callables import Reduction

__all__ = [
    "ALIASES",
    "STATISTICS",
    "ZonalRun",
    "geometry_cube",
    "geometry_indexed",
    "zonal",
    "zonal_run",
]


def zonal(
    obj: xr.DataArray | xr.Dataset,
    geometries: Any,
    stats: str | Sequence[str] | Any = ("mean",),
    *,
    crs: Any = None,
    weights: str = "exact",
    area_weighted: bool = False,
    weights_raster: xr.DataArray | None = None,
    min_coverage_frac: float = 0.0,
    coverage_weight: str = "fraction",
    default_value: float | None = None,
    default_weight: float | None = None,
    quantile_dtype: str = "float64",
    classes: npt.ArrayLike | Mapping[int, str] | None = None,
    nodata: float | None = None,
    chunks: int | None = None,
    x_dim: Hashable | None = None,
    y_dim: Hashable | None = None,
    eager_cells: int = 0,
    add_stats: Mapping[str, Callable[..., Any]] | None = None,
) -> xr.Dataset:
    """Zonal statistics of a raster cube over polygons, lines and points, lazily.

    Parameters
    ----------
    obj
        A DataArray or Dataset with two spatial dimensions, in any position, and a CRS
        readable by rioxarray. The spatial dimensions are ``x_dim``/``y_dim`` when given,
        else found by rioxarray (``x``/``y``, ``longitude``/``latitude``, CF ``axis`` or
        ``standard_name``, ``rio.set_spatial_dims``), odc-geo (``lon``/``lat``,
        ``xc``/``yc``) or CF ``units`` (``degrees_east``/``degrees_north``). Other
        dimensions (``time``, ``band`` ...) are kept, in their order. Nothing is computed
        to reorder them. Their coordinates are the cells' centres, evenly spaced, running
        either way (an irregular axis raises; an axis of one cell takes its size from
        the cube's transform, ``rio.write_transform``). On a geographic grid, longitudes
        may run 0..360 or -180..180 whatever the convention of the geometries: each part
        of a geometry is counted where the grid holds it.
    geometries
        A GeoSeries/GeoDataFrame (its CRS and index are used), shapely geometries, GeoJSON
        mappings or a FeatureCollection. Polygons, MultiPolygons, LineStrings,
        MultiLineStrings, Points, MultiPoints, and GeometryCollections of one of these
        kinds (polygons dissolved; a collection mixing kinds raises).
    stats
        Names from :data:`STATISTICS`, other tools' names from :data:`ALIASES` (e.g.
        exactextract's ``stdev``, ``variety``, ``frac``; rasterstats' ``nodata``; xvec's
        ``var``), and quantiles: ``pNN`` or ``pNN.N`` (``p10``, ``p2.5``, ``p0``..``p100``),
        ``percentile_NN`` or ``quantile(q=0.9)``. ``docs/statistics.md`` defines each.
        Also user reductions: callables and ``(name, func[, kwargs])`` tuples, run on
        each geometry's cells (see ``docs/statistics.md``, "User reductions"): one
        required argument, ``func(values, axis=-1, **kwargs)`` as xvec's; two or three,
        ``func(values, coverage[, weights])`` as exactextract's. Their results follow
        the named statistics along ``zonal_statistics``, labelled by name (a function's
        ``__name__``). A tuple whose ``func`` is a string, as xvec takes it
        (``("q90", "quantile", {"q": 0.9})``, ``("m", "mean")``), asks for the statistic
        that xarray method names (``mean``, ``sum``, ``min``, ``max``, ``median``,
        ``std``, ``var``, ``count``, ``quantile``) or one of the names above, computed
        like the named ones and labelled by the tuple's name, before the functions;
        keyword arguments that would give other numbers (``skipna=False``, ``ddof=1``)
        raise.
    crs
        CRS of ``geometries`` when they carry none. Geometries are reprojected to the
        raster's CRS explicitly; a geometry CRS is never assumed.
    weights
        ``"exact"`` (covered fraction of each cell, exactextract semantics),
        ``"center"`` (cells whose centre is inside) or ``"all_touched"`` (every cell
        sharing area with the polygon, weight 1). For lines, ``"exact"`` weighs a cell
        by the line's length inside it (CRS units), and a MultiPoint by its number of
        points there; ``"all_touched"`` gives weight 1 to each cell a line runs through,
        ``"center"`` to the cells of its thin raster as GDAL draws it (rasterstats'
        default), both to each cell holding a point (see ``docs/statistics.md``).
    area_weighted
        On geographic grids, also weight cells by their true area (mean, median, std,
        quantiles, majority, minority, distribution; ``sum``, ``count`` and coverage stay
        coverage-weighted so they match exactextract). Excludes ``coverage_weight``;
        lines and MultiPoints refuse it.
    weights_raster
        A DataArray on the same grid (same x/y coordinates), with one layer or as many as
        the values, for ``weighted_mean``, ``weighted_sum``, ``weighted_stdev``,
        ``weighted_variance`` and ``weighted_distribution`` (exactextract's
        ``weighted_frac``): each cell counts with coverage times weight. Its missing-value
        cells (nodata, NaN) make these statistics NaN unless ``default_weight`` is given.
        The other statistics ignore it, as exactextract's do. It is also the
        ``weights`` of three-argument reductions ``func(values, coverage, weights)``
        (exactextract's), masked where missing.
    min_coverage_frac
        Cells covered by less than this fraction are left out of everything (statistics,
        ``pixel_count``, ``coverage_fraction``), as exactextract's option.
    coverage_weight
        exactextract's: what a cell's coverage counts for in every statistic (``count``
        and ``sum`` included): ``"fraction"`` (default), ``"none"`` (1 for any covered
        cell), ``"area_cartesian"`` (fraction times cell area in CRS units),
        ``"area_spherical_m2"``/``"area_spherical_km2"`` (fraction times the cell's area on
        exactextract's sphere, geographic grids only). ``coverage_fraction`` and
        ``pixel_count`` do not change.
    default_value
        A value for nodata and NaN cells, which then count as valid cells (exactextract's
        ``default_value``); cells outside the raster stay outside.
    default_weight
        A weight for the cells where ``weights_raster`` is nodata or NaN.
    quantile_dtype
        ``"float64"`` (default): quantiles and the median are interpolated in float64.
        ``"raster"``: on an integer raster they are rounded down to its
        integers, as exactextract returns them (values 1, 2, 3, 4: median 2, not 2.5).
    classes
        Class values (or ``{code: name}``) of the ``distribution``; default from
        ``attrs["class_names"]`` / ``attrs["flag_values"]``.
    nodata
        Missing-value marker, in stored units (before any scaling), compared with the
        stored values in their own dtype. Default: the ``_FillValue`` and
        ``missing_value`` attributes, else rioxarray's ``rio.nodata``. NaN is always
        missing. Values still packed (``scale_factor``/``add_offset`` in ``attrs``, as
        ``rioxarray.open_rasterio`` and ``xarray`` with ``mask_and_scale=False`` leave
        them; rioxarray's per-band ``scales``/``offsets`` along ``band``) are unpacked
        to float64 lazily, inside the tasks; data already decoded are used as they are.
        Floats carrying these attributes are unpacked only when their ``encoding`` shows
        they were read so (``open_rasterio(masked=True)``); after arithmetic, which keeps
        the attributes, packed and scaled values look alike and raise.
    chunks
        Side, in cells, of the window one task reads: geometries are grouped in Hilbert
        order into windows of at most ``chunks x chunks`` cells (shared among the layers),
        which bounds a task's memory; a geometry larger than that is read whole. Default:
        the input's Dask chunks along ``y`` and ``x`` (aligned with the source tiles),
        else 2048.
    x_dim, y_dim
        Names of the spatial dimensions, when the rules above cannot tell (e.g.
        ``x_dim="easting", y_dim="northing"``).
    eager_cells
        Compute at once, in this thread, when the geometries' windows hold at most this
        many cells in all (over every layer): the cells are read together and the kernel
        runs without a Dask graph, for small requests where building the graph would
        cost more than the work. The result then holds numpy arrays. Default 0: lazy.
    add_stats
        rasterstats' ``{name: func}``: ``func(masked)`` on a 2-D masked array of the
        geometry's cells (masked outside them and where missing), per layer; results
        join ``zonal_statistics`` as ``name``.

    Returns
    -------
    xarray.Dataset
        A vector data cube: dimension ``geometry`` with a CRS-aware xvec GeometryIndex
        (the input index kept as a coordinate), the leading dims of ``obj``, and per
        variable ``v``: ``v`` along ``zonal_statistics`` (numeric statistics),
        ``v_distribution`` along ``class`` (if asked), ``v_coverage_fraction`` and
        ``v_pixel_count``. For a DataArray the extra variables drop the ``v_`` prefix.
        Coordinates of ``obj`` along its leading dims (a band's ``common_name``) are
        kept, as xarray's reductions keep them; those on ``y``/``x`` and scalar ones
        are not, nor one named like a part of the result.
        Dask-backed: nothing is computed until ``.compute()``.

    Raises
    ------
    cas_xr.errors.CasError
        Every error raised on purpose derives from it and from the matching built-in:
        ``MissingDimensionError`` (no recognisable x/y; names the dims and
        ``x_dim=``/``y_dim=``), ``MissingCRSError`` (raster or geometries without a CRS),
        ``InvalidStatisticError`` (``stats`` not a name or list of names),
        ``InvalidGeometryError``, ``InvalidArgumentError``, ``UnsupportedGridError``.
    """
    return zonal_run(
        obj, geometries, stats, crs=crs, weights=weights, area_weighted=area_weighted,
        weights_raster=weights_raster, min_coverage_frac=min_coverage_frac,
        coverage_weight=coverage_weight, default_value=default_value,
        default_weight=default_weight, quantile_dtype=quantile_dtype, classes=classes,
        nodata=nodata, chunks=chunks, x_dim=x_dim, y_dim=y_dim, eager_cells=eager_cells,
        add_stats=add_stats,
    ).cube()  # fmt: skip


@dataclass(frozen=True)
class ZonalRun:
    """What :func:`zonal` computes, before it labels it as a vector data cube.

    :meth:`cube` is what :func:`zonal` returns; :meth:`labelled` gives its variables
    and coordinates without building xarray objects, for the engine, which reads the
    arrays and nothing else (a small request would pay more for the cube than for its
    statistics). Without user reductions they are the cube's very arrays.
    """

    obj: xr.DataArray | xr.Dataset  # on the grid: dims x and y
    geo: Geometries
    variables: dict[Hashable, xr.DataArray]
    encodings: list[Encoding]
    spec: Stats
    arrays: list[Any]  # the kernel's outputs, see cas_xr.zonal._tasks.lazy_arrays
    class_codes: npt.NDArray[np.float64]
    floor: list[bool]  # per variable: quantiles rounded down (quantile_dtype="raster")
    reductions: list[Reduction]  # the functions (a statistic's name is in spec)
    named: bool  # whether named statistics were asked (else the reductions replace them)
    window_cells: int
    weights: str
    area_weighted: bool
    weights_raster: xr.DataArray | None
    coverage_weight: str
    classes: Any
    dims: tuple[Hashable | None, Hashable | None]  # x_dim, y_dim

    def labelled(self) -> tuple[dict[Hashable, Any], dict[Hashable, Any]]:
        """The cube's variables ``{name: (dims, array[, attrs])}`` and coordinates.

        Those of the named statistics: the reductions are added by :meth:`cube`.
        """
        import xarray as xr

        return _labelled(
            self.geo, self.variables, isinstance(self.obj, xr.DataArray), self.spec,
            self.arrays, self.class_codes, self.floor,
        )  # fmt: skip

    def cube(self) -> xr.Dataset:
        """The vector data cube (see :func:`zonal`)."""
        import xarray as xr

        data_vars, coords = self.labelled()
        out = xr.Dataset(data_vars, coords=coords)
        if self.reductions:
            x_dim, y_dim = self.dims
            out = with_reductions(
                out, self.geo, self.variables, self.encodings, _MODES[self.weights],
                self.reductions, self.window_cells, replace=not self.named,
                weights_raster=None if self.weights_raster is None
                else same_grid(self.obj, self.weights_raster, x_dim=x_dim, y_dim=y_dim),
            )  # fmt: skip
        if self.spec.distribution or self.spec.weighted_distribution:
            names_map = _class_names(self.classes, self.variables.values())
            if names_map:
                labels = [str(names_map.get(int(c), c)) for c in self.class_codes]
                out = out.assign_coords(class_name=("class", labels))
        out.attrs.update(
            _provenance(self.obj, weights=self.weights, area_weighted=self.area_weighted)
        )
        if self.coverage_weight != "fraction":
            out.attrs["zonal_coverage_weight"] = self.coverage_weight
        return geometry_indexed(out, self.geo.series.crs)


def zonal_run(
    obj: xr.DataArray | xr.Dataset,
    geometries: Any,
    stats: str | Sequence[str] | Any = ("mean",),
    *,
    crs: Any = None,
    weights: str = "exact",
    area_weighted: bool = False,
    weights_raster: xr.DataArray | None = None,
    min_coverage_frac: float = 0.0,
    coverage_weight: str = "fraction",
    default_value: float | None = None,
    default_weight: float | None = None,
    quantile_dtype: str = "float64",
    classes: npt.ArrayLike | Mapping[int, str] | None = None,
    nodata: float | None = None,
    chunks: int | None = None,
    x_dim: Hashable | None = None,
    y_dim: Hashable | None = None,
    eager_cells: int = 0,
    add_stats: Mapping[str, Callable[..., Any]] | None = None,
    checked: bool = False,
) -> ZonalRun:
    """:func:`zonal` up to its kernel's outputs (same arguments), unlabelled.

    ``checked`` says that ``geometries`` is a GeoSeries with a CRS whose geometries
    passed the checks of :func:`~cas_xr.zonal._inputs.prepare_geometries` already (the
    engine's plan checks each, and hands on only those that pass): they are not checked
    again.
    """
    import xvec  # noqa: F401  (registers .xvec)

    from cas_xr.zonal._kernel import family_of

    check_weights_mode(weights, _MODES)
    names, reductions = split_stats(stats, add_stats)
    # xvec's ("q90", "quantile", {"q": 0.9}): the kernel's statistics, labelled by the tuple
    renamed = [(r.name, r.statistic) for r in reductions if r.statistic is not None]
    reductions = [r for r in reductions if r.statistic is None]
    named = bool(names or renamed)
    spec = parse_stats(names if named or not reductions else "count", renamed=renamed)
    options = kernel_options(
        min_coverage_frac=min_coverage_frac, coverage_weight=coverage_weight,
        area_weighted=area_weighted, default_value=default_value,
        default_weight=default_weight, quantile_dtype=quantile_dtype,
    )  # fmt: skip
    obj = on_grid(obj, x_dim=x_dim, y_dim=y_dim)
    variables = variables_of(obj)
    for var in variables.values():
        family_of(var.dtype)  # real numbers, else an error now rather than in a task
    layers = sum(int(np.prod(v.shape[:-2])) for v in variables.values())
    weights_var = weights_raster_of(weights_raster, obj, spec, layers=layers)
    geo = prepare_geometries(
        obj, geometries, crs, mode=_MODES[weights], area_weighted=area_weighted, checked=checked
    )
    rows, cols = obj.sizes["y"], obj.sizes["x"]
    t = geo.transform
    grid = Grid(
        row_factors(obj, t, geo.raster_crs, area_weighted),
        cover_factors(coverage_weight, t, rows, geo.raster_crs),
        np.asarray(t.f + t.e * (np.arange(rows) + 0.5), dtype=np.float64),
        np.asarray(t.c + t.a * (np.arange(cols) + 0.5), dtype=np.float64),
    )
    class_codes = (
        np.unique(np.concatenate([classes_of(v, classes) for v in variables.values()]))
        if spec.distribution or spec.weighted_distribution
        else np.empty(0)
    )
    encodings = [encoding_of(v, nodata) for v in variables.values()]
    setup = Setup(
        _MODES[weights], spec, class_codes, options,
        None if weights_var is None else encoding_of(weights_var, None),
    )  # fmt: skip
    window_cells = window_cells_of(variables.values(), chunks)
    arrays = lazy_arrays(
        geo, list(variables.values()), encodings, weights_var, grid, setup, window_cells,
        eager_cells=eager_cells,
    )  # fmt: skip
    floor = [
        quantile_dtype == "raster" and v.dtype.kind in "iub" and not e.packed
        for v, e in zip(variables.values(), encodings, strict=True)
    ]
    return ZonalRun(
        obj, geo, variables, encodings, spec, arrays, class_codes, floor, reductions,
        named, window_cells, weights, area_weighted, weights_raster, coverage_weight,
        classes, (x_dim, y_dim),
    )  # fmt: skip


def geometry_indexed(cube: xr.Dataset, crs: Any) -> xr.Dataset:
    """``cube.xvec.set_geom_indexes("geometry", crs=crs)`` for a new cube.

    The same steps, without the accessor: it first looks for geometries in every
    coordinate, which a small request pays twice per call.
    """
    from pyproj import CRS
    from xvec import GeometryIndex

    out = cube.drop_indexes("geometry")
    out["geometry"].attrs["crs"] = CRS.from_user_input(crs)
    return out.set_xindex("geometry", GeometryIndex, crs=crs)


def geometry_cube(data_vars: Mapping[Any, Any], coords: Mapping[Any, Any], crs: Any) -> xr.Dataset:
    """``geometry_indexed(xr.Dataset(data_vars, coords=coords), crs)``, for less.

    The same cube. ``coords["geometry"]`` holds the geometries; a coordinate is an array
    (along the dim of its name) or ``(dims, array)``. xarray would pass every object
    array (geometries, labels) through pandas to look for dates in it, and index the
    geometries twice (by value, then by xvec); here the geometries and arrays of strings
    are taken as they are (pandas would give them back unchanged), and each dimension
    coordinate is indexed once.
    """
    import xarray as xr
    from pyproj import CRS
    from xarray.indexes import PandasIndex
    from xvec import GeometryIndex

    crs = CRS.from_user_input(crs)
    variables: dict[Hashable, xr.Variable] = {}
    indexes: dict[Hashable, Any] = {}
    for name, value in coords.items():
        dims, data = value if isinstance(value, tuple) else (name, value)
        data = np.asarray(data)
        as_is = data.dtype == object and (
            name == "geometry" or all(isinstance(v, str) for v in data.ravel())
        )
        var = xr.Variable(dims, data, fastpath=as_is)
        if var.dims != (name,):
            variables[name] = var
            continue
        if name == "geometry":
            var.attrs["crs"] = crs
            index = GeometryIndex.from_variables({name: var}, options={"crs": crs})
        else:
            index = PandasIndex.from_variables({name: var}, options={})
        indexes[name] = index
        variables.update(index.create_variables({name: var}))
    return xr.Dataset(data_vars, coords=xr.Coordinates(variables, indexes=indexes))


def _labelled(
    geo: Geometries,
    variables: dict[Hashable, xr.DataArray],
    is_array: bool,
    spec: Stats,
    arrays: list[Any],
    class_codes: npt.NDArray[np.float64],
    floor: list[bool],
) -> tuple[dict[Hashable, Any], dict[Hashable, Any]]:
    """Name, reshape and label the kernel outputs: the cube's variables and coordinates.

    ``floor`` tells, per variable, whether its quantiles are rounded down to integers
    (``quantile_dtype="raster"`` on an integer raster).
    """
    import dask.array as dsa

    stats_arr, count_arr, pixel_arr, dist_arr, wdist_arr = arrays
    ngeom = len(geo.kinds)
    scale = geo.scale
    lazy = isinstance(count_arr, dsa.Array)
    xp: Any = dsa if lazy else np

    def column(a: npt.NDArray[Any]) -> Any:  # aligned with the outputs: nothing to rechunk
        return (
            dsa.from_array(a[:, None], chunks=(count_arr.chunks[0], (1,))) if lazy else a[:, None]
        )

    coverage = xp.clip(count_arr * column(scale), 0.0, 1.0)
    # float noise of summing many cell fractions: within COVERAGE_NOISE of full is full
    coverage = xp.where(coverage > 1.0 - COVERAGE_NOISE, 1.0, coverage)
    is_point = column(geo.kinds == K.KIND_POINT)
    coverage = xp.where(is_point, (pixel_arr > 0).astype(np.float64), coverage)
    keep = list(range(1, spec.codes.size))  # column 0 is the count coverage needs
    data_vars: dict[Hashable, Any] = {}
    coords: dict[Hashable, Any] = {"geometry": geo.series.to_numpy()}
    offset = 0
    quantiles = spec.quantile_columns
    for (name, var), down in zip(variables.items(), floor, strict=True):
        dims, dim_coords = layers_of(var)
        sizes = [var.sizes[d] for d in dims]
        sl = slice(offset, offset + int(np.prod(sizes)))
        offset = sl.stop
        coords.update(dim_coords)

        def shaped(a: Any, *tail: int, sl: slice = sl, sizes: list[int] = sizes) -> Any:
            return a[:, sl].reshape(ngeom, *sizes, *tail)

        prefix = "" if is_array else f"{name}_"
        if keep:
            stats_dims = ("geometry", *dims, "zonal_statistics")
            numbers = shaped(stats_arr[..., keep], len(keep))
            if down and quantiles.any():
                numbers = xp.where(quantiles, xp.floor(numbers), numbers)
            data_vars[name] = (stats_dims, numbers, _kept(var.attrs))
        dist_dims = ("geometry", *dims, "class")
        if spec.distribution:
            data_vars[f"{prefix}distribution"] = (dist_dims, shaped(dist_arr, class_codes.size))
        if spec.weighted_distribution:
            data_vars[f"{prefix}weighted_distribution"] = (
                dist_dims,
                shaped(wdist_arr, class_codes.size),
            )
        data_vars[f"{prefix}coverage_fraction"] = (("geometry", *dims), shaped(coverage))
        data_vars[f"{prefix}pixel_count"] = (("geometry", *dims), shaped(pixel_arr))
    if keep:
        coords["zonal_statistics"] = spec.labels
    if spec.distribution or spec.weighted_distribution:
        coords["class"] = class_codes
    label = geo.series.index.name or "index"
    if label in coords or label in data_vars or label == "class_name":
        raise InvalidArgumentError(
            f"the geometries' index is named {label!r}, a name the result gives to a "
            f"dimension or variable of its own ({', '.join(map(str, [*coords, *data_vars]))}); "
            "rename the index first, e.g. geometries.rename_axis('id')"
        )
    coords[label] = ("geometry", geo.series.index.to_numpy())
    carry_coords(variables, coords, data_vars)
    return data_vars, coords


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
