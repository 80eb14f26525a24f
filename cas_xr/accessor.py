"""The ``.cas`` accessor on DataArrays and Datasets: a thin binding of cas_xr's free functions.

Nothing here touches the network: it works on any raster cube already in memory or on
Dask. The accessor keeps no state (xarray builds it per object).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import xarray as xr

from cas_xr.errors import ArgumentTypeError
from cas_xr.zonal import zonal

if TYPE_CHECKING:
    import os

    from cas_xr.models import RasterResampling

__all__ = ["CasAccessor"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _bind(func: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """A method that calls the free function ``func`` on the accessor's object.

    The method keeps ``func``'s name, docstring and signature (after the data argument),
    so the accessor never restates them.
    """

    @functools.wraps(func)
    def method(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return func(self._obj, *args, **kwargs)

    return method


@xr.register_dataset_accessor("cas")
@xr.register_dataarray_accessor("cas")
class CasAccessor:
    """``obj.cas``: zonal statistics, clipping and writing of this raster cube.

    Parameters
    ----------
    obj
        The DataArray or Dataset the accessor is bound to.
    """

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    zonal = _bind(zonal)
    """Zonal statistics of this cube: :func:`cas_xr.zonal.zonal` with the cube as ``obj``."""

    def _array(self, method: str) -> xr.DataArray:
        if isinstance(self._obj, xr.Dataset):
            raise ArgumentTypeError(
                f".cas.{method} works on a DataArray; select a variable, e.g. "
                f"ds['elevation'].cas.{method}(...)"
            )
        return self._obj

    def clip(
        self,
        bbox: tuple[float, float, float, float],
        *,
        bbox_crs: Any = "EPSG:4326",
        target_crs: Any = None,
        target_resolution: float | None = None,
        resampling: RasterResampling | str = "nearest",
        nodata: float | None = None,
        categorical: bool | None = None,
    ) -> xr.DataArray:
        """Cut this DataArray to a box snapped outward to whole cells (or regrid it).

        The same code as raster mode; see :func:`cas_xr.mosaic.clip` for every argument.
        """
        from cas_xr.mosaic import clip

        return clip(
            self._array("clip"), bbox, bbox_crs=bbox_crs, target_crs=target_crs,
            target_resolution=target_resolution, resampling=resampling, nodata=nodata,
            categorical=categorical,
        )  # fmt: skip

    def to_raster(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        overwrite: bool = False,
        tags: Mapping[str, str] | None = None,
        categorical: bool | None = None,
    ) -> Path:
        """Write this DataArray to a COG (``.tif``) or Zarr store (``.zarr``), atomically.

        The same writer as raster mode; see :func:`cas_xr.mosaic.write_raster`.
        """
        from cas_xr.mosaic import write_raster

        return write_raster(
            self._array("to_raster"), path, format=format, overwrite=overwrite, tags=tags,
            categorical=categorical,
        )  # fmt: skip
