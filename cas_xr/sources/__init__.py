"""Data access: sources open datasets as lazy, Dask-backed xarray cubes.

The names below are loaded on first use (module ``__getattr__``), so reading one local
file does not import the STAC and WCS modules (pystac, pystac-client, jsonschema).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cas_xr.config._lazy import lazy_names

if TYPE_CHECKING:
    from cas_xr.sources._base import Source, gdal_options
    from cas_xr.sources._local import LocalSource
    from cas_xr.sources._opened import forget_opened
    from cas_xr.sources._stac_api import StacApiSource
    from cas_xr.sources._stac_static import StaticStacSource
    from cas_xr.sources._stac_zarr import StacZarrSource
    from cas_xr.sources._wcs import WcsSource

#: public name -> the module that defines it
_HOMES = {
    "LocalSource": "cas_xr.sources._local",
    "Source": "cas_xr.sources._base",
    "StacApiSource": "cas_xr.sources._stac_api",
    "StacZarrSource": "cas_xr.sources._stac_zarr",
    "StaticStacSource": "cas_xr.sources._stac_static",
    "WcsSource": "cas_xr.sources._wcs",
    "forget_opened": "cas_xr.sources._opened",
    "gdal_options": "cas_xr.sources._base",
}

__all__ = [
    "LocalSource",
    "Source",
    "StacApiSource",
    "StacZarrSource",
    "StaticStacSource",
    "WcsSource",
    "forget_opened",
    "gdal_options",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
