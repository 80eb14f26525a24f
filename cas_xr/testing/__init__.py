"""Helpers to build realistic local test data: COGs, static STAC catalogs and an HTTP server.

These helpers are public so that users of :mod:`cas_xr` can test their own pipelines
offline: :func:`make_cog` writes Cloud-Optimized GeoTIFFs, :func:`make_stac_catalog`
writes a static, self-contained STAC catalog describing them (projection and raster
extensions included, loadable with ``odc.stac.load``) and :func:`serve_folder` serves a
directory over HTTP with byte ranges so that GDAL's ``/vsicurl/`` can read it.
"""

from cas_xr.testing._cog import SUPPORTED_DTYPES, make_cog
from cas_xr.testing._dask import raise_if_dask_computes
from cas_xr.testing._server import RangeHTTPServer, RangeRequestHandler, serve_folder
from cas_xr.testing._stac import (
    COG_MEDIA_TYPE,
    StacCollectionSpec,
    StacItemSpec,
    make_stac_catalog,
)

__all__ = [
    "COG_MEDIA_TYPE",
    "SUPPORTED_DTYPES",
    "RangeHTTPServer",
    "RangeRequestHandler",
    "StacCollectionSpec",
    "StacItemSpec",
    "make_cog",
    "make_stac_catalog",
    "raise_if_dask_computes",
    "serve_folder",
]
