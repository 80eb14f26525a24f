"""What ``extract_attributes`` does after the reduction: qualities, means, geometry facts.

Quality codes are positions in :data:`cas_xr.engine.FLAGS`; an attribute gets the worst
flag of what it used, worst meaning (from best) good, estimated, partial, suspect,
degraded, missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cas_xr.engine import FLAGS
from cas_xr.models import QualityFlag

__all__ = [
    "CODE",
    "Value",
    "area",
    "combine",
    "latitudes",
    "time_mean",
    "worst",
]

#: quality flags from best to worst: an attribute gets the worst flag of what it used
_SEVERITY = [
    QualityFlag.GOOD, QualityFlag.ESTIMATED, QualityFlag.PARTIAL, QualityFlag.SUSPECT,
    QualityFlag.DEGRADED, QualityFlag.MISSING,
]  # fmt: skip
_RANK = np.array([_SEVERITY.index(f) for f in FLAGS], dtype=np.int8)  # code -> severity
CODE = {f: k for k, f in enumerate(FLAGS)}


@dataclass(frozen=True)
class Value:
    """An attribute's values and quality codes, one per geometry."""

    values: Any  # float64 array, or object array of class names
    quality: npt.NDArray[np.int8]


def worst(codes: Any, axis: int | None = None) -> npt.NDArray[np.int8]:
    """The worst quality code along ``axis`` (codes are :data:`FLAGS` positions)."""
    codes = np.asarray(codes, dtype=np.int8)
    if axis is None or codes.ndim == 1:
        return codes
    worst = np.take_along_axis(codes, _RANK[codes].argmax(axis=axis)[:, None], axis=axis)
    return np.asarray(worst[:, 0], dtype=np.int8)


def combine(*codes: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """The worst of several per-geometry quality codes, geometry by geometry."""
    return worst(np.stack(codes, axis=1), axis=1)


def time_mean(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Mean over the last axis of the valid values (NaN when none), without warnings."""
    ok = ~np.isnan(values)
    count = ok.sum(axis=-1)
    total = np.where(ok, values, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _lonlat(geometries: Any) -> Any:
    import geopandas as gpd

    series = geometries.geometry if isinstance(geometries, gpd.GeoDataFrame) else geometries
    return series.to_crs("EPSG:4326").to_numpy()


def latitudes(geometries: Any) -> npt.NDArray[np.float64]:
    """Latitude of each geometry's centroid (in lon/lat), for the radiation of PET."""
    import shapely

    centres = shapely.centroid(_lonlat(geometries))
    return np.asarray(shapely.get_y(centres), dtype=np.float64)


def area(geometries: Any) -> Value:
    """Geodesic area (km2) on the WGS84 ellipsoid; MISSING for empty or invalid shapes."""
    import pyproj
    import shapely

    geod = pyproj.Geod(ellps="WGS84")
    shapes = _lonlat(geometries)
    values = np.full(len(shapes), np.nan)
    quality = np.full(len(shapes), CODE[QualityFlag.MISSING], dtype=np.int8)
    for i, shape in enumerate(shapes):
        if shape is None or shape.is_empty or not shapely.is_valid(shape):
            continue
        values[i] = abs(geod.geometry_area_perimeter(shape)[0]) / 1e6
        quality[i] = CODE[QualityFlag.GOOD]
    return Value(values, quality)
