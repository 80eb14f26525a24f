"""The valid cells under a geometry and their coverage weights."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from affine import Affine

__all__ = ["CellWeights", "WeightMode", "cells_under"]

CellWeights = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
WeightMode = Literal["exact", "center", "all_touched"]

#: Cells covered by less than this fraction are floating-point noise along an edge that
#: coincides with a cell edge (e.g. 1.4e-11); they are dropped so that min, max, unique
#: and the weighted median do not depend on that noise.
COVERAGE_NOISE = 1e-9


def _valid(values: npt.NDArray[Any], nodata: float | None) -> npt.NDArray[np.bool_]:
    mask = np.ones(values.shape, dtype=bool)
    if np.issubdtype(values.dtype, np.floating):
        mask &= ~np.isnan(values)
    if nodata is not None and not math.isnan(nodata):
        mask &= values != nodata
    return mask


def _point_cell(
    array: npt.NDArray[Any], transform: Affine, nodata: float | None, x: float, y: float
) -> CellWeights:
    col_f, row_f = ~transform @ (x, y)
    # a point on a cell edge (to within float noise) belongs to the cell east/south of it
    row, col = math.floor(round(row_f, 9)), math.floor(round(col_f, 9))
    empty = (np.empty(0), np.empty(0))
    if not (0 <= row < array.shape[0] and 0 <= col < array.shape[1]):
        return empty
    value = array[row, col]
    if not _valid(np.asarray([value]), nodata)[0]:
        return empty
    return np.asarray([value], dtype=np.float64), np.ones(1)


def _north_up(array: npt.NDArray[Any], transform: Affine) -> tuple[npt.NDArray[Any], Affine]:
    if transform.b != 0 or transform.d != 0:
        raise ValueError("rotated or sheared grids are not supported; warp the raster first")
    if transform.e > 0:  # ascending y: flip to north-up
        flipped = transform @ Affine.translation(0, array.shape[0]) @ Affine.scale(1, -1)
        return array[::-1], flipped
    return array, transform


def _masked_cells(
    array: npt.NDArray[Any],
    transform: Affine,
    geometry: Any,
    nodata: float | None,
    all_touched: bool,
) -> CellWeights:
    from rasterio.features import geometry_mask

    inside = geometry_mask(
        [geometry], out_shape=array.shape, transform=transform, all_touched=all_touched, invert=True
    )
    selected = inside & _valid(array, nodata)
    values = array[selected].astype(np.float64)
    return values, np.ones(values.size)


def cells_under(
    array: npt.NDArray[Any],
    transform: Affine,
    geometry: Any,
    *,
    nodata: float | None = None,
    mode: WeightMode = "exact",
) -> CellWeights:
    """Values and coverage weights of the valid cells under ``geometry``.

    Parameters
    ----------
    array
        A 2-D ``(y, x)`` array.
    transform
        Its affine transform (north-up or ascending y).
    geometry
        A shapely Point, Polygon or MultiPolygon in the array's CRS.
    nodata
        Value marking missing cells (NaN is always missing).
    mode
        ``"exact"``: weight = fraction of the cell covered (exactextract);
        ``"center"``: weight 1 for cells whose centre is inside; ``"all_touched"``:
        weight 1 for every cell the geometry touches (both via rasterio).

    Returns
    -------
    tuple of numpy.ndarray
        ``(values, weights)``: for polygons, the exact fraction of each cell covered
        (exactextract, dropping cells covered less than :data:`COVERAGE_NOISE`); for a
        point, the containing cell with weight 1. A point on a cell edge belongs to the
        cell east of a vertical edge and south of a horizontal one (``floor`` of its
        fractional cell index).
    """
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D (y, x) array, got shape {array.shape}")
    array, transform = _north_up(array, transform)
    if geometry.geom_type == "Point":
        return _point_cell(array, transform, nodata, geometry.x, geometry.y)
    if array.size == 0:
        return np.empty(0), np.empty(0)
    if mode != "exact":
        return _masked_cells(array, transform, geometry, nodata, all_touched=mode == "all_touched")
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    rows, cols = array.shape
    xmin, ymax = transform.c, transform.f
    xmax, ymin = xmin + cols * transform.a, ymax + rows * transform.e
    source = NumPyRasterSource(
        np.ma.masked_array(array, mask=~_valid(array, nodata)), xmin, ymin, xmax, ymax
    )
    feature = {"type": "Feature", "properties": {}, "geometry": geometry.__geo_interface__}
    (result,) = exact_extract(source, [feature], ["values", "coverage"], output="geojson")
    props = result["properties"]
    values = np.asarray(props["values"], dtype=np.float64)
    coverage = np.asarray(props["coverage"], dtype=np.float64)
    keep = coverage >= COVERAGE_NOISE
    return values[keep], coverage[keep]
