"""Geometries moved to the longitude convention of a geographic grid (0..360 or -180..180).

A grid stored with longitudes 0..360 and geometries given in -180..180 (or the reverse)
describe the same places with numbers 360 apart. Each part of a geometry that lies
beyond the grid's west (east) edge is moved by +360 (-360) degrees; the part within the
grid stays. Every point of the geometry is then counted once, where the grid holds it,
and never half a polygon silently lost. Vectorised with shapely over the geometries
that need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["match_longitudes"]

_POINT, _POLYGON = 0, 3  # shapely type ids


def _polygonal(geoms: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The polygon parts of each geometry as one MultiPolygon (lines and points dropped)."""
    import shapely

    parts, index = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == _POLYGON
    out = np.full(geoms.size, shapely.MultiPolygon(), dtype=object)
    if keep.any():
        shapely.multipolygons(parts[keep], indices=index[keep], out=out)
    return out


def _shifted(geoms: npt.NDArray[Any], dx: float) -> npt.NDArray[Any]:
    import shapely

    return np.asarray(shapely.transform(geoms, lambda xy: xy + np.array([dx, 0.0])))


def match_longitudes(shapes: npt.ArrayLike, west: float, east: float) -> npt.NDArray[Any]:
    """Geometries (in a geographic CRS) moved onto a grid spanning ``west..east`` degrees.

    Parameters
    ----------
    shapes
        Shapely Points, Polygons and MultiPolygons, in degrees.
    west, east
        Longitudes of the grid's outer cell edges (``west < east``).

    Returns
    -------
    numpy.ndarray
        The geometries, unchanged where they lie within the grid or cannot reach it by
        a 360-degree shift; else the part within the grid plus the parts beyond it moved
        by 360 degrees (points are moved whole).
    """
    import shapely

    out = np.array(shapes, dtype=object)
    bounds = shapely.bounds(out)  # NaN for empty geometries: compares False
    kind = shapely.get_type_id(out)
    point = kind == _POINT
    beyond_west = (bounds[:, 0] < west) & (bounds[:, 0] + 360.0 < east)
    beyond_east = np.where(point, bounds[:, 2] >= east, bounds[:, 2] > east) & (
        bounds[:, 2] - 360.0 >= west
    )
    for moved, dx in ((point & beyond_west, 360.0), (point & beyond_east, -360.0)):
        out[moved] = _shifted(out[moved], dx)
    todo = np.flatnonzero(~point & (beyond_west | beyond_east))
    if not todo.size:
        return out
    geoms, b = out[todo], bounds[todo]
    south, north = b[:, 1] - 1.0, b[:, 3] + 1.0
    inside = _polygonal(shapely.intersection(geoms, shapely.box(west, south, east, north)))
    left = shapely.intersection(geoms, shapely.box(b[:, 0] - 1.0, south, west, north))
    right = shapely.intersection(geoms, shapely.box(east, south, b[:, 2] + 1.0, north))
    pieces = [inside, _shifted(_polygonal(left), 360.0), _shifted(_polygonal(right), -360.0)]
    out[todo] = shapely.union(shapely.union(pieces[0], pieces[1]), pieces[2])
    return out
