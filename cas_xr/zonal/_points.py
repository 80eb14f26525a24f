"""``point_query``: raster values at points, nearest cell or bilinear (rasterstats' rules)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import InvalidArgumentError, InvalidGeometryError

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.zonal._encoding import Encoding

__all__ = ["point_query"]

_INTERPOLATIONS = ("bilinear", "nearest")


def _corners(
    u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
) -> tuple[Any, Any, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The four cells around each point, their bilinear weights and the fallback cell.

    As rasterstats' ``point_window_unitxy``/``bilinear``: the 2x2 cells whose centres
    surround the point (columns ``c - 1, c`` and rows ``r - 1, r`` with ``c, r`` the
    point's column and row rounded half to even), weighted by the point's place between
    their centres; the fallback is the corner nearest the point in that unit square.
    """
    c, r = np.round(u), np.round(v)
    x = u - (c - 0.5)  # from the centre of column c - 1 towards column c
    y = (r + 0.5) - v  # from the centre of row r towards row r - 1
    rows = np.stack([r - 1, r - 1, r, r], axis=-1).astype(np.int64)
    cols = np.stack([c - 1, c, c - 1, c], axis=-1).astype(np.int64)
    weights = np.stack([(1 - x) * y, x * y, (1 - x) * (1 - y), x * (1 - y)], axis=-1)
    fallback = (2 * np.round(1 - y) + np.round(x)).astype(np.int64)
    return rows, cols, weights, fallback


def _interpolate(
    gathered: npt.NDArray[Any],
    encoding: Encoding,
    inside: npt.NDArray[np.bool_],
    weights: npt.NDArray[np.float64],
    fallback: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """``(points, ...)`` values from the gathered cells ``(points * k, ...)``."""
    n, k = inside.shape
    cells = encoding.decode(np.moveaxis(np.asarray(gathered), 0, -1), cells=1)
    cells = cells.reshape(*cells.shape[:-1], n, k)
    cells[..., ~inside] = np.nan
    if k == 1:
        out = cells[..., 0]
    else:
        whole = (cells * weights).sum(axis=-1)
        nearest = np.take_along_axis(
            cells, np.broadcast_to(fallback[:, None], (*cells.shape[:-1], 1)), -1
        )[..., 0]
        out = np.where(np.isnan(cells).any(axis=-1), nearest, whole)
    return np.moveaxis(out, -1, 0)


def point_query(
    obj: xr.DataArray | xr.Dataset,
    points: Any,
    *,
    interpolate: str = "bilinear",
    crs: Any = None,
    nodata: float | None = None,
    x_dim: Hashable | None = None,
    y_dim: Hashable | None = None,
) -> xr.Dataset:
    """Values of a raster cube at points, as rasterstats' ``point_query`` (lazily).

    Parameters
    ----------
    obj
        A DataArray or Dataset on a grid, as for :func:`~cas_xr.zonal.zonal`.
    points
        Points (a GeoSeries/GeoDataFrame, shapely Points, GeoJSON), as for
        :func:`~cas_xr.zonal.zonal`; empty points give NaN.
    interpolate
        ``"bilinear"``: rasterstats' rule, the 2x2 cells whose centres surround the
        point, weighted by the point's place between them; when one of the four is
        missing (nodata, NaN or off the grid) the value of the one nearest the point
        (NaN if that is missing). ``"nearest"``: the value of the cell holding the point
        (on a cell edge, the cell east and south of it, as ``zonal`` counts points).
    crs
        CRS of ``points`` when they carry none.
    nodata
        Missing-value marker, as for :func:`~cas_xr.zonal.zonal`.
    x_dim, y_dim
        Names of the spatial dimensions, when they cannot be told.

    Returns
    -------
    xarray.Dataset
        A vector data cube along ``geometry`` (xvec GeometryIndex, the input index kept
        as a coordinate) with one float64 variable per raster variable (the leading dims
        of ``obj`` kept); NaN where there is no value (rasterstats' None). Dask-backed:
        only the chunks under the points are read, on ``.compute()``.

    Raises
    ------
    cas_xr.errors.InvalidArgumentError
        ``interpolate`` is neither ``"bilinear"`` nor ``"nearest"``.
    cas_xr.errors.InvalidGeometryError
        A geometry is not a point (take a polygon's vertices with
        ``shapely.points(shapely.get_coordinates(...))``, or use ``zonal``).
    """
    import dask
    import dask.array as dsa
    import shapely
    import xarray as xr
    import xvec  # noqa: F401  (registers .xvec)

    from cas_xr.zonal._dims import on_grid
    from cas_xr.zonal._encoding import encoding_of
    from cas_xr.zonal._inputs import (
        carry_coords,
        cell_units,
        layers_of,
        prepare_geometries,
        variables_of,
    )

    if interpolate not in _INTERPOLATIONS:
        raise InvalidArgumentError(
            f"interpolate must be 'bilinear' or 'nearest', got {interpolate!r}"
        )
    obj = on_grid(obj, x_dim=x_dim, y_dim=y_dim)
    variables = variables_of(obj)
    geo = prepare_geometries(obj, points, crs)
    empty = shapely.is_empty(geo.shapes)
    wrong = np.flatnonzero((shapely.get_type_id(geo.shapes) != 0) & ~empty)
    if wrong.size:
        raise InvalidGeometryError(
            f"point_query takes points; positions {wrong[:10].tolist()} hold "
            f"{geo.series.geom_type.iloc[wrong[0]]}s: use zonal() for areas, or query their "
            "vertices with shapely.points(shapely.get_coordinates(geometries))"
        )
    ny, nx = obj.sizes["y"], obj.sizes["x"]
    if interpolate == "nearest":
        rows, cols = geo.points[:, :1], geo.points[:, 1:]
        weights = np.ones(rows.shape)
        fallback = np.zeros(len(rows), dtype=np.int64)
    else:
        uv = np.full((len(geo.shapes), 2), -10.0)  # empty points: off the grid
        uv[~empty] = cell_units(geo.transform)(shapely.get_coordinates(geo.shapes[~empty]))
        uv = np.clip(uv, -10.0, max(nx, ny) + 10.0)  # far off the grid: as near off it
        rows, cols, weights, fallback = _corners(uv[:, 0], uv[:, 1])
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx) & ~empty[:, None]
    flat_rows = np.clip(rows, 0, ny - 1).ravel()
    flat_cols = np.clip(cols, 0, nx - 1).ravel()
    data_vars: dict[Hashable, Any] = {}
    coords: dict[Hashable, Any] = {"geometry": geo.series.to_numpy()}
    for name, var in variables.items():
        dims, dim_coords = layers_of(var)
        coords.update(dim_coords)
        gathered = dsa.moveaxis(dsa.asarray(var.data), (-2, -1), (0, 1)).vindex[
            flat_rows, flat_cols
        ]
        task = dask.delayed(_interpolate, pure=True)(
            gathered, encoding_of(var, nodata), inside, weights, fallback
        )
        shape = (len(geo.shapes), *var.shape[:-2])
        data_vars[name] = (("geometry", *dims), dsa.from_delayed(task, shape, dtype=np.float64))
    coords[geo.series.index.name or "index"] = ("geometry", geo.series.index.to_numpy())
    carry_coords(variables, coords, data_vars)
    out = xr.Dataset(data_vars, coords=coords, attrs={"point_query_interpolate": interpolate})
    return out.xvec.set_geom_indexes("geometry", crs=geo.series.crs)
