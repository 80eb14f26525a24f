"""Put a cube on an output grid: copy its cells when the grids share a lattice, else warp."""

from __future__ import annotations

import math
import os
from collections.abc import Hashable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from affine import Affine

from cas_xr.errors import InvalidArgumentError
from cas_xr.models import RasterResampling
from cas_xr.mosaic._grid import (
    bounds_of,
    crs_wkt,
    grid_of,
    output_grid,
    same_lattice,
    source_window,
    transform_bbox,
)

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

__all__ = [
    "check_resampling",
    "clip",
    "is_categorical",
    "nodata_of",
    "north_up",
    "reach",
    "read_bounds",
    "regrid",
]

#: Reach of each kernel in source cells at scale 1 (GDAL widens it when downsampling).
_REACH = {
    RasterResampling.NEAREST: 1,
    RasterResampling.BILINEAR: 1,
    RasterResampling.CUBIC: 2,
    RasterResampling.AVERAGE: 1,
}
#: Attributes that describe the encoding of the input, not the output.
_ENCODING_ATTRS = ("_FillValue", "missing_value", "nodata")
_CLASS_ATTRS = ("class_names", "flag_values")


def check_resampling(
    resampling: RasterResampling | str, *, categorical: bool = False
) -> RasterResampling:
    """Validate a resampling method.

    Parameters
    ----------
    resampling
        One of :class:`~cas_xr.models.RasterResampling` (``nearest``, ``bilinear``,
        ``cubic``, ``average``).
    categorical
        Whether the values are class codes: then only ``nearest`` keeps them valid.

    Returns
    -------
    RasterResampling

    Raises
    ------
    ValueError
        For an unknown method, or an interpolating/averaging one on categorical data.
    """
    try:
        method = RasterResampling(resampling)
    except ValueError:
        choices = ", ".join(m.value for m in RasterResampling)
        raise InvalidArgumentError(
            f"unknown resampling {resampling!r}; choose one of {choices}"
        ) from None
    if categorical and method is not RasterResampling.NEAREST:
        raise InvalidArgumentError(
            f"resampling={method.value!r} would invent class codes in categorical data; "
            "use resampling='nearest'"
        )
    return method


def is_categorical(da: xr.DataArray) -> bool:
    """Whether a cube holds class codes: it has ``class_names`` or ``flag_values`` attrs."""
    return any(key in da.attrs for key in _CLASS_ATTRS)


def nodata_of(da: xr.DataArray, nodata: float | None = None) -> float | None:
    """The nodata value of a cube: ``nodata`` if given, else its attrs, else NaN for floats.

    Integer cubes without any nodata value return None (no cell is invalid).

    Raises
    ------
    ValueError
        If the value does not fit the cube's dtype.
    """
    value = nodata
    for key in ("nodata", "_FillValue", "missing_value"):
        if value is None:
            value = da.attrs.get(key, da.encoding.get(key))
    kind = da.dtype.kind
    if value is None:
        return math.nan if kind == "f" else None
    value = float(value)
    if kind in "iu":
        info = np.iinfo(da.dtype)
        if not (value.is_integer() and info.min <= value <= info.max):
            raise InvalidArgumentError(f"nodata {value} does not fit the cube's dtype {da.dtype}")
    return value


def north_up(da: xr.DataArray) -> xr.DataArray:
    """The cube with dims ``(..., y, x)`` and rows from north to south."""
    da = da.transpose(..., "y", "x")
    y = da["y"].values
    return da.isel(y=slice(None, None, -1)) if y.size > 1 and y[1] > y[0] else da


def _masked_nan(da: xr.DataArray, nodata: float | None) -> xr.DataArray:
    """Mark NaN cells with ``nodata`` so that every invalid cell holds the one value."""
    if da.dtype.kind != "f" or nodata is None or math.isnan(nodata):
        return da
    if isinstance(da.data, np.ndarray) and not np.isnan(da.data).any():
        return da  # in memory and clean: spare a copy
    return da.where(~np.isnan(da), da.dtype.type(nodata))


def _fill(nodata: float | None) -> float:
    return 0.0 if nodata is None else nodata


def _window(
    data: Any, offset: tuple[int, int], shape: tuple[int, int], nodata: float | None
) -> Any:
    """Cells ``offset .. offset + shape`` of ``data``, padded with nodata past its edges."""
    import dask.array

    xp: Any = dask.array if isinstance(data, dask.array.Array) else np
    (row, col), (rows, cols) = offset, shape
    height, width = data.shape[-2:]
    r0, r1, c0, c1 = max(row, 0), min(row + rows, height), max(col, 0), min(col + cols, width)
    if r0 >= r1 or c0 >= c1:
        raise InvalidArgumentError("the box does not intersect the cube")
    part = data[..., r0:r1, c0:c1]
    pads = [(0, 0)] * (data.ndim - 2) + [(r0 - row, row + rows - r1), (c0 - col, col + cols - c1)]
    if not any(p for pair in pads for p in pair):
        return part
    return xp.pad(part, pads, mode="constant", constant_values=_fill(nodata))


def _warp_planes(
    block: npt.NDArray[Any],
    *,
    src: GeoBox,
    dst: GeoBox,
    method: RasterResampling,
    nodata: float | None,
) -> npt.NDArray[Any]:
    """Warp every 2-D plane of ``block`` from ``src`` to ``dst`` with GDAL (as gdalwarp)."""
    import rasterio.warp
    from rasterio.crs import CRS

    out = np.full((*block.shape[:-2], *dst.shape), _fill(nodata), dtype=block.dtype)
    for index in np.ndindex(*block.shape[:-2]):
        rasterio.warp.reproject(
            np.ascontiguousarray(block[index]),
            out[index],
            src_transform=src.transform,
            src_crs=CRS.from_wkt(crs_wkt(src)),
            src_nodata=nodata,
            dst_transform=dst.transform,
            dst_crs=CRS.from_wkt(crs_wkt(dst)),
            dst_nodata=nodata,
            resampling=rasterio.warp.Resampling[method.value],
            num_threads=os.cpu_count() or 1,
        )
    return out


def reach(src: GeoBox, dst: GeoBox, resampling: RasterResampling | str) -> int:
    """How many source cells past ``dst``'s footprint resampling onto ``dst`` may read.

    The kernel's reach, widened by the downsampling factor as GDAL's warper does, plus one.
    """
    xmin, _, xmax, _ = transform_bbox(bounds_of(dst), dst.crs, src.crs)
    scale = max(1.0, (xmax - xmin) / dst.shape[1] / src.transform.a)
    return _REACH[RasterResampling(resampling)] * math.ceil(scale) + 1


def read_bounds(
    src: GeoBox, dst: GeoBox, resampling: RasterResampling | str
) -> tuple[float, float, float, float]:
    """The box, in ``src``'s CRS, of the source cells that resampling onto ``dst`` reads.

    Parameters
    ----------
    src, dst
        Source and destination grids.
    resampling
        The resampling method (its kernel widens the box).

    Returns
    -------
    tuple of float
        ``(xmin, ymin, xmax, ymax)``, on cell edges of ``src``'s lattice (which may extend
        past ``src``).
    """
    row0, row1, col0, col1 = source_window(src, dst, pad=reach(src, dst, resampling))
    t = src.transform
    return (t.c + col0 * t.a, t.f + row1 * t.e, t.c + col1 * t.a, t.f + row0 * t.e)


def _warp(
    da: xr.DataArray, src: GeoBox, dst: GeoBox, method: RasterResampling, nodata: float | None
) -> Any:
    import dask.array
    from odc.geo.geobox import GeoBox

    row0, row1, col0, col1 = source_window(src, dst, pad=reach(src, dst, method))
    # cells past the cube's edge are read as nodata, so results never depend on its extent
    data = _window(da.data, (row0, col0), (row1 - row0, col1 - col0), nodata)
    window = GeoBox(data.shape[-2:], src.transform @ Affine.translation(col0, row0), src.crs)
    warp = partial(_warp_planes, src=window, dst=dst, method=method, nodata=nodata)
    if not isinstance(data, dask.array.Array):
        return warp(np.asarray(data))
    data = data.rechunk({data.ndim - 2: -1, data.ndim - 1: -1})
    return data.map_blocks(
        warp,
        chunks=(*data.chunks[:-2], (dst.shape[0],), (dst.shape[1],)),
        dtype=data.dtype,
        meta=np.empty((0,) * data.ndim, dtype=data.dtype),
    )


def regrid(
    da: xr.DataArray,
    grid: GeoBox,
    *,
    resampling: RasterResampling | str = RasterResampling.NEAREST,
    nodata: float | None = None,
) -> xr.DataArray:
    """Put a cube on ``grid``, lazily when it is Dask-backed.

    When ``grid`` shares the cube's lattice (same CRS and cell size, origin a whole number
    of cells away) the cells are copied, never resampled; elsewhere GDAL's warper
    (``rasterio.warp.reproject``, the engine of ``gdalwarp``) resamples the full-resolution
    cells with ``resampling``, ignoring nodata cells. Cells of ``grid`` outside the cube
    get the nodata value, and NaN cells of float data with another nodata value are set to
    it, so every invalid cell holds one value.

    Parameters
    ----------
    da
        A cube with ``y``/``x`` dimensions (others, such as ``time``, are kept) and a CRS.
    grid
        The output grid (e.g. from :func:`~cas_xr.mosaic.output_grid`).
    resampling
        A :class:`~cas_xr.models.RasterResampling` method.
    nodata
        Nodata value of the cube (default: see :func:`nodata_of`).

    Returns
    -------
    xarray.DataArray
        On ``grid`` (dims ``..., y, x``, CRS and transform written), attrs kept with
        ``nodata`` set.

    Raises
    ------
    ValueError
        If the cube has no usable grid, ``grid`` does not intersect it, or ``nodata``
        does not fit its dtype.

    Notes
    -----
    A warp reads each time step's window of source cells in one piece: on a Dask-backed
    cube that window is one chunk.
    """
    import odc.geo.xr
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    method = check_resampling(resampling)
    da = north_up(da)
    src = grid_of(da)
    fill = nodata_of(da, nodata)
    da = _masked_nan(da, fill)
    offset = same_lattice(src, grid)
    if offset is not None:
        data = _window(da.data, offset, grid.shape.yx, fill)
    else:
        data = _warp(da, src, grid, method, fill)
    lead: list[Hashable] = list(da.dims[:-2])
    coords = {name: c for name, c in da.coords.items() if set(c.dims) <= set(lead)}
    coords.pop("spatial_ref", None)
    attrs = {k: v for k, v in da.attrs.items() if k not in _ENCODING_ATTRS}
    out = xr.DataArray(
        data,
        dims=(*lead, "y", "x"),
        coords={**coords, **odc.geo.xr.xr_coords(grid, always_yx=True)},
        attrs=attrs,
        name=da.name,
    )
    out = out.rio.write_nodata(fill, encoded=False) if fill is not None else out
    out.attrs["nodata"] = fill
    return out


def clip(
    da: xr.DataArray,
    bbox: tuple[float, float, float, float],
    *,
    bbox_crs: Any = "EPSG:4326",
    target_crs: Any = None,
    target_resolution: float | None = None,
    resampling: RasterResampling | str = RasterResampling.NEAREST,
    nodata: float | None = None,
    categorical: bool | None = None,
) -> xr.DataArray:
    """Cut a cube to a box snapped outward to whole cells, optionally on another grid.

    Parameters
    ----------
    da
        A cube with ``y``/``x`` dimensions and a CRS (rioxarray/odc-geo conventions).
    bbox
        ``(xmin, ymin, xmax, ymax)`` in ``bbox_crs``.
    bbox_crs
        CRS of ``bbox`` (default lon/lat).
    target_crs
        Output CRS (default: the cube's).
    target_resolution
        Output cell size in units of the output CRS (default: the cube's).
    resampling
        Used only when the output grid is not a window of the cube's.
    nodata
        Nodata value of the cube (default: see :func:`nodata_of`).
    categorical
        Whether the values are class codes (default: the cube has ``class_names`` or
        ``flag_values`` attrs); only ``nearest`` is allowed then.

    Returns
    -------
    xarray.DataArray
        See :func:`regrid`; the grid is :func:`~cas_xr.mosaic.output_grid`'s. Lazy when
        the cube is Dask-backed.

    Raises
    ------
    ValueError
        For a bad resampling method, a box outside the cube or a cube without a grid.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> da = xr.DataArray(
    ...     np.arange(16.0).reshape(4, 4), dims=("y", "x"),
    ...     coords={"y": [3.5, 2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]},
    ... ).rio.write_crs("EPSG:32633")
    >>> clip(da, (1.2, 1.2, 2.5, 2.5), bbox_crs="EPSG:32633").values
    array([[ 5.,  6.],
           [ 9., 10.]])
    """
    categorical = is_categorical(da) if categorical is None else categorical
    method = check_resampling(resampling, categorical=categorical)
    da = north_up(da)
    grid = output_grid(
        grid_of(da), bbox, bbox_crs=bbox_crs, crs=target_crs, resolution=target_resolution
    )
    return regrid(da, grid, resampling=method, nodata=nodata)
