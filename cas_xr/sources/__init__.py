"""Data access: sources open datasets as lazy, Dask-backed xarray cubes."""

from cas_xr.sources._base import Source, gdal_options
from cas_xr.sources._local import LocalSource
from cas_xr.sources._opened import forget_opened
from cas_xr.sources._stac_api import StacApiSource
from cas_xr.sources._stac_static import StaticStacSource
from cas_xr.sources._stac_zarr import StacZarrSource
from cas_xr.sources._wcs import WcsSource

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
