"""The CAS contract: enums and pydantic models shared by the facade, service and client.

Names, fields, defaults and enum values follow the CAS Python API; cas_xr only adds
fields (``geometry_crs``, ``AttributeResult.error``, ``Variable.class_names`` ...).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from datetime import date, datetime
from datetime import time as dt_time
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DATASET_ID_PATTERN",
    "AggregationMethod",
    "AttributeRequest",
    "AttributeResponse",
    "AttributeResult",
    "BatchAttributeRequest",
    "BatchAttributeResponse",
    "BoundingBox",
    "DataType",
    "Dataset",
    "Geometry",
    "HealthCheckResult",
    "OutputMode",
    "Protocol",
    "ProviderStatus",
    "QualityFlag",
    "RasterResampling",
    "RasterResult",
    "ResultError",
    "TemporalExtent",
    "TemporalType",
    "TimeRange",
    "Variable",
    "crosses_antimeridian",
    "geometry_keys",
    "split_dataset_id",
    "validated",
]

_M = TypeVar("_M", bound="BaseModel")


class AggregationMethod(StrEnum):
    """How the cells under a geometry are summarised."""

    MEAN = "mean"
    MEDIAN = "median"
    MIN = "min"
    MAX = "max"
    STD = "std"
    SUM = "sum"
    MAJORITY = "majority"
    MINORITY = "minority"
    UNIQUE = "unique"
    DISTRIBUTION = "distribution"


class QualityFlag(StrEnum):
    """How far a result can be trusted (see the statistics page of the docs)."""

    GOOD = "good"
    SUSPECT = "suspect"
    PARTIAL = "partial"
    MISSING = "missing"
    DEGRADED = "degraded"
    ESTIMATED = "estimated"


class OutputMode(StrEnum):
    """Statistics or a raster file."""

    STATS = "stats"
    RASTER = "raster"


class RasterResampling(StrEnum):
    """Resampling methods of raster mode."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    CUBIC = "cubic"
    AVERAGE = "average"


class TemporalType(StrEnum):
    """The time structure of a dataset."""

    STATIC = "static"
    ANNUAL = "annual"
    MONTHLY = "monthly"
    DAILY = "daily"
    HOURLY = "hourly"
    CLIMATOLOGY = "climatology"


class DataType(StrEnum):
    """Continuous measurements or categorical classes."""

    CONTINUOUS = "continuous"
    CATEGORICAL = "categorical"


class Protocol(StrEnum):
    """How a provider serves its data.

    cas_xr adds ``local``, ``zarr``, ``stac_static`` and ``stac_zarr`` (a Zarr store that
    is an asset of a STAC collection).
    """

    WCS = "wcs"
    WFS = "wfs"
    STAC_COG = "stac_cog"
    OPENDAP = "opendap"
    REST = "rest"
    S3_DIRECT = "s3_direct"
    STAC_STATIC = "stac_static"
    LOCAL = "local"
    ZARR = "zarr"
    STAC_ZARR = "stac_zarr"


DATASET_ID_PATTERN = re.compile(
    r"^(?P<provider>[a-z0-9][a-z0-9_.-]*):(?P<name>[A-Za-z0-9][\w.+-]*)$"
)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")  # an ISO date without a time of day


def split_dataset_id(dataset_id: object) -> tuple[str, str]:
    """Split ``"provider:name"`` into its two parts.

    Parameters
    ----------
    dataset_id
        An id such as ``"sample:elevation"``.

    Returns
    -------
    tuple of str
        ``(provider, name)``.

    Raises
    ------
    InvalidDatasetIdError
        If the id is not of the form ``provider:name``.
    """
    from cas_xr.errors import InvalidDatasetIdError

    match = DATASET_ID_PATTERN.match(dataset_id) if isinstance(dataset_id, str) else None
    if match is None:
        raise InvalidDatasetIdError(
            f"dataset id {dataset_id!r} is not of the form 'provider:name' (lower-case provider "
            "slug, a colon, then the dataset name), e.g. 'sample:elevation'; "
            "list valid ids with `cas-xr datasets`"
        )
    return match["provider"], match["name"]


# -- geometry -----------------------------------------------------------------------------

_GEOMETRY_TYPES = (
    "Point", "Polygon", "MultiPolygon", "LineString", "MultiLineString", "MultiPoint",
)  # fmt: skip


def _unwrap_geometry(value: Any) -> Any:
    """Accept GeoJSON dicts, Features, shapely and ``__geo_interface__`` objects."""
    if isinstance(value, Geometry):
        return value.model_dump()
    geo = getattr(value, "__geo_interface__", None)
    if geo is not None:
        value = geo
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "Feature":
            if value.get("geometry") is None:
                raise ValueError("the GeoJSON Feature has no geometry (its 'geometry' is null)")
            return _unwrap_geometry(value["geometry"])
        if kind == "FeatureCollection":
            raise ValueError(
                "got a FeatureCollection where one geometry was expected; pass its features "
                "to BatchAttributeRequest(geometries=...) instead"
            )
        if kind == "GeometryCollection":
            raise ValueError("GeometryCollection is not supported; pass its parts separately")
        if isinstance(value.get("coordinates"), tuple):
            value = {**value, "coordinates": _as_lists(value["coordinates"])}
    return value


def _as_lists(coords: Any) -> Any:
    if isinstance(coords, list | tuple):
        return [_as_lists(c) for c in coords]
    return coords


def _check_position(pos: Any, where: str) -> tuple[float, float]:
    if not isinstance(pos, list | tuple) or len(pos) not in (2, 3):
        raise ValueError(f"{where}: a position must be [x, y] or [x, y, z], got {pos!r}")
    for c in pos:
        if isinstance(c, bool) or not isinstance(c, int | float):
            raise ValueError(f"{where}: coordinates must be numbers, got {c!r}")
        if not math.isfinite(c):
            raise ValueError(f"{where}: coordinates must be finite, got {c!r}")
    return float(pos[0]), float(pos[1])


def _check_ring(ring: Any, where: str) -> None:
    if not isinstance(ring, list | tuple) or len(ring) < 4:
        n = len(ring) if isinstance(ring, list | tuple) else 0
        raise ValueError(
            f"{where}: a linear ring needs at least 4 positions (a closed triangle), got {n}"
        )
    points = [_check_position(p, f"{where}, position {i}") for i, p in enumerate(ring)]
    if points[0] != points[-1]:
        raise ValueError(
            f"{where}: the ring is not closed (first position {list(points[0])} differs from "
            f"the last {list(points[-1])}); repeat the first position at the end"
        )


def _check_line(coords: Any, where: str) -> None:
    if not isinstance(coords, list | tuple) or len(coords) < 2:
        raise ValueError(f"{where}: a LineString needs at least 2 positions")
    for i, pos in enumerate(coords):
        _check_position(pos, f"{where}, position {i}")


def _check_polygon(coords: Any, where: str) -> None:
    if not isinstance(coords, list | tuple) or not coords:
        raise ValueError(f"{where}: a Polygon needs a list of rings (exterior first)")
    for i, ring in enumerate(coords):
        _check_ring(ring, f"{where}, ring {i}")


class Geometry(BaseModel):
    """A GeoJSON Point, Polygon, MultiPolygon, LineString, MultiLineString or MultiPoint.

    Also accepts a GeoJSON Feature (its geometry is used), a shapely geometry or any
    object with ``__geo_interface__``. Coordinates are checked: positions are finite
    numbers, rings are closed and have at least 4 positions.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["Point", "Polygon", "MultiPolygon", "LineString", "MultiLineString", "MultiPoint"]
    coordinates: list[Any]

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        value = _unwrap_geometry(value)
        if isinstance(value, dict) and value.get("type") not in _GEOMETRY_TYPES:
            raise ValueError(
                f"geometry type {value.get('type')!r} is not supported; use one of "
                f"{', '.join(_GEOMETRY_TYPES)}"
            )
        return value

    @model_validator(mode="after")
    def _check_coordinates(self) -> Geometry:
        if self.type == "Point":
            _check_position(self.coordinates, "Point")
        elif self.type == "Polygon":
            _check_polygon(self.coordinates, "Polygon")
        elif self.type == "LineString":
            _check_line(self.coordinates, "LineString")
        elif self.type in ("MultiLineString", "MultiPoint"):
            if not self.coordinates:
                raise ValueError(f"{self.type}: needs at least one part")
            for i, part in enumerate(self.coordinates):
                if self.type == "MultiPoint":
                    _check_position(part, f"MultiPoint, point {i}")
                else:
                    _check_line(part, f"MultiLineString, line {i}")
        else:
            if not self.coordinates:
                raise ValueError("MultiPolygon: needs at least one polygon")
            for i, poly in enumerate(self.coordinates):
                _check_polygon(poly, f"MultiPolygon, polygon {i}")
        return self

    @property
    def is_point(self) -> bool:
        """Whether this is a Point."""
        return self.type == "Point"

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        """The GeoJSON mapping (so shapely and geopandas accept this object)."""
        return {"type": self.type, "coordinates": self.coordinates}

    def positions(self) -> Iterator[tuple[float, float]]:
        """Iterate over every (x, y) position."""
        if self.type == "Point":
            yield float(self.coordinates[0]), float(self.coordinates[1])
            return
        if self.type in ("LineString", "MultiPoint", "MultiLineString"):
            lines = [self.coordinates] if self.type != "MultiLineString" else self.coordinates
            for line in lines:
                for pos in line:
                    yield float(pos[0]), float(pos[1])
            return
        polygons = [self.coordinates] if self.type == "Polygon" else self.coordinates
        for poly in polygons:
            for ring in poly:
                for pos in ring:
                    yield float(pos[0]), float(pos[1])

    @property
    def n_vertices(self) -> int:
        """The number of positions (ring closures included)."""
        return sum(1 for _ in self.positions())

    def geometry_hash(self, crs: str = "EPSG:4326") -> str:
        """The geometry's key in ``crs`` (see :func:`geometry_keys`)."""
        return geometry_keys([self.to_shapely()], crs)[0]

    def to_shapely(self) -> Any:
        """Return the shapely geometry."""
        import shapely.geometry

        return shapely.geometry.shape(self.__geo_interface__)


def validated(model: type[_M], value: Any) -> _M:
    """``model.model_validate(value)``, failing with a :class:`~cas_xr.errors.CasError`.

    Raises
    ------
    InvalidRequestError
        Listing every invalid field (pydantic's ``ValidationError`` as its cause).
    """
    from pydantic import ValidationError

    from cas_xr.errors import InvalidRequestError

    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise InvalidRequestError(str(err)) from err


def geometry_keys(geometries: Any, crs: Any) -> list[str]:
    """The one key of each geometry: a digest of its coordinates (WKB) and its CRS.

    Every entry point keys geometries this way (responses' ``geometry_hash``, the result
    cache), so the same geometry in the same CRS has the same key wherever it comes from.

    Parameters
    ----------
    geometries
        Shapely geometries (None allowed).
    crs
        Their CRS (anything pyproj reads).

    Returns
    -------
    list of str
        32 hexadecimal characters each.
    """
    import numpy as np
    import pyproj
    import shapely

    text = crs if isinstance(crs, str) else pyproj.CRS.from_user_input(crs).srs
    prefix = _wkt(text)
    return [
        hashlib.blake2b(prefix + (wkb or b""), digest_size=16).hexdigest()
        for wkb in shapely.to_wkb(np.asarray(geometries, dtype=object))
    ]


@lru_cache(maxsize=64)
def _wkt(crs: str) -> bytes:
    """The WKT of a CRS given as text (EPSG code, WKT, PROJ string), kept per text."""
    import pyproj

    return pyproj.CRS.from_user_input(crs).to_wkt().encode()


@lru_cache(maxsize=64)
def _is_geographic(crs: str) -> bool:
    import pyproj

    return bool(pyproj.CRS.from_user_input(crs).is_geographic)


def _check_crs(crs: str) -> str:
    import pyproj

    try:
        pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise ValueError(
            f"CRS {crs!r} is not recognised ({err}); use e.g. 'EPSG:4326' or a WKT string"
        ) from None
    return crs


def crosses_antimeridian(geometries: Any) -> npt.NDArray[np.bool_]:
    """Which lon/lat geometries have a ring or line that crosses the antimeridian.

    The one rule cas_xr applies to geographic geometries (the request models, the batch
    inputs and :func:`cas_xr.zonal.zonal` all call it). A ring crosses the antimeridian
    (or, in 0..360 longitudes, the prime meridian) when one of its edges jumps more than
    180 degrees of longitude between two vertices that lie neither on a seam (a multiple
    of 180 degrees: +/-180, 0, 360) nor on a pole: such an edge is the short way across
    the seam drawn the long way round the lon/lat plane. Geometries already split at the
    seam (a MultiPolygon with parts on both sides) and rings that run along it or along
    a pole (polar caps such as ``box(-180, 60, 180, 90)`` or ``box(0, 60, 360, 90)``) do
    not cross it. Vectorised, and only the geometries wider than 180 degrees (the only
    ones that can cross) have their vertices looked at.

    Parameters
    ----------
    geometries
        A shapely geometry or an array-like of them (``None`` allowed), in degrees of
        longitude (x) and latitude (y).

    Returns
    -------
    numpy.ndarray
        One bool per geometry (points and ``None`` give False).

    Examples
    --------
    >>> import shapely
    >>> crosses_antimeridian([
    ...     shapely.box(179, 0, -179, 1),  # drawn across +/-180
    ...     shapely.MultiPolygon([shapely.box(179, 0, 180, 1), shapely.box(-180, 0, -179, 1)]),
    ...     shapely.box(-180, 60, 180, 90),  # a polar cap
    ... ]).tolist()
    [True, False, False]
    """
    import numpy as np
    import shapely

    geoms = np.atleast_1d(np.asarray(geometries, dtype=object))
    out = np.zeros(geoms.size, dtype=bool)
    bounds = shapely.bounds(geoms)
    wide = np.flatnonzero(bounds[:, 2] - bounds[:, 0] > 180.0)  # only these can jump 180
    if not wide.size:
        return out
    parts, part_of = shapely.get_parts(geoms[wide], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    lines = np.flatnonzero(shapely.get_type_id(parts) == 1)  # LineStrings: edges like rings
    rings, ring_part = np.concatenate([rings, parts[lines]]), np.concatenate([ring_part, lines])
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    seam = np.abs(xy[:, 0] - 180.0 * np.round(xy[:, 0] / 180.0)) <= 1e-9
    fixed = seam | (np.abs(np.abs(xy[:, 1]) - 90.0) <= 1e-9)
    jump = (
        (np.abs(np.diff(xy[:, 0])) > 180.0)
        & (ring_of[1:] == ring_of[:-1])
        & ~fixed[1:]
        & ~fixed[:-1]
    )
    out[wide[part_of[ring_part[ring_of[1:][jump]]]]] = True
    return out


def _check_geographic_range(geometry: Geometry, crs: str, where: str) -> None:
    if not _is_geographic(crs):
        return
    for x, y in geometry.positions():
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            raise ValueError(
                f"{where}: position ({x}, {y}) is outside longitude -180..180 / latitude "
                f"-90..90 of the geographic CRS {crs}; are the coordinates in another CRS "
                "(set geometry_crs) or in lat/lon order (GeoJSON is lon, lat)?"
            )
    if not geometry.is_point and crosses_antimeridian(geometry.to_shapely())[0]:
        raise ValueError(
            f"{where}: the geometry crosses the antimeridian (an edge jumps more than 180 "
            "degrees of longitude); split it at +/-180 into a MultiPolygon or MultiLineString"
        )


# -- extents ------------------------------------------------------------------------------


class BoundingBox(BaseModel):
    """A longitude/latitude box (EPSG:4326). Also accepts a 4-sequence or a dict."""

    min_lon: float = Field(ge=-180, le=180)
    min_lat: float = Field(ge=-90, le=90)
    max_lon: float = Field(ge=-180, le=180)
    max_lat: float = Field(ge=-90, le=90)

    @model_validator(mode="before")
    @classmethod
    def _from_sequence(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if len(value) != 4:
                raise ValueError(
                    f"a bbox needs 4 numbers (min_lon, min_lat, max_lon, max_lat), got {len(value)}"
                )
            return dict(zip(("min_lon", "min_lat", "max_lon", "max_lat"), value, strict=True))
        return value

    @model_validator(mode="after")
    def _check_order(self) -> BoundingBox:
        if not self.min_lon < self.max_lon:
            raise ValueError(
                f"bbox min_lon ({self.min_lon}) must be less than max_lon ({self.max_lon}); "
                "the order is (min_lon, min_lat, max_lon, max_lat) and antimeridian-crossing "
                "boxes are not supported"
            )
        if not self.min_lat < self.max_lat:
            raise ValueError(
                f"bbox min_lat ({self.min_lat}) must be less than max_lat ({self.max_lat}); "
                "the order is (min_lon, min_lat, max_lon, max_lat)"
            )
        return self

    def as_tuple(self) -> tuple[float, float, float, float]:
        """Return ``(min_lon, min_lat, max_lon, max_lat)``."""
        return (self.min_lon, self.min_lat, self.max_lon, self.max_lat)


class TimeRange(BaseModel):
    """An inclusive time interval. Also accepts a 2-sequence ``(start, end)``.

    An ``end`` given as a date without a time of day (``"2022-12-31"``, a
    :class:`datetime.date`) means the whole of that day: its last instant,
    ``2022-12-31T23:59:59.999999``, as STAC API searches read it. So a daily series
    stamped at noon (Daymet) keeps its last day; give a time to end earlier.
    """

    start: datetime
    end: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_sequence(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError(f"a time range needs (start, end), got {len(value)} values")
            value = {"start": value[0], "end": value[1]}
        if isinstance(value, dict) and "end" in value:
            value = {**value, "end": _through_the_day(value["end"])}
        return value

    @model_validator(mode="after")
    def _check_order(self) -> TimeRange:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("time range start and end must both have a time zone, or neither")
        if self.start > self.end:
            raise ValueError(
                f"time range start ({self.start.isoformat()}) is after its end "
                f"({self.end.isoformat()}); swap them"
            )
        return self


def _through_the_day(end: Any) -> Any:
    """The last instant of ``end`` when it is a date alone; anything else as given."""
    if isinstance(end, str) and _DATE_ONLY.fullmatch(end.strip()):
        end = date.fromisoformat(end.strip())
    if isinstance(end, date) and not isinstance(end, datetime):
        return datetime.combine(end, dt_time.max)
    return end


# -- requests -----------------------------------------------------------------------------


def _check_dataset_ids(ids: list[Any]) -> list[str]:
    bad = [d for d in ids if not isinstance(d, str) or DATASET_ID_PATTERN.match(d) is None]
    if bad:
        raise ValueError(
            f"dataset ids {bad!r} are not of the form 'provider:name' "
            "(e.g. 'sample:elevation'); list valid ids with `cas-xr datasets`"
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"dataset ids {ids!r} contain duplicates")
    return ids


class _RequestBase(BaseModel):
    dataset_ids: list[str] = Field(min_length=1)
    time_range: TimeRange | None = None
    aggregation: AggregationMethod = AggregationMethod.MEAN
    target_crs: str = "EPSG:4326"
    geometry_crs: str = "EPSG:4326"

    _ids = field_validator("dataset_ids")(_check_dataset_ids)

    @field_validator("target_crs", "geometry_crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        return _check_crs(value)


class AttributeRequest(_RequestBase):
    """Attributes of one geometry for one or more datasets.

    ``geometry_crs`` is the CRS of ``geometry`` (cas_xr addition); ``target_crs`` keeps its
    CAS meaning, the output CRS of raster mode.
    """

    geometry: Geometry
    bbox: BoundingBox | None = None
    output: OutputMode = OutputMode.STATS
    target_resolution: float | None = Field(default=None, gt=0)
    resampling: RasterResampling = RasterResampling.NEAREST

    @model_validator(mode="after")
    def _check_range(self) -> AttributeRequest:
        _check_geographic_range(self.geometry, self.geometry_crs, "geometry")
        return self


class BatchAttributeRequest(_RequestBase):
    """Attributes of up to 1,000 geometries for one or more datasets."""

    geometries: list[Geometry] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _check_range(self) -> BatchAttributeRequest:
        for i, geom in enumerate(self.geometries):
            _check_geographic_range(geom, self.geometry_crs, f"geometries[{i}]")
        return self


# -- results ------------------------------------------------------------------------------


class ResultError(BaseModel):
    """Why a result is missing, in machine-readable form."""

    provider: str
    dataset_id: str
    kind: str
    message: str


class AttributeResult(BaseModel):
    """One dataset's statistic for one geometry."""

    dataset_id: str
    variable: str
    value: float | dict[str, float] | None
    units: str
    aggregation: AggregationMethod
    quality: QualityFlag
    coverage_fraction: float = Field(ge=0, le=1)
    pixel_count: int = Field(ge=0)
    timestamp: datetime | None = None
    provider: str
    elapsed_ms: float = 0.0
    provenance: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "where the value came from: dataset, provider, protocol, endpoint, the items "
            "or files this geometry touched, license"
        ),
    )
    valid_range: tuple[float, float] | None = None
    error: ResultError | None = None
    cached: bool = Field(default=False, description="whether the value came from the result cache")


class AttributeResponse(BaseModel):
    """All results for one geometry."""

    request_id: str
    geometry_hash: str
    results: list[AttributeResult]
    warnings: list[str] = Field(default_factory=list)
    elapsed_ms: float = 0.0


class BatchAttributeResponse(BaseModel):
    """One response per geometry, in request order."""

    request_id: str
    responses: list[AttributeResponse]
    total_geometries: int
    total_results: int
    elapsed_ms: float = 0.0


class RasterResult(BaseModel):
    """A raster written by raster mode."""

    dataset_id: str
    provider: str
    variable: str
    units: str
    path: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]
    nodata: float | None
    license: str
    provenance: dict[str, Any] = Field(default_factory=dict)
    elapsed_ms: float = 0.0


# -- catalog metadata ---------------------------------------------------------------------


class Variable(BaseModel):
    """A variable of a dataset."""

    name: str
    units: str
    description: str = ""
    data_type: DataType = DataType.CONTINUOUS
    nodata_value: float | None = None
    valid_range: tuple[float, float] | None = None
    class_names: dict[int, str] | None = None
    scale: float | None = None
    offset: float | None = None


class TemporalExtent(BaseModel):
    """When a dataset has data, and at which steps."""

    start: datetime | None = None
    end: datetime | None = None
    temporal_type: TemporalType = TemporalType.STATIC


class Dataset(BaseModel):
    """A dataset of a provider, addressed as ``"{provider}:{name}"``."""

    id: str
    provider: str
    name: str
    description: str = ""
    variables: list[Variable]
    resolution_m: float | None = None
    crs: str = "EPSG:4326"
    bbox: BoundingBox | None = None
    temporal: TemporalExtent = Field(default_factory=TemporalExtent)
    protocol: Protocol
    license: str = ""
    citation: str = ""


# -- provider health ----------------------------------------------------------------------


class ProviderStatus(StrEnum):
    """The state of a provider as :func:`~cas_xr.check_providers` found it."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    AUTH_GATED = "auth_gated"
    UNKNOWN = "unknown"


class HealthCheckResult(BaseModel):
    """One provider's health: its state, how fast it answered, the value it gave."""

    provider: str
    status: ProviderStatus
    response_time_ms: float | None = None
    last_checked: datetime
    datasets_available: int = Field(ge=0)
    test_value: float | None = None
    expected_range: tuple[float, float] | None = None
    error: str | None = None
