"""The odc-stac reader of the STAC sources: a read that fails names its asset and provider.

odc-stac reads assets with odc-loader's rasterio driver, whose errors say only "Read
failed". :class:`NamingDriver` is that driver with readers that turn rasterio errors into
:class:`~cas_xr.errors.SourceError` (``kind="read"``) naming the provider, the asset URL
(without its query, which may hold a signing token) and GDAL's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from odc.loader import RioDriver, RioReader

from cas_xr.errors import SourceError
from cas_xr.sources._http import public_url

if TYPE_CHECKING:
    import numpy as np
    from odc.geo.geobox import GeoBox
    from odc.loader._rio import LocalContext
    from odc.loader.types import RasterLoadParams, RasterSource, ReaderSubsetSelection

__all__ = ["NamingDriver", "public_url"]


def _unsigned(text: str, url: str) -> str:
    """``text`` without the query and fragment of ``url`` (GDAL quotes file names whole)."""
    parts = urlsplit(url)
    for secret in (parts.query and f"?{parts.query}", parts.fragment and f"#{parts.fragment}"):
        text = text.replace(secret, "") if secret else text
    return text


class NamingDriver(RioDriver):
    """odc-loader's rasterio driver whose read errors name the asset and the provider.

    Parameters
    ----------
    provider
        Provider slug, named in errors.
    """

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider

    def open(self, src: RasterSource, ctx: LocalContext) -> RioReader:
        """A reader of one asset band (called by odc-loader in each read task)."""
        return _NamingReader(src, ctx, self.provider)


class _NamingReader(RioReader):
    """odc-loader's RioReader; rasterio errors become SourceErrors naming the asset."""

    def __init__(self, src: RasterSource, ctx: LocalContext, provider: str) -> None:
        super().__init__(src, ctx)
        self._url = src.uri
        self._provider = provider

    def read(
        self,
        cfg: RasterLoadParams,
        dst_geobox: GeoBox,
        *,
        dst: np.ndarray[Any, Any] | None = None,
        selection: ReaderSubsetSelection | None = None,
    ) -> tuple[tuple[slice, slice], np.ndarray[Any, Any]]:
        """Read the asset's cells on ``dst_geobox``, as odc-loader's RioReader does.

        Raises
        ------
        SourceError
            ``kind="read"`` when GDAL cannot read the asset (unreachable after GDAL's
            retries, corrupt or truncated), quoting GDAL.
        """
        from rasterio.errors import RasterioError

        try:
            return super().read(cfg, dst_geobox, dst=dst, selection=selection)
        except RasterioError as err:
            said = str(err.__cause__ or err)  # rasterio's own is "see previous exception"
            raise SourceError(
                "cannot read the asset (unreachable, corrupt or truncated?): "
                + _unsigned(said, self._url),
                provider=self._provider or None,
                url=public_url(self._url),
                kind="read",
            ) from err
