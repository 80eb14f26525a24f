"""Validated inputs of a batch: geometries, datasets, statistics and spatial batches.

Everything a caller can get wrong is checked here, before any pixel is read: the frame's
CRS, dataset ids (resolved in the catalog), statistic names and the time range. A single
geometry that cannot be computed (missing, of an unsupported type, invalid, too many
vertices, across the antimeridian) does not stop the batch: it is set aside with its
reason and gets MISSING results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.catalog import Connector, DatasetDefinition, resolve
from cas_xr.config import Settings
from cas_xr.errors import InvalidGeometryError, LimitExceededError
from cas_xr.models import AggregationMethod, TimeRange, Variable, crosses_antimeridian

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["Plan", "Problem", "Target", "make_plan"]

_KINDS = {"Polygon", "MultiPolygon", "Point"}


@dataclass(frozen=True)
class Target:
    """One requested dataset, resolved in the catalog."""

    dataset_id: str
    connector: Connector
    name: str

    @property
    def definition(self) -> DatasetDefinition:
        """The catalog definition of the dataset."""
        return self.connector.definition_of(self.name)

    @property
    def variable(self) -> Variable:
        """The dataset's variable (units, nodata, valid range, class names)."""
        return self.definition.variables[0]


@dataclass(frozen=True)
class Problem:
    """Geometries (positions in the input) that cannot be computed, and why."""

    kind: str
    message: str
    positions: npt.NDArray[np.intp]


@dataclass(frozen=True)
class Plan:
    """Everything a batch needs, validated.

    ``series`` keeps the input order and index; ``batches`` are positions of computable
    geometries in Hilbert order, cut into groups of at most ``batch_size``.
    """

    series: gpd.GeoSeries
    targets: list[Target]
    stats: list[str]
    time_range: TimeRange | None
    settings: Settings
    hashes: list[bytes]
    batches: list[npt.NDArray[np.intp]]
    problems: list[Problem] = field(default_factory=list)

    @property
    def numeric(self) -> list[str]:
        """The statistics along ``zonal_statistics`` (all but ``distribution``)."""
        return [s for s in self.stats if s != "distribution"]

    @property
    def distribution(self) -> bool:
        """Whether the class distribution is asked for."""
        return "distribution" in self.stats


def _as_series(geometries: Any) -> gpd.GeoSeries:
    import geopandas as gpd

    if isinstance(geometries, gpd.GeoDataFrame):
        series = geometries.geometry
    elif isinstance(geometries, gpd.GeoSeries):
        series = geometries
    else:
        raise TypeError(
            f"geometries must be a GeoDataFrame or GeoSeries, got {type(geometries).__name__}; "
            "build one with geopandas (e.g. geopandas.read_file)"
        )
    if series.crs is None:
        raise ValueError(
            "the geometries have no CRS; set one (GeoDataFrame.set_crs('EPSG:...')): cas_xr "
            "never assumes a CRS"
        )
    return series


def _stats(aggregation: Any) -> list[str]:
    from cas_xr.zonal._inputs import parse_stats

    items = [aggregation] if isinstance(aggregation, str) else list(aggregation)
    names = list(dict.fromkeys(str(getattr(a, "value", a)).lower() for a in items))
    parse_stats(names)  # raises naming the valid statistics
    return names


def _targets(dataset_ids: Any, settings: Settings) -> list[Target]:
    ids = [dataset_ids] if isinstance(dataset_ids, str) else list(dict.fromkeys(dataset_ids))
    if not ids:
        raise ValueError("dataset_ids is empty; name at least one, e.g. 'sample:elevation'")
    if len(ids) > settings.max_datasets_per_request:
        raise LimitExceededError(
            f"{len(ids)} datasets requested, more than max_datasets_per_request "
            f"({settings.max_datasets_per_request}); split the batch or raise the setting"
        )
    return [Target(d, *resolve(d)) for d in ids]  # unknown ids fail before any work


def _problems(series: gpd.GeoSeries, settings: Settings) -> list[Problem]:
    import shapely

    values = series.to_numpy()
    missing = series.isna().to_numpy()
    kinds = np.array([g.geom_type if g is not None else "" for g in values], dtype=object)
    unsupported = ~missing & ~np.isin(kinds, list(_KINDS))
    checkable = ~missing & ~unsupported
    invalid = checkable & ~shapely.is_valid(values)
    vertices = np.where(checkable, shapely.get_num_coordinates(values), 0)
    too_big = checkable & (vertices > settings.max_polygon_vertices)
    wide = np.zeros(len(values), dtype=bool)
    if series.crs.is_geographic:
        wide = checkable & crosses_antimeridian(values)
    rules = [
        (missing, InvalidGeometryError, "the geometry is missing (None)"),
        (unsupported, InvalidGeometryError, "only Polygon, MultiPolygon and Point are supported"),
        (invalid, InvalidGeometryError, "invalid geometry; repair it, e.g. with make_valid()"),
        (
            too_big & ~invalid,
            LimitExceededError,
            f"more than max_polygon_vertices ({settings.max_polygon_vertices}) vertices; "
            "simplify it or raise the setting",
        ),
        (
            wide & ~invalid & ~too_big,
            InvalidGeometryError,
            "crosses the antimeridian; split it at +/-180 into a MultiPolygon",
        ),
    ]
    return [
        Problem(error.__name__, message, np.flatnonzero(mask))
        for mask, error, message in rules
        if mask.any()
    ]


def _hashes(series: gpd.GeoSeries) -> list[bytes]:
    """A digest of each geometry's coordinates and CRS (the cache's geometry hash)."""
    import shapely

    crs = series.crs.to_wkt().encode()
    return [
        hashlib.blake2b(crs + (wkb or b""), digest_size=16).digest()
        for wkb in shapely.to_wkb(series.to_numpy())
    ]


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
    dataset_ids: str | Sequence[str],
    *,
    aggregation: str | AggregationMethod | Sequence[str | AggregationMethod],
    time_range: TimeRange | dict[str, Any] | Sequence[Any] | None,
    batch_size: int,
    settings: Settings,
) -> Plan:
    """Validate a batch and cut its geometries into spatially compact batches.

    Raises
    ------
    TypeError, ValueError
        For a wrong type, a frame without a CRS, an unknown statistic or an empty list.
    InvalidDatasetIdError, UnknownProviderError, UnknownDatasetError
        For a malformed or unknown dataset id.
    LimitExceededError
        For more datasets than ``max_datasets_per_request``.
    pydantic.ValidationError
        For a malformed time range.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of geometries, got {batch_size}")
    series = _as_series(geometries)
    stats = _stats(aggregation)
    targets = _targets(dataset_ids, settings)
    window = None if time_range is None else TimeRange.model_validate(time_range)
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
        hashes=_hashes(series),
        batches=_batches(series, np.flatnonzero(~bad), batch_size),
        problems=problems,
    )
