"""WCS requests through the shared HTTP layer; exception reports and payloads are checked.

An OGC exception report becomes ``SourceError(kind="wcs_exception")`` quoting the server,
anything that is not the expected XML or GeoTIFF ``kind="bad_payload"``, and a GeoTIFF on
another grid than the one asked for ``kind="grid_mismatch"``. HTTP failures (status,
timeout, connection) come from :func:`cas_xr.sources._http.fetch`.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import requests
from affine import Affine

from cas_xr.errors import SourceError
from cas_xr.sources._http import fetch
from cas_xr.sources._wcs_describe import findall

__all__ = ["Tile", "check_tile", "get_geotiff", "get_xml", "same_nodata"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_MARKUP = re.compile(r"<!--.*?-->|<[^>]*>", re.DOTALL)
_TOLERANCE_PX = 0.01  # how far (in cells) a returned tile's grid may be from the asked one
_REPORT_STATUS = (400, 404)  # statuses with which WCS 2.0 servers send exception reports


@dataclass(frozen=True)
class Tile:
    """One band of a GetCoverage answer and the URL that gave it."""

    data: npt.NDArray[Any]
    transform: Affine
    crs: str | None
    nodata: float | None
    url: str


def _describe(response: requests.Response) -> str:
    """Content type, size and the start of the text of an unexpected answer."""
    body = response.content
    kind = response.headers.get("Content-Type") or "no Content-Type"
    if not body:
        return f"an empty body ({kind})"
    text = body[:4000].decode("utf-8", errors="replace")
    if text.lstrip().startswith("<"):  # HTML or XML: the words a browser would show
        text = html.unescape(_MARKUP.sub(" ", text))
    text = " ".join(text.split())
    return f"{kind}, {len(body)} bytes: {text[:300]!r}"


def _parse(body: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _exception_message(root: ET.Element) -> str | None:
    """``"code: text; ..."`` of an OWS (2.0) or OGC (1.0) exception report, else None."""
    if root.tag.rpartition("}")[2] not in {"ExceptionReport", "ServiceExceptionReport"}:
        return None
    parts = []
    for element in root.iter():
        name = element.tag.rpartition("}")[2]
        if name == "Exception":
            code = element.get("exceptionCode", "")
            text = " ".join((t.text or "").strip() for t in findall(element, "ExceptionText"))
        elif name == "ServiceException":
            code, text = element.get("code", ""), (element.text or "").strip()
        else:
            continue
        parts.append(": ".join(p for p in (code, " ".join(text.split())) if p))
    return "; ".join(parts) or "(the report has no message)"


def _raise_if_exception(root: ET.Element, response: requests.Response, provider: str) -> None:
    message = _exception_message(root)
    if message is not None:
        raise SourceError(
            f"the WCS server reported an exception: {message}",
            provider=provider,
            url=response.url,
            kind="wcs_exception",
        )


def _fetch_ows(url: str, params: Mapping[str, Any], provider: str) -> requests.Response:
    """GET from an OGC service; a 400/404 carrying an exception report becomes its message."""
    response = fetch(url, params=params, provider=provider, accept_status=_REPORT_STATUS)
    if not response.ok:
        root = _parse(response.content)
        if root is not None:
            _raise_if_exception(root, response, provider)
        raise SourceError(
            f"HTTP {response.status_code}: {_describe(response)}",
            provider=provider,
            url=response.url,
            kind="http",
        )
    return response


def get_xml(url: str, params: Mapping[str, Any], *, provider: str, root: str) -> ET.Element:
    """GET an XML document whose root element has the local name ``root``.

    Raises
    ------
    SourceError
        ``wcs_exception`` for an exception report, ``bad_payload`` for anything else than
        the expected document, or the HTTP kinds of :func:`~cas_xr.sources._http.fetch`.
    """
    response = _fetch_ows(url, params, provider)
    document = _parse(response.content)
    if document is not None:
        _raise_if_exception(document, response, provider)
    if document is None or document.tag.rpartition("}")[2] != root:
        raise SourceError(
            f"expected an XML <{root}> document from the WCS server but got {_describe(response)}",
            provider=provider,
            url=response.url,
            kind="bad_payload",
        )
    return document


def get_geotiff(url: str, params: Mapping[str, Any], *, provider: str, band: int) -> Tile:
    """GET a coverage as GeoTIFF and read one band of it.

    Raises
    ------
    SourceError
        ``wcs_exception`` for an exception report, ``bad_payload`` for anything but a
        readable GeoTIFF with that band, or the HTTP kinds of ``fetch``.
    """
    from rasterio.errors import RasterioError
    from rasterio.io import MemoryFile

    response = _fetch_ows(url, params, provider)
    body = response.content

    def bad(what: str) -> SourceError:
        return SourceError(what, provider=provider, url=response.url, kind="bad_payload")

    if not body.startswith(_TIFF_MAGIC):
        root = _parse(body) if body.lstrip().startswith(b"<") else None
        if root is not None:
            _raise_if_exception(root, response, provider)
        raise bad(f"expected a GeoTIFF from the WCS server but got {_describe(response)}")
    try:
        with MemoryFile(body) as memfile, memfile.open() as src:
            if src.count < band:
                raise bad(f"the GeoTIFF has {src.count} band(s), band {band} was asked for")
            crs = src.crs.to_wkt() if src.crs else None
            return Tile(src.read(band), src.transform, crs, src.nodata, response.url)
    except RasterioError as err:
        raise bad(f"the GeoTIFF from the WCS server cannot be read: {err}") from err


def _same_crs(found: str, wanted: str) -> bool:
    try:
        tile_crs = pyproj.CRS.from_user_input(found)
    except pyproj.exceptions.CRSError:
        return True  # a tile CRS PROJ cannot read proves nothing; the grid is still checked
    return tile_crs.equals(pyproj.CRS.from_user_input(wanted), ignore_axis_order=True)


def check_tile(
    tile: Tile,
    *,
    transform: Affine,
    shape: tuple[int, int],
    crs: str | None,
    provider: str,
) -> None:
    """Check that a tile is on the asked grid (nothing is ever resampled to make it fit).

    The tile's CRS is compared with ``crs`` unless that is None.

    Raises
    ------
    SourceError
        ``kind="grid_mismatch"`` naming the asked and returned shape, transform or CRS.
    """
    problem = None
    if tile.data.shape != shape:
        problem = f"{shape[0]} x {shape[1]} cells were asked for, {tile.data.shape} came back"
    elif crs is not None and tile.crs is not None and not _same_crs(tile.crs, crs):
        problem = f"the tile is in another CRS than {crs}"
    else:
        rows, cols = shape
        got, want = tile.transform, transform
        drift = max(
            abs(got.c - want.c) / want.a,
            abs(got.f - want.f) / -want.e,
            abs(got.a - want.a) * cols / want.a,
            abs(got.e - want.e) * rows / -want.e,
            (abs(got.b) + abs(got.d)) * max(rows, cols) / want.a,
        )
        if not drift < _TOLERANCE_PX:
            problem = f"the tile's transform {tuple(got)[:6]} is not the asked {tuple(want)[:6]}"
    if problem is not None:
        raise SourceError(
            f"the WCS server answered on another grid than asked: {problem}; the coverage's "
            "description and its GetCoverage answers disagree (try the other WCS version)",
            provider=provider,
            url=tile.url,
            kind="grid_mismatch",
        )


def same_nodata(data: npt.NDArray[Any], found: float | None, wanted: float | None) -> None:
    """Rewrite cells equal to the tile's own nodata to the source's nodata, in place."""
    if found is None or wanted is None or found == wanted or (np.isnan(found) and np.isnan(wanted)):
        return
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        if not (float(wanted).is_integer() and info.min <= wanted <= info.max):
            return  # the source's nodata does not fit this integer tile; keep the tile's own
    mask = np.isnan(data) if np.isnan(found) else data == found
    data[mask] = wanted
