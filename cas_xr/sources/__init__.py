"""Data access: sources open datasets as lazy, Dask-backed xarray cubes.

The names below are loaded on first use (module ``__getattr__``), so reading one local
file does not import the STAC, WCS and HTTP stacks (pystac-client, requests: about 0.5 s).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
