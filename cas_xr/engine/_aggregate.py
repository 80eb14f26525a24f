"""From a dataset to zonal values: the pieces the engine and the batch API share.

:func:`open_window` opens a dataset lazily around geometries; :func:`zonal_values` turns
its zonal cube into the CAS response values with the contract's temporal rules: numeric
statistics over several time steps are the mean of the per-step values (the timestamp is
the last step used); class statistics (majority, minority, unique, distribution) pool the
cells of every step, for categorical and continuous data alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.config import Settings
from cas_xr.errors import LimitExceededError, SourceError
from cas_xr.models import AggregationMethod, TimeRange, Variable

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.catalog import Connector
    from cas_xr.engine._scheduler import Scheduler

__all__ = [
    "CLASS_STATISTICS",
    "NO_READ_FUSION",
    "GeometryValue",
    "class_codes",
    "class_label",
    "failure_kind",
    "open_window",
    "zonal_values",
]

CLASS_STATISTICS = frozenset(
    {
        AggregationMethod.MAJORITY,
        AggregationMethod.MINORITY,
        AggregationMethod.UNIQUE,
        AggregationMethod.DISTRIBUTION,
    }
)
_MAX_CLASSES = 100_000
_TIE_RTOL = 1e-9  # class shares this close are tied (majority/minority: smallest code wins)
#: Dask settings under which to build zonal graphs: each window task is a ``Delayed`` whose
#: array arguments are optimised on their own, and low-level fusion would then fuse a source
#: chunk's read into every window that slices it, decoding the chunk once per window.
NO_READ_FUSION = {"optimization.fuse.active": False}
# pad the box so that cells east/south of an edge-touching point (the point rule) are read
_BBOX_PAD_DEG = 1e-6


@dataclass(frozen=True)
class GeometryValue:
    """The statistic of one geometry, ready for an AttributeResult."""

    value: float | dict[str, float] | None
    coverage_fraction: float
    pixel_count: int
    timestamp: datetime | None
    degraded: bool = False


def _timestamp(value: Any) -> datetime:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()


def open_window(
    connector: Connector,
    name: str,
    bounds: tuple[float, float, float, float],
    time_range: TimeRange | None,
) -> xr.DataArray:
    """Open dataset ``name`` lazily over the lon/lat ``bounds`` of some geometries.

    Parameters
    ----------
    connector, name
        The dataset, as resolved by the catalog.
    bounds
        ``(min_lon, min_lat, max_lon, max_lat)`` of the geometries; padded slightly so
        that a point on the edge of the box still reads the cell it belongs to.
    time_range
        The steps to keep (temporal datasets).

    Returns
    -------
    xarray.DataArray
        See :meth:`cas_xr.catalog.Connector.open`.
    """
    x0, y0, x1, y1 = bounds
    pad = _BBOX_PAD_DEG
    box = (float(x0) - pad, float(y0) - pad, float(x1) + pad, float(y1) + pad)
    return connector.open(name, bbox=box, time_range=time_range)


def failure_kind(err: BaseException) -> str:
    """The machine-readable kind of a run-time failure (``SourceError.kind`` or the class)."""
    return err.kind if isinstance(err, SourceError) else type(err).__name__


def class_codes(
    da: xr.DataArray, variable: Variable, scheduler: Scheduler | None = None
) -> npt.NDArray[np.float64]:
    """The class codes of a class statistic: the catalog's, else the distinct values of ``da``.

    Parameters
    ----------
    da
        The dataset's cube.
    variable
        Catalog metadata (class names).
    scheduler
        Where to find the distinct values of ``da`` when they are needed (default: Dask's
        current scheduler).

    Raises
    ------
    LimitExceededError
        If continuous data hold too many distinct values for a class statistic.
    """
    if variable.class_names:
        return np.asarray(sorted(variable.class_names), dtype=np.float64)
    import dask.array

    data = da.data
    if dask.is_dask_collection(data):  # the distinct values, found where the chunks are
        lazy = dask.array.unique(data)
        (distinct,) = dask.compute(lazy) if scheduler is None else scheduler.compute(lazy)
    else:
        distinct = np.unique(data)
    values = np.asarray(distinct, dtype=np.float64)
    nodata = da.attrs.get("nodata")
    classes = values[~np.isnan(values) & (values != nodata if nodata is not None else True)]
    if classes.size > _MAX_CLASSES:
        raise LimitExceededError(
            f"{classes.size} distinct values: too many for a class statistic of continuous data "
            f"(at most {_MAX_CLASSES}); use mean, median, min, max, std or sum"
        )
    return classes


def class_label(code: float, class_names: dict[int, str] | None) -> str:
    """The class name of ``code``, else the code as text (``"10"``, not ``"10.0"``)."""
    key = int(code) if float(code).is_integer() else code
    if class_names and isinstance(key, int) and key in class_names:
        return class_names[key]
    return str(key)


def _class_value(
    fractions: npt.NDArray[np.float64],
    classes: npt.NDArray[np.float64],
    method: AggregationMethod,
    class_names: dict[int, str] | None,
) -> float | dict[str, float]:
    present = fractions > 0
    if method is AggregationMethod.DISTRIBUTION:
        return {
            class_label(c, class_names): float(f)
            for c, f in zip(classes[present], fractions[present], strict=True)
        }
    if method is AggregationMethod.UNIQUE:
        return float(present.sum())
    # classes are sorted, so the first of the tied shares is the smallest code; shares that
    # differ by rounding only (summed in another order, e.g. over another window) are ties
    shares = fractions[present]
    best = shares.max() if method is AggregationMethod.MAJORITY else shares.min()
    pick = np.flatnonzero(np.abs(shares - best) <= _TIE_RTOL * best)[0]
    return float(classes[present][pick])


def zonal_values(
    da: xr.DataArray,
    geometries: list[Any],
    variable: Variable,
    aggregation: AggregationMethod,
    settings: Settings,
    *,
    group_size: int | None = None,
) -> Iterator[list[GeometryValue]]:
    """Compute the CAS statistic of every geometry over ``da``, a group at a time (blocking).

    Parameters
    ----------
    da
        The dataset's cube, ``(y, x)`` or ``(time, y, x)`` with the steps to use.
    geometries
        Shapely geometries in ``da``'s CRS.
    variable
        Catalog metadata (data type, class names).
    aggregation
        The requested statistic.
    settings
        ``zonal_weights`` and ``area_weighted`` apply.
    group_size
        Compute this many geometries at a time (default: all at once), so that a caller can
        report progress between groups. The groups share the window and its classes, so
        the values do not depend on the grouping.

    Yields
    ------
    list of GeometryValue
        The values of the next group, in the order of ``geometries``; ``degraded`` (for
        the whole group) when some chunks the group's computation reads could not be read
        (``attrs["cas_failed_chunks"]``, see :class:`~cas_xr.sources.Source`).

    Raises
    ------
    SourceError
        The first chunk's error when the source could read none of the chunks a group
        reads.
    """
    import dask
    import geopandas as gpd
    import rioxarray  # noqa: F401  (registers .rio)

    from cas_xr.engine._failures import read_failures
    from cas_xr.engine._scheduler import current_scheduler
    from cas_xr.zonal import zonal

    scheduler = current_scheduler(settings)
    pooled = aggregation in CLASS_STATISTICS
    classes = class_codes(da, variable, scheduler) if pooled else None
    stat = "distribution" if pooled else aggregation.value
    times = da["time"].values if "time" in da.dims else [None]
    step = group_size or max(len(geometries), 1)
    for start in range(0, len(geometries), step):
        series = gpd.GeoSeries(geometries[start : start + step], crs=da.rio.crs)
        area_weighted = settings.area_weighted and bool(series.crs.is_geographic)
        with dask.config.set(NO_READ_FUSION):
            lazy = zonal(
                da, series, [stat], weights=settings.zonal_weights, area_weighted=area_weighted,
                classes=classes, nodata=da.attrs.get("nodata"),
            )  # fmt: skip
        # a source may report chunks it could not read (treated as nodata), from the same tasks
        lost = read_failures(da, lazy)
        if lost is None:
            (cube,), degraded = scheduler.compute(lazy), False
        else:
            cube, counted = scheduler.compute(lazy, lost)
            degraded = bool(counted.sum())
        yield _group_values(cube, len(series), times, classes, aggregation, variable, degraded)


def _group_values(
    cube: xr.Dataset,
    n: int,
    times: Any,
    classes: npt.NDArray[np.float64] | None,
    aggregation: AggregationMethod,
    variable: Variable,
    degraded: bool,
) -> list[GeometryValue]:
    """The values of ``n`` geometries from their computed zonal cube."""
    counts = cube["coverage_fraction"].values.reshape(n, -1)
    pixels = cube["pixel_count"].values.reshape(n, -1)
    if classes is not None:
        dist = cube["distribution"].values.reshape(n, len(times), -1)
    else:
        steps = cube[next(iter(cube.data_vars))].values.reshape(n, len(times))
    out = []
    for g in range(n):
        used = [t for t, count in zip(times, pixels[g], strict=True) if count > 0]
        if not used:
            value: float | dict[str, float] | None = None
        elif classes is not None:
            weights = counts[g][:, None] * dist[g]  # each step's shares by its valid coverage
            fractions = weights.sum(axis=0) / weights.sum()
            value = _class_value(fractions, classes, aggregation, variable.class_names)
        else:
            value = float(np.mean(steps[g][pixels[g] > 0]))
        out.append(
            GeometryValue(
                value=value,
                coverage_fraction=float(np.mean(counts[g])),
                pixel_count=int(pixels[g].max()),
                timestamp=None if not used or used[-1] is None else _timestamp(used[-1]),
                degraded=degraded,
            )
        )
    return out
