"""The ``Source`` protocol: how a dataset opens as a lazy cube."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cas_xr.config import Settings

if TYPE_CHECKING:
    import xarray as xr

    from cas_xr.models import TimeRange

__all__ = ["Prefetching", "Source", "gdal_options"]


@runtime_checkable
class Source(Protocol):
    """Something that opens one variable of a dataset as a lazy, Dask-backed DataArray.

    Implementations return a DataArray on the source's native pixel grid and CRS with
    dims ``("y", "x")`` (static data) or ``("time", "y", "x")`` (temporal data), the CRS
    readable by rioxarray/odc-geo, and attrs ``nodata`` and ``cas_provenance`` (a dict
    naming the protocol, endpoint and items used). Nothing may read pixels before
    ``.compute()``.

    A source that lists items, files or tiles it opened for the box (``"items"``,
    ``"files"``, a ``"tiles"`` count) says where each lies in ``attrs["cas_footprints"]``
    (see :mod:`cas_xr.sources._footprints`), so that each geometry's result names only
    those its own geometry touches; without it, every geometry read with them names them all.

    A source that can survive the failure of some chunks fills them with nodata and sets
    ``attrs["cas_failed_chunks"]``: a lazy Dask object array with one element per chunk,
    each computed by a task that depends only on the task reading that chunk (so it
    costs no second read): None when the chunk was read, else the exception that made it
    nodata. The engine counts the elements of the chunks a computation reads
    (:func:`cas_xr.engine._failures.read_failures`): results over data with failed chunks are
    flagged DEGRADED, and when every chunk read failed the first error is raised.
    """

    def open(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open the data intersecting ``bbox`` (lon/lat) and ``time_range``, lazily."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """A source that can start fetching, before it is opened, what opening it waits for.

    A static STAC catalog's documents, say, are read one round trip after the other
    whatever the geometries: started while a request is planned, they are on their way
    while the request does its other work.
    """

    def prefetch(self) -> None:
        """Start the reads in the background (never raises: :meth:`Source.open` does)."""
        ...


def gdal_options(settings: Settings) -> dict[str, Any]:
    """GDAL configuration options derived from the settings.

    Parameters
    ----------
    settings
        The cas_xr settings.

    Returns
    -------
    dict
        Options such as ``GDAL_HTTP_MAX_RETRY`` and ``GDAL_HTTP_TIMEOUT`` that sources
        pass to rasterio (and that odc-stac ships to Dask workers).
    """
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MAX_RETRY": str(settings.gdal_http_max_retry),
        "GDAL_HTTP_RETRY_DELAY": "0.5",
        "GDAL_HTTP_TIMEOUT": str(max(1, round(settings.provider_timeout_s))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(settings.provider_timeout_s))),
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    }
