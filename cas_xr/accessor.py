"""The ``.cas`` accessor on DataArrays and Datasets: a thin binding of cas_xr's free functions.

Nothing here touches the network: it works on any raster cube already in memory or on
Dask. The accessor keeps no state (xarray builds it per object).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt
import xarray as xr

__all__ = ["CasAccessor"]


@xr.register_dataset_accessor("cas")
@xr.register_dataarray_accessor("cas")
class CasAccessor:
    """``obj.cas``: zonal statistics of this raster cube.

    Parameters
    ----------
    obj
        The DataArray or Dataset the accessor is bound to.
    """

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def zonal(
        self,
        geometries: Any,
        stats: str | Sequence[str] = ("mean",),
        *,
        crs: Any = None,
        weights: str = "exact",
        area_weighted: bool = False,
        classes: npt.ArrayLike | Mapping[int, str] | None = None,
        nodata: float | None = None,
        **kwargs: Any,
    ) -> xr.Dataset:
        """Zonal statistics of this cube; see :func:`cas_xr.zonal.zonal` for every argument."""
        from cas_xr.zonal import zonal

        return zonal(
            self._obj, geometries, stats, crs=crs, weights=weights, area_weighted=area_weighted,
            classes=classes, nodata=nodata, **kwargs,
        )  # fmt: skip
