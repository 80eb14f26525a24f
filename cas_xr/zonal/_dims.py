"""The spatial dimensions of a raster cube, wherever they are and whatever their names.

:func:`on_grid` finds the x and y dimensions (given, or from rioxarray, odc-geo or CF
metadata) and returns the cube with them named ``y``/``x`` and last, lazily: a rename
and a transpose, never a computation.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from cas_xr.errors import InvalidArgumentError, MissingDimensionError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["on_grid", "spatial_dims"]

#: CF ``units`` of longitude and latitude coordinates.
_UNITS_X = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}
_UNITS_Y = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}


def _from_rioxarray(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, Hashable] | None:
    """x/y, longitude/latitude, CF axis/standard_name, or ``rio.set_spatial_dims``."""
    import rioxarray  # noqa: F401  (registers .rio)
    from rioxarray.exceptions import MissingSpatialDimensionError

    try:
        return obj.rio.y_dim, obj.rio.x_dim
    except MissingSpatialDimensionError:
        return None


def _from_odc_geo(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, Hashable] | None:
    """y/x, yc/xc, latitude/longitude, lat/lon (odc-geo's names, without guessing)."""
    from odc.geo.xr import spatial_dims as odc_spatial_dims

    return odc_spatial_dims(obj)


def _from_cf_units(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, Hashable] | None:
    """Dimension coordinates with CF units ``degrees_east`` and ``degrees_north``."""
    found: dict[str, Hashable] = {}
    for dim in obj.dims:
        units = str(obj[dim].attrs.get("units", "")).lower() if dim in obj.coords else ""
        if units in _UNITS_X:
            found.setdefault("x", dim)
        elif units in _UNITS_Y:
            found.setdefault("y", dim)
    return (found["y"], found["x"]) if len(found) == 2 else None


def spatial_dims(
    obj: xr.DataArray | xr.Dataset,
    *,
    x_dim: Hashable | None = None,
    y_dim: Hashable | None = None,
) -> tuple[Hashable, Hashable]:
    """The ``(y, x)`` dimension names of a raster cube.

    Parameters
    ----------
    obj
        A DataArray or Dataset.
    x_dim, y_dim
        Names given by the caller; win over every rule.

    Returns
    -------
    tuple
        ``(y_dim, x_dim)``, both dimensions of ``obj``.

    Raises
    ------
    MissingDimensionError
        When a given name is not a dimension, or none of the rules finds both: rioxarray
        (``x``/``y``, ``longitude``/``latitude``, CF ``axis``/``standard_name``,
        ``rio.set_spatial_dims``), odc-geo (``lat``/``lon``, ``yc``/``xc``), CF ``units``
        (``degrees_east``/``degrees_north``).
    """
    dims = tuple(obj.dims)
    for label, given in (("x_dim", x_dim), ("y_dim", y_dim)):
        if given is not None and given not in dims:
            raise MissingDimensionError(
                f"{label}={given!r} is not a dimension of the raster; its dimensions are {dims}"
            )
    found = None
    if x_dim is None or y_dim is None:
        for rule in (_from_rioxarray, _from_odc_geo, _from_cf_units):
            found = rule(obj)
            if found is not None:
                break
    y = y_dim if y_dim is not None else (found[0] if found else None)
    x = x_dim if x_dim is not None else (found[1] if found else None)
    if x is None or y is None:
        raise MissingDimensionError(
            f"cannot tell which dimensions of the raster are x and y: its dimensions are "
            f"{dims}; name them with zonal(..., x_dim=..., y_dim=...) (two of those names), "
            "or name the dimensions y/x, lat/lon or latitude/longitude, or give their "
            "coordinates CF attributes (axis X/Y, standard_name, units degrees_east/north)"
        )
    if x == y:
        raise MissingDimensionError(
            f"x and y are both {x!r}; they must be two different dimensions of {dims}"
        )
    return y, x


def on_grid(
    obj: xr.DataArray | xr.Dataset,
    *,
    x_dim: Hashable | None = None,
    y_dim: Hashable | None = None,
) -> xr.DataArray | xr.Dataset:
    """The cube with its spatial dims renamed ``y``/``x`` and moved last (lazily).

    Other dimensions keep their order. Non-dimension coordinates already named ``y`` or
    ``x`` (for instance 2-D projected coordinates beside ``lat``/``lon`` dims) are dropped,
    as they would clash with the renamed dimensions.
    """
    import xarray as xr

    y, x = spatial_dims(obj, x_dim=x_dim, y_dim=y_dim)
    names = {y: "y", x: "x"}
    given = obj
    if (y, x) != ("y", "x"):
        others = [n for n in ("y", "x") if n not in names]
        data_vars = obj.data_vars if isinstance(obj, xr.Dataset) else {}
        clash = [n for n in others if n in obj.dims or n in data_vars]
        if clash:
            raise InvalidArgumentError(
                f"the raster has a dimension or variable {clash[0]!r} besides its spatial "
                f"dimensions {y!r}/{x!r}; rename it first (obj.rename({{{clash[0]!r}: ...}}))"
            )
        stale = [n for n in others if n in obj.coords]
        obj = obj.drop_vars(stale).rename({k: v for k, v in names.items() if k != v})
    if not (isinstance(obj, xr.DataArray) and _in_order(obj)):
        obj = obj.transpose(..., "y", "x")  # else as it is (a small request pays for the copy)
    return obj if obj is given else _with_crs_of(given, obj)


def _with_crs_of(
    given: xr.DataArray | xr.Dataset, obj: xr.DataArray | xr.Dataset
) -> xr.DataArray | xr.Dataset:
    """``obj`` with the CRS of ``given`` when only ``given``'s accessor held it.

    rioxarray's (deprecated) ``rio.set_crs`` keeps the CRS on the object's accessor,
    which a rename or transpose does not carry. The CRS read here stays on ``obj``'s
    accessor, so reading it again later costs nothing; a CRS that cannot be read is left
    for the caller to report.
    """
    import rioxarray  # noqa: F401  (registers .rio)
    from rioxarray.exceptions import RioXarrayError

    try:
        if obj.rio.crs is not None or (crs := given.rio.crs) is None:
            return obj
    except RioXarrayError:
        return obj
    return obj.rio.write_crs(crs)


def _in_order(da: xr.DataArray) -> bool:
    """Whether ``da.transpose(..., "y", "x")`` (coordinates too) would change nothing."""
    rank = {d: k for k, d in enumerate(da.dims)}
    return da.dims[-2:] == ("y", "x") and all(
        [rank[d] for d in v.dims] == sorted(rank[d] for d in v.dims)
        for v in da.coords.variables.values()
    )
