"""The ``.cas`` accessor on DataArrays and Datasets: a thin binding of cas_xr's free functions.

Nothing here touches the network: it works on any raster cube already in memory or on
Dask. The accessor keeps no state (xarray builds it per object). ``import cas_xr`` loads
this module as soon as xarray is imported (or at once if it already is), so the accessor
is there whichever comes first; the bound functions load on first use.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from cas_xr.errors import ArgumentTypeError

if TYPE_CHECKING:
    import os

    from cas_xr.models import RasterResampling

__all__ = ["CasAccessor"]


class _Bound:
    """A method that calls the free function ``module:name`` on the accessor's object.

    The function is imported on first use, not with this module: this module loads when
    xarray does, which may be in the middle of importing cas_xr.zonal itself. The method
    keeps the function's name, docstring and signature, so the accessor never restates
    them.
    """

    def __init__(self, target: str) -> None:
        self._module, _, self._name = target.partition(":")

    def __get__(self, accessor: CasAccessor | None, owner: type | None = None) -> Any:
        func = getattr(importlib.import_module(self._module), self._name)
        return func if accessor is None else types.MethodType(func, accessor._obj)


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

    zonal = _Bound("cas_xr.zonal:zonal")
    """Zonal statistics of this cube: :func:`cas_xr.zonal.zonal` with the cube as ``obj``."""

    cells = _Bound("cas_xr.zonal:cells")
    """Every cell geometries cover, as a long table: :func:`cas_xr.zonal.cells`."""

    point_query = _Bound("cas_xr.zonal:point_query")
    """Values at points, bilinear or nearest: :func:`cas_xr.zonal.point_query`."""

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
