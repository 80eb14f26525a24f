"""Kinds of geometry: polygons, lines, points, point sets and collections of one of them.

Each kind has its measure, the denominator of ``coverage_fraction``: a polygon's area,
a line's length, a point set's number of points (``exact`` weights); in ``center`` and
``all_touched`` modes lines and point sets count the cells they touch instead. A
GeometryCollection is computed as the one kind its parts share (polygons dissolved into
one, lines and points kept as they are); one that mixes dimensions is refused, since
adding areas, lengths and point counts has no meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.zonal import _codes as K

if TYPE_CHECKING:
    from affine import Affine

__all__ = [
    "SUPPORTED",
    "among",
    "coverage_scale",
    "homogeneous",
    "kinds_of",
    "mixed_collections",
    "point_cells",
    "snapped_points",
]

#: Geometry types zonal statistics accept.
SUPPORTED = (
    "Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "MultiPoint",
    "GeometryCollection",
)  # fmt: skip
_POINT, _LINESTRING, _MULTIPOINT, _MULTILINESTRING, _COLLECTION = 0, 1, 4, 5, 7
_MULTI = (4, 5, 6, 7)  # shapely type ids of geometries with parts


def _leaves(geoms: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """The simple, non-empty parts of each geometry (collections flattened) and their owner."""
    import shapely

    parts = np.asarray(geoms, dtype=object)
    index = np.arange(parts.size)
    while np.isin(shapely.get_type_id(parts), _MULTI).any():
        parts, within = shapely.get_parts(parts, return_index=True)
        index = index[within]
    keep = ~shapely.is_empty(parts)
    return parts[keep], index[keep]


def mixed_collections(geoms: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Which geometries are collections whose parts have more than one dimension.

    Parameters
    ----------
    geoms
        Shapely geometries (``None`` allowed).

    Returns
    -------
    numpy.ndarray
        One bool per geometry.
    """
    import shapely

    arr = np.asarray(geoms, dtype=object)
    out = np.zeros(arr.size, dtype=bool)
    collections = np.flatnonzero(shapely.get_type_id(arr) == _COLLECTION)
    if collections.size:
        parts, index = _leaves(arr[collections])
        dims = shapely.get_dimensions(parts)
        low = np.full(collections.size, 3)
        high = np.full(collections.size, -1)
        np.minimum.at(low, index, dims)
        np.maximum.at(high, index, dims)
        out[collections] = (high >= 0) & (low != high)
    return out


def homogeneous(geoms: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Collections replaced by their one kind: polygons dissolved, lines and points kept.

    Parameters
    ----------
    geoms
        Shapely geometries; collections must not mix dimensions (see
        :func:`mixed_collections`).

    Returns
    -------
    numpy.ndarray
        The geometries, each collection a (Multi)Polygon, MultiLineString or MultiPoint
        (empty collections stay as they are).
    """
    import shapely

    out = np.array(geoms, dtype=object)
    for i in np.flatnonzero(shapely.get_type_id(out) == _COLLECTION):
        parts, _ = _leaves(out[i : i + 1])
        if not parts.size:
            continue
        dim = int(shapely.get_dimensions(parts[0]))
        if dim == 2:
            out[i] = shapely.union_all(parts)
        elif dim == 1:
            out[i] = shapely.MultiLineString(list(parts))
        else:
            out[i] = shapely.MultiPoint(list(parts))
    return out


def among(values: npt.ArrayLike, choices: Any) -> npt.NDArray[np.bool_]:
    """``np.isin(values, choices)`` for a few choices, without its setup.

    A small request asks a dozen times whether some codes are among a few; ``np.isin``
    spends about five times longer choosing its method than this takes.
    """
    return np.asarray((np.asarray(values)[..., None] == np.asarray(choices)).any(axis=-1))


def kinds_of(shapes: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The kernel kind of each (homogeneous, non-empty) geometry: ``K.KIND_*``."""
    import shapely

    type_id = shapely.get_type_id(shapes)
    kinds = np.full(type_id.shape, K.KIND_POLYGON, dtype=np.int64)
    kinds[type_id == _POINT] = K.KIND_POINT
    kinds[among(type_id, (_LINESTRING, _MULTILINESTRING))] = K.KIND_LINE
    kinds[type_id == _MULTIPOINT] = K.KIND_MULTIPOINT
    return kinds


def point_cells(points: npt.NDArray[Any], transform: Affine) -> npt.NDArray[np.int64]:
    """Row and column of the cell holding each (non-empty) point.

    A point on a cell edge (to within float noise) belongs to the cell east of a vertical
    edge and south of a horizontal one, whichever way the axes run.
    """
    import shapely

    from cas_xr.zonal._inputs import cell_units

    uv = np.round(cell_units(transform)(shapely.get_coordinates(points)), 9)
    rows = np.floor(uv[:, 1]) if transform.e < 0 else np.ceil(uv[:, 1]) - 1
    cols = np.floor(uv[:, 0]) if transform.a > 0 else np.ceil(uv[:, 0]) - 1
    return np.column_stack([rows, cols]).astype(np.int64)


def _multipoint_cells(
    shapes: npt.NDArray[Any], transform: Affine
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """The cell of each point of each geometry (rows of ``(row, col)``) and its owner."""
    import shapely

    parts, index = shapely.get_parts(shapes, return_index=True)
    keep = ~shapely.is_empty(parts)
    return point_cells(parts[keep], transform), index[keep]


def snapped_points(
    shapes: npt.NDArray[Any], kinds: npt.NDArray[np.int64], transform: Affine
) -> npt.NDArray[Any]:
    """Point sets moved to the centres of their points' cells (the point rule, applied once)."""
    import shapely

    out = np.array(shapes, dtype=object)
    sets = np.flatnonzero(kinds == K.KIND_MULTIPOINT)
    if sets.size:
        cells, index = _multipoint_cells(out[sets], transform)
        x = transform.c + transform.a * (cells[:, 1] + 0.5)
        y = transform.f + transform.e * (cells[:, 0] + 0.5)
        out[sets] = shapely.multipoints(shapely.points(x, y), indices=index)
    return out


def _touched_cells(
    shapes: npt.NDArray[Any], kinds: npt.NDArray[np.int64], transform: Affine, mode: int
) -> npt.NDArray[np.float64]:
    """Cells each line or point set touches in ``mode``, on or off the grid (others: 0)."""
    from cas_xr.zonal._coverage import geometry_rings
    from cas_xr.zonal._inputs import cell_units
    from cas_xr.zonal._lines import line_cells

    out = np.zeros(len(shapes))
    sets = np.flatnonzero(kinds == K.KIND_MULTIPOINT)
    if sets.size:
        cells, index = _multipoint_cells(shapes[sets], transform)
        distinct = np.unique(np.column_stack([index, cells]), axis=0)
        out[sets] = np.bincount(distinct[:, 0], minlength=sets.size)
    lines = np.flatnonzero(kinds == K.KIND_LINE)
    if lines.size:
        rings = geometry_rings(shapes[lines], cell_units(transform), (transform.a, transform.e))
        plane = (-np.inf, np.inf, -np.inf, np.inf)
        g, r, c, length = line_cells(*rings, plane, mode == K.MODE_CENTER)
        keys, inverse = np.unique(np.column_stack([g, r, c]), axis=0, return_inverse=True)
        totals = np.bincount(inverse.ravel(), weights=length, minlength=len(keys))
        least = K.COVERAGE_NOISE * min(abs(transform.a), abs(transform.e))
        touched = keys[totals >= least, 0]
        out[lines] = np.bincount(touched, minlength=lines.size)
    return out


def coverage_scale(
    shapes: npt.NDArray[Any],
    kinds: npt.NDArray[np.int64],
    areas: npt.NDArray[np.float64],
    transform: Affine,
    mode: int,
) -> npt.NDArray[np.float64]:
    """What turns the kernel's valid weight of each geometry into its coverage fraction.

    Polygons: cell area / polygon area (the weight is in cells). Lines: 1 / length (the
    weight is a length in CRS units); point sets: 1 / number of points. In ``center`` and
    ``all_touched`` modes lines and point sets weigh 1 per touched cell: 1 / cells
    touched (on or off the grid). Points: 1 (their coverage is set from the pixel count).
    0 where the measure is 0.
    """
    import shapely

    cell_area = abs(transform.a * transform.e)
    scale = np.divide(cell_area, areas, out=np.zeros(len(areas)), where=areas > 0)
    if mode == K.MODE_EXACT:
        lengths = shapely.length(shapes)
        counts = shapely.get_num_coordinates(shapes).astype(np.float64)
        measure = np.where(kinds == K.KIND_LINE, lengths, counts)
    else:
        measure = _touched_cells(shapes, kinds, transform, mode)
    other = among(kinds, (K.KIND_LINE, K.KIND_MULTIPOINT))
    scale[other] = np.divide(1.0, measure, out=np.zeros(len(measure)), where=measure > 0)[other]
    return scale
