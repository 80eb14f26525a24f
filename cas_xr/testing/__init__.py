"""Helpers to build realistic local test data: COGs, static STAC catalogs and an HTTP server.

These helpers are public so that users of :mod:`cas_xr` can test their own pipelines
offline: :func:`make_cog` writes Cloud-Optimized GeoTIFFs, :func:`make_stac_catalog`
writes a static, self-contained STAC catalog describing them (projection and raster
extensions included, loadable with ``odc.stac.load``) and :func:`serve_folder` serves a
directory over HTTP with byte ranges so that GDAL's ``/vsicurl/`` can read it;
:func:`serve_stac_api` runs a real STAC API (rustac) over a collection, e.g. one read from
such a catalog with :func:`read_static_collection`; :func:`serve_wcs` serves GeoTIFFs as
WCS 1.0.0/2.0.1 coverages with MapServer. :func:`serve_with_latency` serves a folder, or
relays to another server, with a set round trip and bandwidth and counts the requests and
byte ranges asked; :func:`serve_status` answers every request with one status (401, 403...);
:func:`tiff_tiles` and :func:`tiles_requested` map those ranges onto a
GeoTIFF's internal tiles.
"""

from cas_xr.testing._cog import SUPPORTED_DTYPES, make_cog
from cas_xr.testing._dask import raise_if_dask_computes
from cas_xr.testing._latency import LatencyHTTPServer, RequestRecord, serve_with_latency
from cas_xr.testing._mapserver import (
    MAP_ALIAS,
    MapServerNotFoundError,
    WcsServer,
    find_mapserv,
    serve_wcs,
)
from cas_xr.testing._server import RangeHTTPServer, RangeRequestHandler, serve_folder
from cas_xr.testing._stac import (
    COG_MEDIA_TYPE,
    StacCollectionSpec,
    StacItemSpec,
    make_stac_catalog,
)
from cas_xr.testing._stac_api import StacApiServerError, read_static_collection, serve_stac_api
from cas_xr.testing._status import serve_status
from cas_xr.testing._tiff import tiff_tiles, tiles_requested

__all__ = [
    "COG_MEDIA_TYPE",
    "MAP_ALIAS",
    "SUPPORTED_DTYPES",
    "LatencyHTTPServer",
    "MapServerNotFoundError",
    "RangeHTTPServer",
    "RangeRequestHandler",
    "RequestRecord",
    "StacApiServerError",
    "StacCollectionSpec",
    "StacItemSpec",
    "WcsServer",
    "find_mapserv",
    "make_cog",
    "make_stac_catalog",
    "raise_if_dask_computes",
    "read_static_collection",
    "serve_folder",
    "serve_stac_api",
    "serve_status",
    "serve_wcs",
    "serve_with_latency",
    "tiff_tiles",
    "tiles_requested",
]
