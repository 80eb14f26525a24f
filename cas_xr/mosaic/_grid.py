"""Pixel grids: the grid of a cube, a box snapped outward onto a lattice, source windows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from affine import Affine

from cas_xr.errors import InvalidArgumentError

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

__all__ = [
    "bounds_of",
    "crs_wkt",
    "grid_of",
    "output_grid",
    "same_lattice",
    "source_window",
    "transform_bbox",
]

#: Tolerance, in cells, for "on a cell edge" (absorbs float noise such as 49.99999999999716).
EPS = 1e-9
#: Points added along each edge of a box before transforming it between CRSs.
DENSIFY_PTS = 21
#: Tolerance, in cells, for two grids to share one lattice.
_LATTICE_TOL = 1e-6


def transform_bbox(
    bbox: tuple[float, float, float, float], src_crs: Any, dst_crs: Any
) -> tuple[float, float, float, float]:
    """Transform a box between CRSs, densifying its edges so that curved edges stay inside.

    Parameters
    ----------
    bbox
        ``(xmin, ymin, xmax, ymax)`` in ``src_crs``.
    src_crs, dst_crs
        Anything pyproj accepts.

    Returns
    -------
    tuple of float
        The smallest ``(xmin, ymin, xmax, ymax)`` in ``dst_crs`` containing the box.
    """
    import pyproj

    src, dst = pyproj.CRS.from_user_input(src_crs), pyproj.CRS.from_user_input(dst_crs)
    if src.equals(dst, ignore_axis_order=True):
        return bbox
    transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    xmin, ymin, xmax, ymax = transformer.transform_bounds(*bbox, densify_pts=DENSIFY_PTS)
    if not all(map(math.isfinite, (xmin, ymin, xmax, ymax))):
        raise InvalidArgumentError(
            f"the box {bbox} cannot be transformed from {src_crs} to {dst_crs}"
        )
    return (xmin, ymin, xmax, ymax)


def bounds_of(grid: GeoBox) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a grid, in its CRS."""
    box = grid.boundingbox
    return (box.left, box.bottom, box.right, box.top)


def crs_wkt(grid: GeoBox) -> str:
    """The WKT of a grid's CRS.

    Raises
    ------
    ValueError
        If the grid has no CRS.
    """
    if grid.crs is None:
        raise InvalidArgumentError("the grid has no CRS")
    return grid.crs.to_wkt()


def grid_of(da: xr.DataArray) -> GeoBox:
    """The north-up pixel grid of a cube with ``y``/``x`` dimensions and a CRS.

    A cube whose ``y`` ascends gets the grid of its rows in north-up order.

    Raises
    ------
    ValueError
        If the cube has no CRS, no regular grid, or a rotated or east-to-west one.
    """
    import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
    from odc.geo.geobox import GeoBox

    geobox = da.odc.geobox
    if geobox is None or da.odc.crs is None:
        raise InvalidArgumentError(
            "the cube has no CRS or no regular y/x grid; set one, e.g. with "
            "da.rio.write_crs('EPSG:4326')"
        )
    t, (rows, _) = geobox.transform, geobox.shape
    if t.b or t.d or t.a <= 0:
        raise InvalidArgumentError(
            f"only unrotated west-to-east grids are supported, got {tuple(t)[:6]}"
        )
    if t.e > 0:
        return GeoBox(geobox.shape, Affine(t.a, 0.0, t.c, 0.0, -t.e, t.f + rows * t.e), geobox.crs)
    return geobox


def _snap(
    bounds: tuple[float, float, float, float],
    resolution: tuple[float, float],
    anchor: tuple[float, float],
    crs: Any,
) -> GeoBox:
    from odc.geo.geobox import GeoBox

    (rx, ry), (ax, ay), (xmin, ymin, xmax, ymax) = resolution, anchor, bounds
    col0, col1 = math.floor((xmin - ax) / rx + EPS), math.ceil((xmax - ax) / rx - EPS)
    row0, row1 = math.floor((ay - ymax) / ry + EPS), math.ceil((ay - ymin) / ry - EPS)
    transform = Affine(rx, 0.0, ax, 0.0, -ry, ay) @ Affine.translation(col0, row0)
    return GeoBox((max(row1 - row0, 1), max(col1 - col0, 1)), transform, crs)


def _fit_resolution(native: GeoBox, crs: Any) -> float:
    """The native cell size expressed in ``crs``, measured at the centre of ``native``."""
    fitted = native.to_crs(crs, resolution="fit")
    return min(abs(fitted.resolution.x), abs(fitted.resolution.y))


def output_grid(
    native: GeoBox,
    bbox: tuple[float, float, float, float],
    *,
    bbox_crs: Any = "EPSG:4326",
    crs: Any = None,
    resolution: float | None = None,
) -> GeoBox:
    """The output grid of a box: ``bbox`` snapped outward onto a lattice.

    Parameters
    ----------
    native
        The grid of the data (north-up).
    bbox
        ``(xmin, ymin, xmax, ymax)`` in ``bbox_crs``; transformed to the output CRS with
        densified edges.
    bbox_crs
        CRS of ``bbox`` (default lon/lat).
    crs
        Output CRS (default: the native one).
    resolution
        Output cell size in units of the output CRS (default: the native cell size; in
        another CRS, the native cell size measured at the centre of ``native``).

    Returns
    -------
    odc.geo.geobox.GeoBox
        Cell edges lie on multiples of the resolution (as with ``gdalwarp -tap``), shifted
        in the native CRS by the native grid's offset from such multiples: so the native
        resolution gives the native cells, and a multiple of it whole blocks of them,
        whatever window of the native grid ``native`` is.
    """
    import pyproj

    out_crs = native.crs if crs is None else pyproj.CRS.from_user_input(crs)
    same_crs = pyproj.CRS.from_user_input(native.crs).equals(out_crs, ignore_axis_order=True)
    bounds = transform_bbox(bbox, bbox_crs, out_crs)
    if resolution is not None:
        cell = (resolution, resolution)
    elif same_crs:
        cell = (native.transform.a, -native.transform.e)
    else:
        fit = _fit_resolution(native, out_crs)
        cell = (fit, fit)
    t = native.transform
    # the native lattice's phase: the same anchor for any window of one grid
    phase = (t.c - round(t.c / t.a) * t.a, t.f - round(t.f / t.e) * t.e)
    return _snap(
        bounds, cell, phase if same_crs else (0.0, 0.0), native.crs if same_crs else out_crs
    )


def same_lattice(src: GeoBox, dst: GeoBox) -> tuple[int, int] | None:
    """The ``(row, col)`` offset of ``dst`` in ``src`` when both share cells, else None.

    Two grids share cells when they have one CRS, one cell size and origins a whole
    number of cells apart: then ``dst`` is a window of ``src`` (possibly reaching past it)
    and its pixels are copied, never resampled.
    """
    import pyproj

    s, d = src.transform, dst.transform
    if not pyproj.CRS.from_user_input(src.crs).equals(dst.crs, ignore_axis_order=True):
        return None
    if not (math.isclose(s.a, d.a, rel_tol=1e-9) and math.isclose(s.e, d.e, rel_tol=1e-9)):
        return None
    col, row = (d.c - s.c) / s.a, (d.f - s.f) / s.e
    if abs(col - round(col)) > _LATTICE_TOL or abs(row - round(row)) > _LATTICE_TOL:
        return None
    return round(row), round(col)


def source_window(src: GeoBox, dst: GeoBox, *, pad: int) -> tuple[int, int, int, int]:
    """The cells of ``src``'s lattice that resampling onto ``dst`` reads.

    Parameters
    ----------
    src, dst
        Source and destination grids (any CRSs).
    pad
        Extra source cells on each side (the resampling kernel's reach).

    Returns
    -------
    tuple of int
        ``(row0, row1, col0, col1)`` on ``src``'s lattice, not clipped to ``src`` (they may
        be negative or past its size).
    """
    t = src.transform
    xmin, ymin, xmax, ymax = transform_bbox(bounds_of(dst), dst.crs, src.crs)
    return (
        math.floor((ymax - t.f) / t.e + EPS) - pad,
        math.ceil((ymin - t.f) / t.e - EPS) + pad,
        math.floor((xmin - t.c) / t.a + EPS) - pad,
        math.ceil((xmax - t.c) / t.a - EPS) + pad,
    )
