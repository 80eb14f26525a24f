"""Pixel-grid helpers: snap a box outward to a source grid; a STAC asset's grid."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from affine import Affine

if TYPE_CHECKING:
    import pystac

__all__ = ["ItemGrid", "lonlat_bounds_to_crs", "proj_grid", "snap_bounds"]


@dataclass(frozen=True)
class ItemGrid:
    """The pixel grid of a STAC asset: CRS (as STAC names it), first cell and shape."""

    crs: str
    transform: Affine
    shape: tuple[int, int]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` in the grid's CRS (north-up)."""
        t, (rows, cols) = self.transform, self.shape
        return (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)


def _proj(item: pystac.Item, asset: str, key: str) -> Any:
    extra = item.assets[asset].extra_fields
    return extra.get(key, item.properties.get(key))


def proj_grid(item: pystac.Item, asset: str) -> ItemGrid | None:
    """The pixel grid of one asset from the projection extension, if complete."""
    transform, shape = _proj(item, asset, "proj:transform"), _proj(item, asset, "proj:shape")
    code = _proj(item, asset, "proj:code") or (
        f"EPSG:{_proj(item, asset, 'proj:epsg')}" if _proj(item, asset, "proj:epsg") else None
    )
    if transform and shape and code:
        return ItemGrid(code, Affine(*transform[:6]), (int(shape[0]), int(shape[1])))
    return None


def lonlat_bounds_to_crs(
    bbox: tuple[float, float, float, float], crs: Any
) -> tuple[float, float, float, float]:
    """Transform a lon/lat box to ``crs``, densifying its edges so curved edges are covered.

    Parameters
    ----------
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``.
    crs
        Anything pyproj accepts.

    Returns
    -------
    tuple of float
        ``(xmin, ymin, xmax, ymax)`` in ``crs``.
    """
    import pyproj

    target = pyproj.CRS.from_user_input(crs)
    if target.equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True):
        return bbox
    transformer = pyproj.Transformer.from_crs("EPSG:4326", target, always_xy=True)
    xmin, ymin, xmax, ymax = transformer.transform_bounds(*bbox, densify_pts=21)
    return (xmin, ymin, xmax, ymax)


def snap_bounds(
    transform: Affine, bounds: tuple[float, float, float, float]
) -> tuple[Affine, tuple[int, int]]:
    """The smallest window of the grid of ``transform`` that contains ``bounds``.

    Parameters
    ----------
    transform
        The source grid (north-up: ``a > 0``, ``e < 0``, no rotation).
    bounds
        ``(xmin, ymin, xmax, ymax)`` in the grid's CRS.

    Returns
    -------
    tuple
        ``(window_transform, (rows, cols))``, snapped outward to whole cells.
    """
    if transform.b or transform.d or transform.a <= 0 or transform.e >= 0:
        raise ValueError(f"only north-up, unrotated grids can be snapped, got {transform!r}")
    xmin, ymin, xmax, ymax = bounds
    eps = 1e-9
    col0 = math.floor((xmin - transform.c) / transform.a + eps)
    col1 = math.ceil((xmax - transform.c) / transform.a - eps)
    row0 = math.floor((transform.f - ymax) / -transform.e + eps)
    row1 = math.ceil((transform.f - ymin) / -transform.e - eps)
    cols, rows = max(col1 - col0, 1), max(row1 - row0, 1)
    return transform @ Affine.translation(col0, row0), (rows, cols)
