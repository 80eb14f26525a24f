"""Data access: sources open datasets as lazy, Dask-backed xarray cubes."""

from cas_xr.sources._base import Source, gdal_options
from cas_xr.sources._stac_static import StaticStacSource

__all__ = ["Source", "StaticStacSource", "gdal_options"]
