"""``extract_cube`` and ``extract_table``: zonal statistics for any number of geometries."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cas_xr.config import Settings, get_settings
from cas_xr.engine import Report, Result, compute, make_plan, warn_summary
from cas_xr.frontends._table import table_of
from cas_xr.models import AggregationMethod, TimeRange

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = [
    "BATCH_SIZE",
    "compute_request",
    "extract_cube",
    "extract_table",
    "extract_table_reporting",
]

#: Geometries per batch unless told otherwise.
BATCH_SIZE = 20_000

_Datasets = str | Sequence[str | Mapping[str, Any]] | Mapping[str, Any]
_Stat = str | AggregationMethod | Callable[..., Any] | tuple[Any, ...]
_Aggregation = _Stat | Sequence[_Stat]
_TimeRangeLike = TimeRange | dict[str, Any] | Sequence[Any] | None


def compute_request(
    geometries: Any,
    dataset_ids: Any,
    aggregation: _Aggregation,
    time_range: _TimeRangeLike,
    batch_size: int,
    *,
    settings: Settings | None = None,
    weights_raster: str | xr.DataArray | None = None,
    report: Report | None = None,
    columns: Sequence[Any] = (),
) -> Result:
    """Plan and compute; warn about failed and non-GOOD results (at the user's line).

    ``settings`` replaces the current settings for this request (e.g. to force area
    weighting); by default :func:`~cas_xr.config.get_settings`. ``weights_raster`` is
    the weights dataset of ``weighted_*`` statistics (see :func:`extract_cube`).
    ``report(done, total)`` is called as results are made, batch by batch, instead of
    showing a progress bar; an exception it raises stops the request. ``columns`` are
    the input columns a table keeps, which a cube's dimensions may not be named after.
    """
    plan = make_plan(
        geometries, dataset_ids, aggregation=aggregation, time_range=time_range,
        batch_size=batch_size, settings=settings or get_settings(),
        weights_raster=weights_raster, columns=columns,
    )  # fmt: skip
    result = compute(plan, report=report)
    summary = json.loads(result.cube.attrs["cas_summary"])
    warn_summary(
        json.loads(result.cube.attrs["cas_failures"]), result.flagged,
        failed=summary["failed"], results=summary["results"],
        values=sum(summary["quality"].values()),
    )  # fmt: skip
    return result


def extract_cube(
    geometries: Any,
    dataset_ids: _Datasets,
    *,
    aggregation: _Aggregation = "mean",
    time_range: _TimeRangeLike = None,
    batch_size: int = BATCH_SIZE,
    weights_raster: str | xr.DataArray | None = None,
) -> xr.Dataset:
    """Zonal statistics of any number of geometries as an xvec vector data cube (blocking).

    Geometries are cut into spatially compact batches (Hilbert order); each batch reads
    only the data around it, and batches run on the active ``distributed.Client``, the
    ``dask_scheduler`` setting, or local threads, with a progress bar (``progress``
    setting). Results are cached per (dataset, geometry, statistics, time range, weights,
    weights raster), on disk too when ``result_cache_dir`` is set, so a re-run computes
    only what is missing; a request with user reductions (Python functions) is never
    cached (no key can tell an edited function from the old one). A geometry or dataset
    that fails gets MISSING results and a :class:`BatchFailureWarning`; the batch
    completes.

    Parameters
    ----------
    geometries
        A GeoDataFrame or GeoSeries with a CRS (the geometries' CRS; never assumed).
        Polygons, lines, points (single and multi) and GeometryCollections of one kind.
    dataset_ids
        One id or several, e.g. ``["sample:elevation", "sample:clay_0-5cm"]``, and your
        own cubes beside them as ``{name: DataArray}`` entries, e.g.
        ``["sample:elevation", {"my_dem": dem}]`` (or a mapping ``{name: id or
        DataArray}``). A cube is a DataArray with a CRS and two spatial dimensions under
        any usual names (``y``/``x``, ``lat``/``lon``, ``latitude``/``longitude``, CF
        metadata), in any position; its other dimensions (``time``, ``band``,
        ``member`` ...), any number in any order, are kept in the results. A dimension
        without a coordinate is labelled ``0..n-1``. An ``xarray.Dataset`` gives one cube
        per variable, ``"<name>.<variable>"``. A cube's name prefixes its results, and it
        gets the same quality flags, failure isolation and caching (keyed on
        ``dask.base.tokenize`` of the cube) as catalog datasets.
    aggregation
        One statistic or several: every name ``cas_xr.zonal.zonal``'s ``stats=`` takes
        (``mean``, ``median``, ``min``, ``max``, ``std``, ``variance``, ``sum``,
        ``count``, ``majority``, ``minority``, ``unique``, ``range``, quantiles such as
        ``p90`` or ``quantile(q=0.9)``, ``distribution`` (area fraction of each class),
        ``weighted_mean``/``weighted_sum``/``weighted_stdev``/``weighted_variance`` and
        ``weighted_frac`` (with ``weights_raster``), the aliases of exactextract,
        rasterstats and xvec ...; see ``docs/statistics.md``), and user reductions as
        ``zonal`` takes them: callables (``func(values, axis=-1)`` as xvec's,
        ``func(values, coverage[, weights])`` as exactextract's) and ``(name, func,
        kwargs)`` tuples, labelled by name, after the named statistics. They give the
        numbers ``zonal(cube, geometries, stats=[func])`` gives; they run in this process
        (or on its Dask cluster), so the CLI and the service do not take them.
    time_range
        ``(start, end)``, a dict or a :class:`~cas_xr.models.TimeRange`: the steps of
        temporal datasets to keep (every step is kept, per step). Static datasets ignore it.
    batch_size
        Geometries per unit of work: it bounds the memory of a task and is the step of
        progress, caching and retries.
    weights_raster
        The weights of ``weighted_*`` statistics and three-argument reductions: a dataset
        id, e.g. ``"sample:land_cover"``, opened around each batch like the values (or a
        DataArray with a CRS). It must be static and on the values' grid: the same CRS,
        cell size and cell edges (its extent may differ; cells it does not cover have no
        weight). It is never resampled: another grid raises ``InvalidArgumentError``.
        Ignored when no statistic needs it.

    Returns
    -------
    xarray.Dataset
        Dimension ``geometry`` with a CRS-aware xvec index (the input index kept as a
        coordinate), ``zonal_statistics``, ``time`` when a dataset is temporal, and the
        other dimensions of the cubes, under their names (cubes sharing a dimension
        share its labels: the union of theirs; a cube's coverage is NaN, its quality
        MISSING, at a label it lacks). Per dataset id ``d``: ``d``, ``d_distribution``
        and ``d_weighted_distribution`` (if asked), ``d_coverage_fraction``,
        ``d_pixel_count`` and ``d_quality`` (CF flags: ``flag_values``/``flag_meanings``),
        each along the dataset's own dimensions ``(geometry, time, band ...)``.
        Variables carry units, license, citation and provenance (``cas_provenance``: the
        items or files the call's geometries touched); the cube's attrs carry
        the settings used, ``cas_summary`` (counts of results computed, cached, failed
        and per quality flag) and ``cas_failures`` (JSON). Save it with
        ``cube.xvec.encode_cf().to_zarr(path)``.

    Raises
    ------
    TypeError, ValueError
        If ``geometries`` is not a GeoDataFrame/GeoSeries with a CRS, or a statistic is
        unknown.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        If a dataset id is malformed or unknown (before any work).
    LimitExceededError
        If more datasets are asked than ``max_datasets_per_request``.
    InvalidArgumentError
        If a ``weighted_*`` statistic has no ``weights_raster``, or the weights raster is
        not on a dataset's grid (raised when the batch around it is opened); if a cube's
        dimension takes a name of the results (``geometry``, ``zonal_statistics``,
        ``index``, ``class``, ``coverage_fraction`` ..., an index level, a dataset or its
        columns ``<dataset>_...``; in a table also an input column).
    MissingDimensionError
        If a cube's spatial dimensions cannot be told (rename them ``y``/``x``).
    """
    return compute_request(
        geometries, dataset_ids, aggregation, time_range, batch_size,
        weights_raster=weights_raster,
    ).cube  # fmt: skip


def extract_table(
    geometries: Any,
    dataset_ids: _Datasets,
    *,
    aggregation: _Aggregation = "mean",
    time_range: _TimeRangeLike = None,
    batch_size: int = BATCH_SIZE,
    weights_raster: str | xr.DataArray | None = None,
) -> gpd.GeoDataFrame:
    """Zonal statistics of any number of geometries as a GeoDataFrame (blocking).

    The same computation as :func:`extract_cube` (see it for the parameters, the
    scheduler, caching and failures), as a table. ``aggregation`` takes every statistic
    ``cas_xr.zonal.zonal``'s ``stats=`` takes, user reductions included (callables and
    ``(name, func, kwargs)`` tuples, in-process only, never cached), e.g.
    ``extract_table(geoms, ["sample:elevation"], aggregation=["mean", np.nanmedian])``;
    the ``weighted_*`` statistics take their weights from ``weights_raster``, a dataset
    on the same grid: ``extract_table(geoms, ["sample:elevation"],
    aggregation="weighted_mean", weights_raster="sample:land_cover")``.

    Returns
    -------
    geopandas.GeoDataFrame
        The input's index, columns and geometry, plus per dataset id ``d``:
        ``d_<statistic>`` for each statistic, ``d_distribution_<class>`` and
        ``d_weighted_distribution_<class>`` (if asked), ``d_coverage_fraction``,
        ``d_pixel_count`` and ``d_quality``. With a temporal
        dataset the table is long: one row per (geometry, time step), indexed by
        (input index, ``time``); a cube's other dimensions join them, e.g. rows per
        (geometry, time, ``member``) indexed by (input index, ``time``, ``member``), so
        ``table["my_dem_mean"].unstack("band")`` gives a column per band. A dataset
        without one of these dimensions repeats along it (a static one along ``time``).
        ``attrs["cas_xr"]`` holds units, license, citation and provenance per dataset
        (the items or files the call's geometries touched), the settings, the summary
        and the failures; ``to_parquet`` keeps it in the GeoParquet file.
    """
    result = compute_request(
        geometries, dataset_ids, aggregation, time_range, batch_size,
        weights_raster=weights_raster, columns=_kept_columns(geometries),
    )  # fmt: skip
    return table_of(result.plan, result.cube, geometries)


def extract_table_reporting(
    geometries: Any,
    dataset_ids: _Datasets,
    report: Report,
    *,
    aggregation: _Aggregation = "mean",
    time_range: _TimeRangeLike = None,
    batch_size: int = BATCH_SIZE,
) -> gpd.GeoDataFrame:
    """:func:`extract_table`, calling ``report(done, total)`` instead of showing a bar.

    ``report`` is called with the count of results (geometry x dataset) made so far,
    cached ones first, as each batch of ``batch_size`` geometries is done; an exception
    it raises stops the request and is raised here.
    """
    result = compute_request(
        geometries, dataset_ids, aggregation, time_range, batch_size, report=report,
        columns=_kept_columns(geometries),
    )  # fmt: skip
    return table_of(result.plan, result.cube, geometries)


def _kept_columns(frame: Any) -> list[Any]:
    """The input columns a table keeps (and its geometry column's name)."""
    import geopandas as gpd

    return list(frame.columns) if isinstance(frame, gpd.GeoDataFrame) else []
