"""STAC items whose assets are COGs on one grid, read by tile (not by odc-stac).

odc-stac reads each chunk of each item with GDAL in its own Dask task: every tile under
the chunk, a round trip at a time per compute thread, and a header read per item and
task. When every item of a static layer is a COG on the same lattice (one CRS and cell
size, whole-cell offsets), as the tiles of a global DEM are, :func:`tiled_items` builds
the cube from :class:`~cas_xr.sources._cog.CogReader` s instead: one Dask chunk per
internal tile of the first item, each read task reads only its cells, and
:func:`~cas_xr.zonal._reads.compute` fetches the tiles a computation needs together.
Where items overlap, the first valid cell in precedence order wins, as with odc-stac.
Time steps of such items are read the same way (:mod:`cas_xr.sources._stac_steps`);
anything else (reprojection, assets GDAL must read) stays with odc-stac.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from affine import Affine

from cas_xr.errors import SourceError
from cas_xr.sources._cog import (
    CogHeader,
    CogReader,
    cog_reader,
    known_versions,
    lossy_tile_arrays,
    tile_array,
)
from cas_xr.sources._grid import snap_bounds
from cas_xr.sources._http import io_pool, public_url
from cas_xr.sources._lost import LossyReader, Read, fill_value
from cas_xr.sources._opened import opened

if TYPE_CHECKING:
    from concurrent.futures import Future

    import dask.array
    import pystac

__all__ = ["Claim", "MosaicReader", "tiled_items"]

_Window = tuple[slice, slice]


@dataclass(frozen=True)
class Claim:
    """Where an item's STAC metadata says its COG lies, until its header is read.

    Parameters
    ----------
    item
        The item's id, named in errors.
    epsg
        EPSG code of its CRS.
    transform
        Its first cell (``proj:transform``).
    shape
        Its rows and columns (``proj:shape``).
    dtype
        Its data type (``raster:bands``).
    """

    item: str
    epsg: int
    transform: Affine
    shape: tuple[int, int]
    dtype: str

    def held_by(self, header: CogHeader) -> bool:
        """Whether the COG's ``header`` puts it where the claim does."""
        if header.geo is None:
            return False
        t, c = header.geo.transform, self.transform
        return (
            header.geo.epsg == self.epsg
            and abs(t.a / c.a - 1) <= 1e-9  # the same cells...
            and abs(t.e / c.e - 1) <= 1e-9
            and abs(t.c - c.c) <= 1e-6 * abs(c.a)  # ...from the same first cell
            and abs(t.f - c.f) <= 1e-6 * abs(c.e)
            and header.shape == self.shape
            and str(header.dtype) == self.dtype
        )


@dataclass(frozen=True)
class _Part:
    """One item: its reader and where its first cell lies on the output grid.

    ``claim``: the item was placed from its STAC metadata, its header not yet read;
    :meth:`check` reads it (once per process) before its tiles are.
    """

    reader: CogReader
    row: int
    col: int
    shape: tuple[int, int]
    claim: Claim | None = None

    def check(self) -> None:
        """Raise if the COG is not where its STAC metadata put it (see :class:`Claim`).

        Raises
        ------
        SourceError
            ``kind="read"``: its header places it elsewhere, or it is not a tiled
            GeoTIFF this reader decodes.
        """
        if self.claim is None:
            return
        reader = self.reader
        found = cog_reader(reader.url, reader.band, reader.provider)
        if found is None or not self.claim.held_by(found[1]):
            raise SourceError(
                f"the COG of item {self.claim.item!r} is not the tiled GeoTIFF on the grid "
                f"that its STAC metadata gives (EPSG:{self.claim.epsg}, {self.claim.shape} "
                f"cells of {self.claim.dtype}, transform {tuple(self.claim.transform)[:6]}); "
                "correct the item's proj: and raster:bands fields",
                provider=reader.provider or None, url=public_url(reader.url), kind="read",
            )  # fmt: skip

    def clip(self, window: _Window) -> tuple[_Window, _Window] | None:
        """``window``'s overlap with the item: in the item's cells, and in the window's."""
        rows, cols = window
        r0, r1 = max(rows.start, self.row), min(rows.stop, self.row + self.shape[0])
        c0, c1 = max(cols.start, self.col), min(cols.stop, self.col + self.shape[1])
        if r0 >= r1 or c0 >= c1:
            return None
        own = (slice(r0 - self.row, r1 - self.row), slice(c0 - self.col, c1 - self.col))
        there = (
            slice(r0 - rows.start, r1 - rows.start),
            slice(c0 - cols.start, c1 - cols.start),
        )
        return own, there


class _Job(NamedTuple):
    """An item's tiles under way: its windows (their index, and clipped) and fetches."""

    part: _Part
    clipped: list[tuple[int, tuple[_Window, _Window]]]
    own: list[_Window]
    fetches: dict[int, Future[npt.NDArray[Any]]]


@dataclass(frozen=True)
class MosaicReader:
    """Reads windows of the output grid from the items under them (a Dask read task).

    Parameters
    ----------
    parts
        The items in precedence order.
    dtype
        The output's dtype.
    nodata
        The missing-value marker: cells holding it (or NaN) are not valid.
    """

    parts: tuple[_Part, ...]
    dtype: str
    nodata: float | None

    def __call__(self, rows: slice, cols: slice) -> npt.NDArray[Any]:
        """The cells ``rows, cols`` of the output grid."""
        return self.read_many([(rows, cols)])[0]

    def read_many(self, windows: Sequence[_Window]) -> list[npt.NDArray[Any]]:
        """The cells of each window; every item's tiles are fetched at once."""
        if len(self.parts) == 1 and all(self.parts[0].clip(w) == (w, w) for w in windows):
            self.parts[0].check()
            return self.parts[0].reader.read_many(windows)  # one item, under every window
        return self.collect(windows, self.submit(windows))

    def touched(self, windows: Sequence[_Window]) -> list[_Part]:
        """The items under some of ``windows``."""
        return [p for p in self.parts if any(p.clip(w) is not None for w in windows)]

    def submit(self, windows: Sequence[_Window]) -> list[_Job]:
        """Start fetching the tiles of every item under ``windows`` (see :meth:`collect`)."""
        jobs = []
        for part in self.parts:
            clipped = [(k, c) for k, w in enumerate(windows) if (c := part.clip(w)) is not None]
            if clipped:
                part.check()
                own = [c[0] for _, c in clipped]
                jobs.append(_Job(part, clipped, own, part.reader.submit(own)))
        return jobs

    def collect(self, windows: Sequence[_Window], jobs: list[_Job]) -> list[npt.NDArray[Any]]:
        """The cells of each window, once the tiles :meth:`submit` asked for are there."""
        return [cells for cells, _ in self.assemble(windows, jobs, lost=None)]

    def gather(self, windows: Sequence[_Window], *, lost: float) -> list[Read]:
        """As :meth:`read_many`, a tile lost to the server's HTTP errors as ``lost``.

        See :meth:`assemble`; the reader of :class:`~cas_xr.sources._lost.LossyReader`.
        """
        return self.assemble(windows, self.submit(windows), lost=lost)

    def assemble(
        self, windows: Sequence[_Window], jobs: list[_Job], *, lost: float | None
    ) -> list[Read]:
        """As :meth:`collect`, each window with None or the error of a tile it lost.

        With ``lost`` (a value the validity test refuses: nodata, NaN), a tile the server
        still refuses after the retries is read as ``lost``, so an item under it in
        precedence order shows (see :meth:`~cas_xr.sources._cog.CogReader.collect_lossy`);
        without, it raises.
        """
        dtype = np.dtype(self.dtype)
        fill = self.nodata if self.nodata is not None else (np.nan if dtype.kind == "f" else 0)
        out = [
            np.full((w[0].stop - w[0].start, w[1].stop - w[1].start), fill, dtype=dtype)
            for w in windows
        ]
        errors: list[SourceError | None] = [None] * len(windows)
        valid = [np.zeros(o.shape, dtype=bool) for o in out]
        for part, clipped, own, fetches in jobs:
            pieces: list[Read]
            if lost is None:
                pieces = [(c, None) for c in part.reader.collect(own, fetches)]
            else:
                pieces = part.reader.collect_lossy(own, fetches, lost)
            for (k, (_, there)), (piece, error) in zip(clipped, pieces, strict=True):
                errors[k] = errors[k] or error
                good = self._valid(piece) & ~valid[k][there]
                out[k][there][good] = piece[good]
                valid[k][there] |= good
        return list(zip(out, errors, strict=True))

    def _valid(self, values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        ok = ~np.isnan(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
        if self.nodata is not None:
            ok &= values != np.asarray(self.nodata).astype(values.dtype)
        return ok


def _href(item: pystac.Item, asset: str, patch_url: Callable[[str], str] | None) -> str:
    href = item.assets[asset].get_absolute_href() or item.assets[asset].href
    return patch_url(href) if patch_url else href


def _nodata(item: pystac.Item, asset: str, header: CogHeader) -> float | None:
    """The asset's nodata as STAC's raster extension states it (as odc-stac takes it)."""
    bands = item.assets[asset].extra_fields.get("raster:bands") or []
    if bands and "nodata" in bands[0]:
        value = bands[0]["nodata"]
        return float(value) if value is not None else None
    return header.geo.nodata if header.geo is not None else None


def lost_fill(hrefs: Iterable[str], dtype: np.dtype[Any], nodata: float | None) -> float | None:
    """What a layer of ``hrefs`` reads a tile the server keeps refusing as; None: it fails.

    Only layers with items over HTTP(S) survive a lost tile (and carry failed-chunk
    flags, which keep a small request off its eager path): a file on disk is never
    refused. See :func:`~cas_xr.sources._lost.fill_value` for the value.
    """
    served = any(urlsplit(h).scheme in ("http", "https") for h in hrefs)
    return fill_value(dtype, nodata) if served else None


def _on_one_lattice(
    hrefs: Sequence[str], provider: str
) -> list[tuple[CogReader, CogHeader]] | None:
    """The readers of COGs on one lattice, or None (kept: :mod:`cas_xr.sources._opened`)."""
    found = list(io_pool().map(lambda h: cog_reader(h, 1, provider), hrefs))
    if any(o is None or o[1].geo is None for o in found):
        return None
    readers = [o for o in found if o is not None]
    first = readers[0][1]
    assert first.geo is not None
    t0 = first.geo.transform
    for _, header in readers:
        assert header.geo is not None
        t = header.geo.transform
        off = ((t.c - t0.c) / t0.a, (t.f - t0.f) / t0.e)
        if (
            header.geo.epsg != first.geo.epsg
            or (t.a, t.e) != (t0.a, t0.e)
            or any(abs(v - round(v)) > 1e-6 for v in off)
            or header.dtype != first.dtype
        ):
            return None
    return readers


def tiled_items(
    items: Sequence[pystac.Item],
    *,
    asset: str,
    bounds: Callable[[str], tuple[float, float, float, float]],
    patch_url: Callable[[str], str] | None,
    provider: str,
) -> tuple[dask.array.Array, dask.array.Array | None, Affine, str, float | None] | None:
    """The fused layer of ``items`` read by tile, or None when odc-stac must read them.

    Parameters
    ----------
    items
        The items in precedence order.
    asset
        Asset key of the raster (one band).
    bounds
        The box to cover, in the given CRS (e.g. ``"EPSG:4326"``).
    patch_url
        Rewrites (e.g. signs) asset URLs.
    provider
        Provider slug, named in errors.

    Returns
    -------
    tuple or None
        The Dask array ``(y, x)``; its chunks' failed-chunk flags (None for files on disk
        or a dtype without nodata: a lost tile then fails the read), see
        :func:`~cas_xr.sources._lost.lossy_arrays`; the transform of its first cell, its
        CRS and nodata.
    """
    hrefs = tuple(_href(it, asset, patch_url) for it in items)
    if any(urlsplit(h).scheme not in ("http", "https", "") for h in hrefs):
        return None  # s3://, gs://... : GDAL's /vsi drivers, through odc-stac
    readers = opened(
        ("stac-tiles", provider),
        lambda: _on_one_lattice(hrefs, provider),
        paths=hrefs,
        versions=lambda: known_versions(hrefs),
    )
    if readers is None:
        return None
    first = readers[0][1]
    assert first.geo is not None
    t0 = first.geo.transform
    crs = f"EPSG:{first.geo.epsg}"
    transform, shape = snap_bounds(t0, bounds(crs))
    r0, c0 = round((transform.f - t0.f) / t0.e), round((transform.c - t0.c) / t0.a)
    parts = []
    for reader, header in readers:
        assert header.geo is not None
        t = header.geo.transform
        row = round((t.f - transform.f) / t0.e)
        col = round((t.c - transform.c) / t0.a)
        parts.append(_Part(reader, row, col, header.shape))
    nodata = _nodata(items[0], asset, first)
    mosaic = MosaicReader(tuple(parts), str(first.dtype), nodata)
    rows, cols = slice(r0, r0 + shape[0]), slice(c0, c0 + shape[1])  # on the first item's tiles
    dtype, at = np.dtype(mosaic.dtype), (r0, c0)
    lost = lost_fill(hrefs, dtype, nodata)
    if lost is None:  # on disk, or no value to mark a lost tile with: an error fails the read
        data = tile_array("cas-stac-tiles", mosaic, rows, cols, first.tile, dtype, offset=at)
        return data, None, transform, crs, nodata
    lossy = LossyReader(mosaic, lost)
    data, failed = lossy_tile_arrays(
        "cas-stac-tiles", lossy, rows, cols, first.tile, dtype, offset=at
    )
    return data, failed, transform, crs, nodata
