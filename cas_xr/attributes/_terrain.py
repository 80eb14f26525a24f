"""Terrain per cell on the source grid: slope and aspect of a DEM (Horn's method).

The gradient of each cell comes from its eight neighbours (Horn 1981, as GDAL's
``gdaldem``), in metres per metre: on a projected grid the cell size is the transform's,
on a geographic grid it is the length of the cell on the CRS's ellipsoid at the latitude
of its row (east-west: ``N(lat) cos(lat) dlon``, north-south: ``M(lat) dlat``, with
``N`` and ``M`` the prime-vertical and meridional radii of curvature). Chunks are
computed with a one-cell halo (:func:`dask.array.map_overlap`), so the result does not
depend on the chunking; cells on the outer edge of the array, and cells next to nodata,
are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import UnsupportedGridError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["TERRAIN", "aspect", "gradient", "slope", "slope_m_per_km"]

FloatArray = npt.NDArray[np.float64]


def _cell_sizes(dem: xr.DataArray) -> tuple[Any, Any, float, float]:
    """Per-row east-west size (metres), north-south size, and the signs of the axes.

    Returns ``(dx, dy, x_sign, y_sign)``: ``dx`` a float or a 1-D array over rows, ``dy``
    a float or an array, ``x_sign`` +1 when x grows eastward, ``y_sign`` +1 when rows go
    north to south (north-up).
    """
    import rioxarray  # noqa: F401  (registers .rio)

    crs = dem.rio.crs
    if crs is None:
        raise UnsupportedGridError(
            "the DEM has no CRS; set one (da.rio.write_crs('EPSG:...')): slope needs the cell "
            "size in metres"
        )
    transform = dem.rio.transform(recalc=True)
    if transform.b != 0 or transform.d != 0:
        raise UnsupportedGridError("slope needs a grid without rotation (transform b = d = 0)")
    x_sign = 1.0 if transform.a > 0 else -1.0
    y_sign = 1.0 if transform.e < 0 else -1.0
    if crs.is_geographic:
        import pyproj

        ellipsoid = pyproj.CRS.from_user_input(crs.to_wkt()).ellipsoid
        if ellipsoid is None:
            raise UnsupportedGridError(f"the DEM's geographic CRS {crs} names no ellipsoid")
        a, f = ellipsoid.semi_major_metre, 1.0 / ellipsoid.inverse_flattening
        e2 = f * (2.0 - f)
        lat = np.radians(np.asarray(dem["y"].values, dtype=np.float64))
        w = np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
        n_radius, m_radius = a / w, a * (1.0 - e2) / w**3
        dx = n_radius * np.cos(lat) * math.radians(abs(transform.a))
        dy = m_radius * math.radians(abs(transform.e))
        return dx, dy, x_sign, y_sign
    unit = (crs.linear_units or "").lower()
    if unit not in {"metre", "meter", "m"}:
        raise UnsupportedGridError(
            f"slope needs a grid in metres or degrees; this CRS's unit is {unit or 'unknown'!r}: "
            "reproject the DEM first"
        )
    return abs(transform.a), abs(transform.e), x_sign, y_sign


def _horn(z: FloatArray, dx: FloatArray, dy: FloatArray, signs: tuple[float, float]) -> FloatArray:
    """Gradients east and north of the inner cells of a block with a one-cell halo.

    ``dx``/``dy`` hold the cell sizes of the block's rows (halo rows included); the result
    has shape ``(2, rows - 2, cols - 2)``: the block without its halo.
    """
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    x_sign, y_sign = signs
    rows_dx, rows_dy = dx[1:-1, 1:2], dy[1:-1, 1:2]  # column 0 may be padding
    east = x_sign * ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * rows_dx)
    north = y_sign * ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * rows_dy)
    out = np.stack([east, north])
    out[:, np.isnan(z[1:-1, 1:-1])] = np.nan  # the stencil skips the centre: a nodata cell stays
    return out


def gradient(dem: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Surface gradient of a DEM (metres per metre), eastward and northward, lazily.

    Parameters
    ----------
    dem
        Heights in metres, dims ``(y, x)`` (a rioxarray CRS and transform), nodata in
        ``attrs["nodata"]`` or NaN. Dask-backed or in memory.

    Returns
    -------
    tuple of xarray.DataArray
        ``dz/d(east)`` and ``dz/d(north)`` on the DEM's grid, float64, NaN on the
        outer edge and next to nodata.

    Raises
    ------
    UnsupportedGridError
        Without a CRS, with a rotated grid, or in a CRS measured in neither metres nor degrees.
    """
    import dask.array

    if dem.dims != ("y", "x"):
        raise UnsupportedGridError(
            f"slope and aspect take a (y, x) DEM, got dims {dem.dims}; select one layer first"
        )
    dx, dy, x_sign, y_sign = _cell_sizes(dem)
    data = dem.data
    if not isinstance(data, dask.array.Array):
        data = dask.array.from_array(np.asarray(data), chunks=-1)
    z = data.astype(np.float64)
    nodata = dem.attrs.get("nodata")
    if nodata is not None and not np.isnan(nodata):
        z = dask.array.where(z == nodata, np.nan, z)
    rows = np.broadcast_to(np.asarray(dx, dtype=np.float64).reshape(-1, 1), dem.shape)
    cols = np.broadcast_to(np.asarray(dy, dtype=np.float64).reshape(-1, 1), dem.shape)
    dx_arr = dask.array.from_array(rows, chunks=z.chunks)
    dy_arr = dask.array.from_array(cols, chunks=z.chunks)
    both = dask.array.map_overlap(
        lambda zz, xx, yy: _horn(zz, xx, yy, (x_sign, y_sign)),
        z, dx_arr, dy_arr,
        depth={0: 1, 1: 1}, boundary=np.nan, trim=False, new_axis=0,
        chunks=((2,), *z.chunks), dtype=np.float64, meta=np.empty((0, 0, 0)),
    )  # fmt: skip
    east = dem.copy(data=both[0])
    north = dem.copy(data=both[1])
    for da in (east, north):
        da.attrs = {"units": "m/m"}
    return east, north


def _finish(dem: xr.DataArray, data: Any, name: str, units: str) -> xr.DataArray:
    out = dem.copy(data=data)
    out.name = name
    out.attrs = {"units": units, "nodata": np.nan}
    import rioxarray  # noqa: F401  (registers .rio)

    return out.rio.write_nodata(np.nan, encoded=False)


def slope(dem: xr.DataArray) -> xr.DataArray:
    """Slope in degrees from the horizontal, per cell (see :func:`gradient`).

    Parameters
    ----------
    dem
        Heights in metres, dims ``(y, x)``, with a CRS.

    Returns
    -------
    xarray.DataArray
        Degrees in [0, 90), lazily; NaN on the edge and next to nodata.
    """
    east, north = gradient(dem)
    return _finish(dem, np.degrees(np.arctan(np.hypot(east.data, north.data))), "slope", "degree")


def slope_m_per_km(dem: xr.DataArray) -> xr.DataArray:
    """Slope as rise over run in metres per kilometre (CAMELS' unit), per cell.

    Parameters
    ----------
    dem
        Heights in metres, dims ``(y, x)``, with a CRS.

    Returns
    -------
    xarray.DataArray
        ``1000 * tan(slope)``, lazily; NaN on the edge and next to nodata.
    """
    east, north = gradient(dem)
    return _finish(dem, 1000.0 * np.hypot(east.data, north.data), "slope", "m/km")


def aspect(dem: xr.DataArray) -> xr.DataArray:
    """Aspect: the compass direction a slope faces (downhill), per cell.

    Parameters
    ----------
    dem
        Heights in metres, dims ``(y, x)``, with a CRS.

    Returns
    -------
    xarray.DataArray
        Degrees clockwise from north in [0, 360) (90: facing east), lazily; NaN where the
        surface is flat, on the edge and next to nodata. Aspect is circular: its
        arithmetic mean over an area means little (use ``distribution`` of binned
        values, or the mean of ``cos``/``sin``).
    """
    east, north = gradient(dem)
    import dask.array

    flat = (east.data == 0) & (north.data == 0)
    azimuth = np.degrees(np.arctan2(-east.data, -north.data)) % 360.0
    return _finish(dem, dask.array.where(flat, np.nan, azimuth), "aspect", "degree")


#: The derived functions provider files may name (``derive: {function: ...}``).
TERRAIN: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "slope": slope,
    "slope_m_per_km": slope_m_per_km,
    "aspect": aspect,
}
