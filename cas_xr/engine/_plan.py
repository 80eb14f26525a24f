"""The plan of a request: validated geometries, datasets, statistics, time and batches.

Every front end makes its plan here, so everything a caller can get wrong is checked in
one place, before any pixel is read: the geometries' CRS, dataset ids (resolved in the
catalog) or cubes, statistic names and the time range. A single geometry that cannot be
computed (missing, of an unsupported type, invalid, too many vertices, across the
antimeridian) does not stop the request: it is set aside with its reason and gets
MISSING results. Each geometry gets its one key (:func:`cas_xr.models.geometry_keys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.config import Settings
from cas_xr.engine._targets import Target, check_layer_names, targets_of
from cas_xr.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    InvalidGeometryError,
    LimitExceededError,
)
from cas_xr.models import (
    AggregationMethod,
    TimeRange,
    crosses_antimeridian,
    geometry_keys,
    validated,
)
from cas_xr.zonal._kinds import SUPPORTED, mixed_collections

if TYPE_CHECKING:
    import geopandas as gpd

    from cas_xr.zonal._callables import Reduction

__all__ = ["Plan", "Problem", "check_names", "make_plan"]


@dataclass(frozen=True)
class Problem:
    """Geometries (positions in the input) that cannot be computed, and why."""

    kind: str
    message: str
    positions: npt.NDArray[np.intp]


@dataclass(frozen=True)
class Plan:
    """Everything a batch needs, validated.

    ``series`` keeps the input order and index; ``keys`` are the geometries' keys;
    ``batches`` are positions of computable geometries in Hilbert order, cut into groups
    of at most ``batch_size``. With ``latest_step``, temporal datasets keep only their
    latest step (the CAS rule when no time range is given). ``stats`` are the statistic
    names; ``reductions`` the user's functions, whose results follow them; ``weights``
    the weights raster's dataset, when a statistic or reduction needs one.
    """

    series: gpd.GeoSeries
    targets: list[Target]
    stats: list[str]
    time_range: TimeRange | None
    settings: Settings
    keys: list[str]
    batches: list[npt.NDArray[np.intp]]
    problems: list[Problem] = field(default_factory=list)
    latest_step: bool = False
    reductions: tuple[Reduction, ...] = ()
    weights: Target | None = None

    @property
    def numeric(self) -> list[str]:
        """The labels along ``zonal_statistics``: statistics but the class outputs, reductions."""
        named = [s for s in self.stats if s not in _CLASS_OUTPUTS]
        return named + [r.name for r in self.reductions]

    @property
    def distribution(self) -> bool:
        """Whether the class distribution is asked for."""
        return "distribution" in self.stats

    @property
    def weighted_distribution(self) -> bool:
        """Whether the weighted class distribution (``weighted_frac``) is asked for."""
        return "weighted_distribution" in self.stats


def _as_series(geometries: Any) -> gpd.GeoSeries:
    import geopandas as gpd

    if isinstance(geometries, gpd.GeoDataFrame):
        series = geometries.geometry
    elif isinstance(geometries, gpd.GeoSeries):
        series = geometries
    else:
        raise ArgumentTypeError(
            f"geometries must be a GeoDataFrame or GeoSeries, got {type(geometries).__name__}; "
            "build one with geopandas (e.g. geopandas.read_file)"
        )
    if series.crs is None:
        raise InvalidArgumentError(
            "the geometries have no CRS; set one (GeoDataFrame.set_crs('EPSG:...')): cas_xr "
            "never assumes a CRS"
        )
    return series


#: Table columns of a dataset beside its statistics: a reduction may not take their names.
_RESERVED = ("coverage_fraction", "pixel_count", "quality")
_CLASS_OUTPUTS = ("distribution", "weighted_distribution")
_CLASS_PREFIXES = ("distribution_", "weighted_distribution_")


def _stats(aggregation: Any) -> tuple[list[str], list[Reduction], bool]:
    """Statistic names, user reductions, and whether a weights raster is needed."""
    from cas_xr.zonal._callables import split_stats
    from cas_xr.zonal._inputs import parse_stats

    if isinstance(aggregation, str) or callable(aggregation):
        items = [aggregation]
    elif isinstance(aggregation, Sequence):
        items = list(aggregation)
    else:
        raise ArgumentTypeError(
            "aggregation must be a statistic name, a function or a list of them, e.g. 'mean' "
            f"or ['mean', 'p90', my_function], got {type(aggregation).__name__}"
        )
    items = [getattr(a, "value", a) if isinstance(a, AggregationMethod) else a for a in items]
    names, reductions = split_stats(items)  # raises on a malformed reduction
    names = list(dict.fromkeys(str(a).lower() for a in names))
    spec = parse_stats(names if names or not reductions else "count")  # names the valid ones
    for r in reductions:
        if r.name.lower() in _RESERVED or r.name.lower().startswith(_CLASS_PREFIXES):
            raise InvalidArgumentError(
                f"a reduction named {r.name!r} would clash with the table's own column "
                f"<dataset>_{r.name}; name it otherwise with a tuple, e.g. ('my_{r.name}', func)"
            )
    needs = spec.needs_weights or any(r.weighted for r in reductions)
    return (list(spec.names) if names else []), reductions, needs


def check_names(names: str | Sequence[str], *, where: str) -> None:
    """Check statistic names for an entry point that cannot take functions (CLI, service).

    Raises
    ------
    InvalidStatisticError
        For an unknown name, saying that user reductions (Python functions) are for the
        Python entry points only; for a ``weighted_*`` statistic, whose weights raster
        only the Python entry points take.
    """
    from cas_xr.errors import InvalidStatisticError
    from cas_xr.zonal._inputs import parse_stats

    try:
        spec = parse_stats(names)
    except InvalidStatisticError as err:
        raise InvalidStatisticError(
            f"{err}. {where} takes statistic names only: user reductions (Python functions) "
            "run in Python, e.g. cas_xr.extract_table(geometries, ids, aggregation=['mean', "
            "my_function])"
        ) from None
    if spec.needs_weights:
        raise InvalidStatisticError(
            f"the weighted statistics need a weights raster, which {where} does not take "
            "yet; use Python: cas_xr.extract_table(geometries, ids, aggregation="
            "'weighted_mean', weights_raster='<provider>:<dataset>')"
        )


def _weights(weights_raster: Any, needed: bool, settings: Settings) -> Target | None:
    """The weights raster's dataset (a catalog id or a cube), when it is needed."""
    if weights_raster is None:
        if needed:
            raise InvalidArgumentError(
                "weighted_mean, weighted_sum, weighted_stdev, weighted_variance and "
                "three-argument reductions func(values, coverage, weights) need a weights "
                "raster: pass weights_raster='<provider>:<dataset>' (a dataset on the same "
                "grid as the values) or a DataArray"
            )
        return None
    if not isinstance(weights_raster, str):
        import xarray as xr

        if not isinstance(weights_raster, xr.DataArray):
            raise ArgumentTypeError(
                "weights_raster must be a dataset id such as 'sample:land_cover' or a "
                f"DataArray on the values' grid, got {type(weights_raster).__name__}"
            )
        weights_raster = {"weights_raster": weights_raster}
    (target,) = targets_of(weights_raster, settings)  # an unknown id fails now
    if not needed:
        return None
    if target.layers:
        raise InvalidArgumentError(
            f"weights_raster has dimensions {[d for d, _ in target.layers]} besides its "
            "spatial ones; it must be one layer, (y, x), for every layer of the values: "
            f"select one, e.g. weights.isel({target.layers[0][0]}=0)"
        )
    return target


def _problems(series: gpd.GeoSeries, settings: Settings) -> list[Problem]:
    import shapely

    values = series.to_numpy()
    missing = shapely.is_missing(values)  # GeoSeries.isna, without pandas around it
    kinds = np.array([g.geom_type if g is not None else "" for g in values], dtype=object)
    unsupported = ~missing & ~np.isin(kinds, list(SUPPORTED))
    mixed = ~missing & ~unsupported & mixed_collections(values)
    checkable = ~missing & ~unsupported & ~mixed
    invalid = checkable & ~shapely.is_valid(values)
    vertices = np.where(checkable, shapely.get_num_coordinates(values), 0)
    too_big = checkable & (vertices > settings.max_polygon_vertices)
    wide = np.zeros(len(values), dtype=bool)
    if series.crs.is_geographic:
        wide = checkable & crosses_antimeridian(values)
    rules = [
        (missing, InvalidGeometryError, "the geometry is missing (None)"),
        (unsupported, InvalidGeometryError, f"only {', '.join(SUPPORTED)} are supported"),
        (
            mixed,
            InvalidGeometryError,
            "a GeometryCollection mixing polygons, lines and points; split it into one "
            "geometry per kind (e.g. GeoDataFrame.explode())",
        ),
        (
            too_big & ~invalid,
            LimitExceededError,
            f"more than max_polygon_vertices ({settings.max_polygon_vertices}) vertices; "
            "simplify it or raise the setting",
        ),
        (
            wide & ~invalid & ~too_big,
            InvalidGeometryError,
            "crosses the antimeridian; split it at +/-180 into a MultiPolygon or MultiLineString",
        ),
    ]
    problems = [
        Problem(error.__name__, message, np.flatnonzero(mask))
        for mask, error, message in rules
        if mask.any()
    ]
    reasons = shapely.is_valid_reason(values[invalid])
    for reason in dict.fromkeys(reasons):
        problems.append(
            Problem(
                InvalidGeometryError.__name__,
                f"invalid geometry ({reason}); repair it, e.g. with shapely.make_valid",
                np.flatnonzero(invalid)[reasons == reason],
            )
        )
    return problems


def _batches(
    series: gpd.GeoSeries, computable: npt.NDArray[np.intp], batch_size: int
) -> list[npt.NDArray[np.intp]]:
    """Computable positions in Hilbert order of their box centres, cut into batches."""
    import shapely

    from cas_xr.zonal._partition import hilbert_order

    if not computable.size:
        return []
    bounds = np.nan_to_num(shapely.bounds(series.to_numpy()[computable]))
    order = computable[hilbert_order(bounds[:, 0] + bounds[:, 2], bounds[:, 1] + bounds[:, 3])]
    return np.array_split(order, -(-order.size // batch_size))


def make_plan(
    geometries: Any,
    dataset_ids: Any,
    *,
    aggregation: Any,
    time_range: TimeRange | dict[str, Any] | Sequence[Any] | None,
    batch_size: int,
    settings: Settings,
    latest_step: bool = False,
    weights_raster: Any = None,
    columns: Sequence[Any] = (),
) -> Plan:
    """Validate a request and cut its geometries into spatially compact batches.

    Parameters
    ----------
    geometries
        A GeoDataFrame or GeoSeries with a CRS.
    dataset_ids
        Ids, or ``{name: DataArray}`` entries (see :func:`targets_of`).
    aggregation
        One statistic or several: names (:data:`cas_xr.zonal.STATISTICS`, aliases,
        quantiles), user reductions (callables, ``(name, func[, kwargs])`` tuples).
    time_range
        The steps of temporal datasets to use.
    batch_size
        Geometries per batch.
    settings
        The settings in effect (limits, weights, quality thresholds).
    latest_step
        Keep only the latest step of temporal datasets.
    weights_raster
        The dataset id (or a DataArray) of the weights raster of ``weighted_*``
        statistics and three-argument reductions; ignored when none is asked.
    columns
        The input columns a table keeps beside its results (:func:`~cas_xr.extract_table`):
        names a cube's other dimensions cannot take, as the geometries' index levels.

    Raises
    ------
    TypeError, ValueError
        For a wrong type, a frame without a CRS, an unknown statistic or an empty list.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        For a malformed or unknown dataset id.
    InvalidArgumentError
        For a cube whose other dimension is named as an index level, an input column, a
        dataset or a column of one (:func:`~cas_xr.engine._targets.check_layer_names`).
    LimitExceededError
        For more datasets than ``max_datasets_per_request``.
    pydantic.ValidationError
        For a malformed time range.
    """
    if batch_size < 1:
        raise InvalidArgumentError(
            f"batch_size must be a positive number of geometries, got {batch_size}"
        )
    series = _as_series(geometries)
    stats, reductions, needs_weights = _stats(aggregation)
    targets = targets_of(dataset_ids, settings)
    check_layer_names(targets, [*series.index.names, *columns])
    weights = _weights(weights_raster, needs_weights, settings)
    for target in [*targets, *([weights] if weights is not None else [])]:
        target.prefetch()  # on its way while the geometries are checked and batched
    window = None if time_range is None else validated(TimeRange, time_range)
    problems = _problems(series, settings)
    bad = np.zeros(len(series), dtype=bool)
    for problem in problems:
        bad[problem.positions] = True
    return Plan(
        series=series,
        targets=targets,
        stats=stats,
        time_range=window,
        settings=settings,
        keys=geometry_keys(series.to_numpy(), series.crs),
        batches=_batches(series, np.flatnonzero(~bad), batch_size),
        problems=problems,
        latest_step=latest_step,
        reductions=tuple(reductions),
        weights=weights,
    )
