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

_POINT, _MULTIPOINT = 0, 4  # shapely type ids


def _of_dimension(geoms: npt.NDArray[Any], dims: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """The parts of each geometry of its dimension (``dims``: 2 or 1) as one Multi geometry.

    Polygons give a MultiPolygon, lines a MultiLineString (points and slivers of a lower
    dimension, which intersections leave on box edges, are dropped).
    """
    import shapely

    parts, index = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_dimensions(parts) == dims[index]) & ~shapely.is_empty(parts)
    out = np.where(dims == 2, shapely.MultiPolygon(), shapely.MultiLineString())
    for dim, make in ((2, shapely.multipolygons), (1, shapely.multilinestrings)):
        chosen = keep & (dims[index] == dim)
        if chosen.any():
            make(parts[chosen], indices=index[chosen], out=out)
    return out


def _shifted(geoms: npt.NDArray[Any], dx: float) -> npt.NDArray[Any]:
    import shapely

    return np.asarray(shapely.transform(geoms, lambda xy: xy + np.array([dx, 0.0])))


def _points_moved(points: npt.NDArray[Any], west: float, east: float) -> npt.NDArray[Any]:
    """Points beyond the grid's west (east) edge moved by +360 (-360) degrees."""
    import shapely

    out = np.array(points, dtype=object)
    x = shapely.get_x(out)
    for moved, dx in (
        ((x < west) & (x + 360.0 < east), 360.0),
        ((x >= east) & (x - 360.0 >= west), -360.0),
    ):
        out[moved] = _shifted(out[moved], dx)
    return out


def _joined(pieces: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """The lines of each geometry's pieces, side by side (no overlay: lengths are kept)."""
    import shapely

    parts, index = shapely.get_parts(np.concatenate(pieces), return_index=True)
    return np.asarray(shapely.multilinestrings(parts, indices=index % len(pieces[0])))


def match_longitudes(shapes: npt.ArrayLike, west: float, east: float) -> npt.NDArray[Any]:
    """Geometries (in a geographic CRS) moved onto a grid spanning ``west..east`` degrees.

    Parameters
    ----------
    shapes
        Shapely Points, MultiPoints, (Multi)LineStrings and (Multi)Polygons, in degrees.
    west, east
        Longitudes of the grid's outer cell edges (``west < east``).

    Returns
    -------
    numpy.ndarray
        The geometries, unchanged where they lie within the grid or cannot reach it by
        a 360-degree shift; else the part within the grid plus the parts beyond it moved
        by 360 degrees (points, also those of a MultiPoint, are moved one by one).
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
    out[point] = _points_moved(out[point], west, east)
    sets = np.flatnonzero((kind == _MULTIPOINT) & (beyond_west | beyond_east))
    if sets.size:
        parts, index = shapely.get_parts(out[sets], return_index=True)
        out[sets] = shapely.multipoints(_points_moved(parts, west, east), indices=index)
    todo = np.flatnonzero(~point & (kind != _MULTIPOINT) & (beyond_west | beyond_east))
    if not todo.size:
        return out
    geoms, b = out[todo], bounds[todo]
    dims = shapely.get_dimensions(geoms)
    south, north = b[:, 1] - 1.0, b[:, 3] + 1.0
    grid = shapely.box(west, south, east, north)
    inside = _of_dimension(shapely.intersection(geoms, grid), dims)
    beyond = shapely.difference(geoms, grid)  # a line along a grid edge stays inside only
    left = shapely.intersection(beyond, shapely.box(b[:, 0] - 1.0, south, west, north))
    right = shapely.intersection(beyond, shapely.box(east, south, b[:, 2] + 1.0, north))
    pieces = [
        inside,
        _shifted(_of_dimension(left, dims), 360.0),
        _shifted(_of_dimension(right, dims), -360.0),
    ]
    polygons = dims == 2
    if polygons.any():
        merged = shapely.union(pieces[0][polygons], pieces[1][polygons])
        out[todo[polygons]] = shapely.union(merged, pieces[2][polygons])
    if not polygons.all():
        out[todo[~polygons]] = _joined([p[~polygons] for p in pieces])
    return out
