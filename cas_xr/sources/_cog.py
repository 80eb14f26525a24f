"""Cloud-Optimized GeoTIFFs by tile: only the tiles asked for, in merged range requests.

GDAL reads a window of a remote COG one Dask task at a time, so the requests in flight are
bounded by the compute threads, and it reads every tile under the window. Here a COG's
header (its first IFD: tile grid, offsets and byte counts) is read once per process with
a few range requests and kept; a window, or many windows at once
(:meth:`CogReader.read_many`), is read by fetching exactly the tiles it overlaps. Tiles
next to each other in the file (no other tile between them, gaps of at most
:data:`MAX_GAP` bytes) are fetched in one range request; the requests are handed to the
I/O threads of :mod:`cas_xr.sources._http` through their host's line
(:func:`~cas_xr.sources._http.hand_over`), at most ``max_concurrent_requests_per_host``
at once per host and process, with its retries and deadline; garbage collection is held
back until a read's requests are sent (:mod:`cas_xr.sources._sending`). tifffile decodes
the tiles (with imagecodecs), as GDAL would. Local files are read the same way
(``os.pread``), with the header kept while the file is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from affine import Affine

from cas_xr.config import get_settings
from cas_xr.errors import SourceError
from cas_xr.sources._http import fetch_range, hand_over, io_pool, public_url
from cas_xr.sources._lost import TOLERATED_KINDS, LossyReader, Read, lossy_arrays
from cas_xr.sources._sending import hold, signalling

if TYPE_CHECKING:
    import dask.array

__all__ = [
    "MAX_GAP", "TILES", "CogHeader", "CogReader", "Geo", "aligned", "cog_reader",
    "known_versions", "lossy_tile_arrays", "prefetch_header", "tile_array",
]  # fmt: skip

#: Largest gap (bytes of no tile) between two tiles fetched in one range request.
MAX_GAP = 64 * 1024
#: Largest merged range request (bytes), so that big reads still run in parallel.
_MAX_RANGE = 4 * 1024 * 1024
#: Header bytes read at once (a COG's IFDs come first).
_HEADER_BLOCK = 64 * 1024
_HEADERS_KEPT = 256
_TILE_CACHE_BYTES = 256 * 1024 * 1024

_Window = tuple[slice, slice]


class _RangeFile(io.RawIOBase):
    """A read-only file over HTTP range requests, in cached blocks (for the header)."""

    def __init__(self, url: str, provider: str) -> None:
        self.url, self.provider = url, provider
        self.blocks: dict[int, bytes] = {}
        self.pos = 0
        self.size = -1
        self.version = ""
        self._block(0)  # learns the size and version

    def _block(self, n: int) -> bytes:
        if n not in self.blocks:
            start = n * _HEADER_BLOCK
            data, size, version = fetch_range(
                self.url, start, start + _HEADER_BLOCK - 1, provider=self.provider
            )
            self.blocks[n], self.size, self.version = data, size, version
        return self.blocks[n]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.pos + len(view), self.size)
        done = 0
        while self.pos + done < end:
            at = self.pos + done
            block = self._block(at // _HEADER_BLOCK)
            piece = block[at % _HEADER_BLOCK : at % _HEADER_BLOCK + end - at]
            if not piece:
                break
            view[done : done + len(piece)] = piece
            done += len(piece)
        self.pos += done
        return done


@dataclass(frozen=True)
class Geo:
    """Where a GeoTIFF lies, from its GeoKeys: EPSG code, transform and nodata."""

    epsg: int
    transform: Affine
    nodata: float | None


_USER_DEFINED = 32767
#: TIFF tags of a GeoTIFF's grid, and the GeoKeys read here (GeoTIFF 1.1, OGC 19-008r4)
_PIXEL_SCALE, _TIEPOINT, _TRANSFORMATION, _KEY_DIRECTORY, _GDAL_NODATA = (
    33550, 33922, 34264, 34735, 42113,
)  # fmt: skip
_RASTER_TYPE, _GEOGRAPHIC_TYPE, _PROJECTED_TYPE = 1025, 2048, 3072


def _geo_keys(page: Any) -> dict[int, int]:
    """The GeoKeys of ``page`` whose value is in the key directory itself (its shorts).

    Read from the directory's raw shorts: tifffile's ``geotiff_tags`` builds its tables
    of GeoKey names and codes (``tifffile.geodb``, 60-300 ms) at the first call.
    """
    directory = page.tags.valueof(_KEY_DIRECTORY)
    if directory is None or len(directory) < 4:
        return {}
    shorts = [int(v) for v in directory]
    keys = {}
    for n in range(min(shorts[3], (len(shorts) - 4) // 4)):
        key, location, _, value = shorts[4 + 4 * n : 8 + 4 * n]
        if location == 0:  # else the value lies in another tag (doubles, text)
            keys[key] = value
    return keys


def _geo(page: Any) -> Geo | None:
    """The grid of a plain north-up GeoTIFF with an EPSG code; None for anything else.

    Anything else (a rotation, a user-defined CRS, pixel-is-point) is left to GDAL.
    """
    keys = _geo_keys(page)
    scale, tie = page.tags.valueof(_PIXEL_SCALE), page.tags.valueof(_TIEPOINT)
    if not keys or page.tags.valueof(_TRANSFORMATION) is not None:
        return None
    if scale is None or tie is None or len(tie) < 6:
        return None
    if keys.get(_RASTER_TYPE, 1) != 1:  # pixel-is-point: GDAL shifts it
        return None
    code = keys.get(_PROJECTED_TYPE, keys.get(_GEOGRAPHIC_TYPE))
    if code is None or code == _USER_DEFINED:
        return None
    sx, sy = float(scale[0]), float(scale[1])
    i, j, x, y = (float(v) for v in (tie[0], tie[1], tie[3], tie[4]))
    text = page.tags.valueof(_GDAL_NODATA)
    nodata = float(text.strip("\x00 ")) if text else None
    return Geo(code, Affine(sx, 0.0, x - i * sx, 0.0, -sy, y + j * sy), nodata)


@dataclass
class CogHeader:
    """What reading tiles needs from a COG's first IFD, and its grid (``geo``)."""

    shape: tuple[int, int]
    tile: tuple[int, int]
    samples: int
    separate: bool
    dtype: np.dtype[Any]
    offsets: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    page: Any  # tifffile's TiffPage: decodes the tiles
    geo: Geo | None
    size: int = -1  # of the whole file, as the server said (-1: a local file)
    version: str = ""  # the server's ETag or Last-Modified of the file

    @property
    def across(self) -> int:
        return -(-self.shape[1] // self.tile[1])

    @property
    def down(self) -> int:
        return -(-self.shape[0] // self.tile[0])

    @functools.cached_property
    def rank(self) -> npt.NDArray[np.intp]:
        """Each tile's place in file order among the tiles with bytes (those without first)."""
        order = np.argsort(np.where(self.counts > 0, self.offsets, -1), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return rank


_HEADERS: OrderedDict[tuple[Any, ...], tuple[CogHeader, float]] = OrderedDict()
#: headers being read, by key (a reader that needs one under way waits for it)
_READING: dict[tuple[Any, ...], Future[CogHeader]] = {}
_LOCK = threading.Lock()
#: how long :func:`prefetch_header` waits for its request to be sent
_SEND_WAIT_S = 1.0


def _is_local(url: str) -> bool:
    return urlsplit(url).scheme not in ("http", "https")


def _parse(url: str, provider: str) -> CogHeader:
    import tifffile

    try:
        if _is_local(url):
            with tifffile.TiffFile(url) as local:
                return _header_of(local.pages.first)
        handle = _RangeFile(url, provider)
        tif = tifffile.TiffFile(io.BufferedReader(handle), name="remote.tif")
        header = _header_of(tif.pages.first)
        return dataclasses.replace(header, size=handle.size, version=handle.version)
    except SourceError:
        raise
    except Exception as err:  # tifffile's many errors: not a COG this reader can read
        raise ValueError(f"{err.__class__.__name__}: {err}") from err


def _header_of(page: Any) -> CogHeader:
    if not page.is_tiled:
        raise ValueError("the GeoTIFF is not tiled")
    page.decode  # noqa: B018  (raises NotImplementedError for an unsupported codec)
    return CogHeader(
        shape=(page.imagelength, page.imagewidth),
        tile=(page.tilelength, page.tilewidth),
        samples=page.samplesperpixel,
        separate=page.planarconfig == 2,
        dtype=np.dtype(page.dtype),
        offsets=np.asarray(page.dataoffsets, dtype=np.int64),
        counts=np.asarray(page.databytecounts, dtype=np.int64),
        page=page,
        geo=_geo(page),
    )


def _key(url: str) -> tuple[Any, ...]:
    """What names a file's header: its URL, or a local file's path, size and time."""
    if _is_local(url):
        stat = os.stat(url)
        return (url, stat.st_size, stat.st_mtime_ns)
    return (url,)


def _header(url: str, provider: str) -> CogHeader:
    """The header of ``url``, read once per process (the last few hundred files kept).

    A local file rewritten since is read again (its size or time changed); a remote
    file's header (and so its decoded tiles) is trusted for ``metadata_cache_ttl_s``.
    A read under way (:func:`prefetch_header`, another thread's) is waited for; its
    failure is raised, not kept.
    """
    key = _key(url)
    now = time.monotonic()
    ttl = get_settings().metadata_cache_ttl_s
    with _LOCK:
        if key in _HEADERS and (len(key) > 1 or now - _HEADERS[key][1] < ttl):
            _HEADERS.move_to_end(key)
            return _HEADERS[key][0]
        reading = _READING.get(key)
        mine = reading is None
        if reading is None:
            reading = _READING[key] = Future()
    if not mine:
        return reading.result()
    try:
        header = _parse(url, provider)
    except BaseException as err:
        with _LOCK:
            del _READING[key]
        reading.set_exception(err)
        raise
    with _LOCK:
        del _READING[key]
        _HEADERS[key] = (header, now)
        while len(_HEADERS) > _HEADERS_KEPT:
            _HEADERS.popitem(last=False)
    reading.set_result(header)
    return header


def prefetch_header(url: str, provider: str) -> None:
    """Start reading the header of the remote COG ``url`` on the I/O threads.

    Nothing when it is kept, under way, or would not be kept (``metadata_cache_ttl_s``
    is 0). Returns once its request is sent (at most :data:`_SEND_WAIT_S`): the caller's
    work would hold the GIL and keep it back. A failure is left for the reader that
    needs the header (:func:`_header` reads it again and raises).
    """
    ttl = get_settings().metadata_cache_ttl_s
    if _is_local(url) or ttl <= 0:
        return
    key = _key(url)
    with _LOCK:
        kept = _HEADERS.get(key)
        if (kept is not None and time.monotonic() - kept[1] < ttl) or key in _READING:
            return
    sent = threading.Event()

    def read() -> None:
        with signalling(sent), contextlib.suppress(Exception):
            _header(url, provider)

    io_pool().submit(read)
    sent.wait(_SEND_WAIT_S)


def _forget(url: str) -> None:
    """Drop the header of ``url``: the next read reads it anew."""
    with _LOCK:
        _HEADERS.pop(_key(url), None)


def _read(url: str, start: int, stop: int, header: CogHeader, provider: str) -> bytes:
    """Bytes ``start..stop - 1`` of a local file or a URL, of the file ``header`` describes.

    Raises
    ------
    SourceError
        ``kind="read"`` when a remote file's size or version (ETag, Last-Modified)
        changed since its header was read (it was replaced): the header is forgotten,
        so the next attempt reads the new one.
    """
    if _is_local(url):
        with open(url, "rb") as file:
            return os.pread(file.fileno(), stop - start, start)
    try:
        data, size, version = fetch_range(url, start, stop - 1, provider=provider)
    except SourceError as err:
        if err.kind not in ("read", "not_found"):  # not a sign of another file
            raise
        _forget(url)  # shorter, or gone: not the file the header describes
        raise SourceError(
            f"the file changed since its header was read: {err.message}; try again",
            provider=provider or None, url=public_url(url), kind=err.kind,
        ) from None  # fmt: skip
    if (header.size >= 0 and size != header.size) or version != header.version:
        _forget(url)
        raise SourceError(
            f"the file changed since its header was read (size {header.size}, now {size}; "
            f"version {header.version!r}, now {version!r}); try again",
            provider=provider or None,
            url=public_url(url),
            kind="read",
        )
    return data


class _TileCache:
    """Decoded tiles of the process, the latest kept within a byte budget.

    Fetches in flight are shared too: two reads that need one tile fetch it once.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self.tiles: OrderedDict[tuple[Any, ...], npt.NDArray[Any]] = OrderedDict()
        self.pending: dict[tuple[Any, ...], Future[npt.NDArray[Any]]] = {}
        self.lock = threading.Lock()

    def claim(
        self, ident: tuple[Any, ...], wanted: list[int]
    ) -> tuple[dict[int, Future[npt.NDArray[Any]]], dict[int, Future[npt.NDArray[Any]]]]:
        """A future per wanted tile, and those of the tiles the caller must fetch."""
        tiles: dict[int, Future[npt.NDArray[Any]]] = {}
        mine: dict[int, Future[npt.NDArray[Any]]] = {}
        with self.lock:
            for k in wanted:
                key = (*ident, k)
                if key in self.tiles:
                    self.tiles.move_to_end(key)
                    tiles[k] = Future()
                    tiles[k].set_result(self.tiles[key])
                elif key in self.pending:
                    tiles[k] = self.pending[key]
                else:
                    tiles[k] = mine[k] = self.pending[key] = Future()
        return tiles, mine

    def put(
        self,
        ident: tuple[Any, ...],
        futures: dict[int, Future[npt.NDArray[Any]]],
        tiles: dict[int, npt.NDArray[Any]],
    ) -> None:
        with self.lock:
            for k in futures:
                key = (*ident, k)
                self.pending.pop(key, None)
                if key not in self.tiles and tiles[k].nbytes <= self.budget:
                    self.tiles[key] = tiles[k]
                    self.size += tiles[k].nbytes
            while self.size > self.budget:
                self.size -= self.tiles.popitem(last=False)[1].nbytes
        for k, future in futures.items():
            future.set_result(tiles[k])

    def fail(
        self, ident: tuple[Any, ...], futures: dict[int, Future[Any]], err: BaseException
    ) -> None:
        with self.lock:
            for k in futures:
                self.pending.pop((*ident, k), None)
        for future in futures.values():
            future.set_exception(err)


#: Decoded tiles kept by the process (a batch of many units reads shared tiles once).
TILES = _TileCache(_TILE_CACHE_BYTES)


@dataclass(frozen=True)
class CogReader:
    """Reads windows of one band of a remote COG (picklable: workers read the header anew).

    Parameters
    ----------
    url
        The file's HTTP(S) URL.
    band
        1-based band number.
    provider
        Provider slug, named in errors.
    """

    url: str
    band: int
    provider: str = ""

    @property
    def _header(self) -> CogHeader:
        return _header(self.url, self.provider)

    def __call__(self, rows: slice, cols: slice) -> npt.NDArray[Any]:
        """The cells ``rows, cols`` of the band."""
        return self.read_many([(rows, cols)])[0]

    def read_many(self, windows: Sequence[_Window]) -> list[npt.NDArray[Any]]:
        """The cells of each window, fetching each tile they overlap once.

        Raises
        ------
        SourceError
            When a range cannot be fetched (after the retries) or a tile does not decode.
        """
        return self.collect(windows, self.submit(windows))

    def submit(self, windows: Sequence[_Window]) -> dict[int, Future[npt.NDArray[Any]]]:
        """Start fetching the tiles under ``windows`` (merged ranges, on the I/O threads).

        Tiles decoded lately come from the process's tile cache; tiles another read is
        fetching are waited for, not fetched again.
        """
        header = self._header
        wanted = sorted({t for w in windows for t in self._tiles(header, w)})
        ident = (*_key(self.url), header.size, header.version, self.band)
        tiles, mine = TILES.claim(ident, wanted)
        groups = _merged(header, sorted(mine))
        if _is_local(self.url):
            for group in groups:
                io_pool().submit(self._fetch_into, header, ident, {k: mine[k] for k in group})
            return tiles
        token = hold(len(groups))  # until they are sent, or wait in their host's line
        for group in groups:
            job = functools.partial(self._fetch_into, header, ident, {k: mine[k] for k in group})
            hand_over(self.url, job, token=token)
        return tiles

    def collect(
        self, windows: Sequence[_Window], tiles: dict[int, Future[npt.NDArray[Any]]]
    ) -> list[npt.NDArray[Any]]:
        """The cells of each window, once the tiles :meth:`submit` asked for are there."""
        done = {k: future.result() for k, future in tiles.items()}
        header = self._header
        return [self._paste(header, w, done) for w in windows]

    def gather(self, windows: Sequence[_Window], *, lost: float) -> list[Read]:
        """The cells of each window, a tile lost to the server's HTTP errors as ``lost``.

        See :meth:`collect_lossy`; the reader of :class:`~cas_xr.sources._lost.LossyReader`.
        """
        return self.collect_lossy(windows, self.submit(windows), lost)

    def collect_lossy(
        self, windows: Sequence[_Window], tiles: dict[int, Future[npt.NDArray[Any]]], fill: float
    ) -> list[Read]:
        """As :meth:`collect`, a tile lost to the server's HTTP errors filled with ``fill``.

        Each window comes with None, or the :class:`~cas_xr.errors.SourceError` of a tile
        of it whose range the server still answered with an HTTP error after the retries
        (see :mod:`cas_xr.sources._lost`); other failures are raised.
        """
        header = self._header
        done: dict[int, npt.NDArray[Any]] = {}
        lost: dict[int, SourceError] = {}
        for k, future in tiles.items():
            try:
                done[k] = future.result()
            except SourceError as err:
                if err.kind not in TOLERATED_KINDS:
                    raise
                done[k], lost[k] = np.full(header.tile, fill, dtype=header.dtype), err
        return [
            (
                self._paste(header, window, done),
                next((lost[k] for k in self._tiles(header, window) if k in lost), None),
            )
            for window in windows
        ]

    def _fetch_into(
        self, header: CogHeader, ident: tuple[Any, ...], futures: dict[int, Future[Any]]
    ) -> None:
        """Fetch one merged range; hand each tile to its future and to the tile cache."""
        try:
            tiles = self._fetch_range(header, list(futures))
        except BaseException as err:  # every waiting read sees the failure
            TILES.fail(ident, futures, err)
        else:
            TILES.put(ident, futures, tiles)

    def _tiles(self, header: CogHeader, window: _Window) -> list[int]:
        """Indices (in the offsets) of the tiles under ``window``."""
        rows, cols = window
        th, tw = header.tile
        plane = (self.band - 1) * header.across * header.down if header.separate else 0
        return [
            plane + i * header.across + j
            for i in range(rows.start // th, -(-rows.stop // th))
            for j in range(cols.start // tw, -(-cols.stop // tw))
        ]

    def _fetch_range(self, header: CogHeader, group: list[int]) -> dict[int, npt.NDArray[Any]]:
        present = [k for k in group if header.counts[k] > 0]
        out: dict[int, npt.NDArray[Any]] = {k: self._empty(header) for k in group}
        if not present:
            return out
        start = int(header.offsets[present[0]])
        stop = int(header.offsets[present[-1]] + header.counts[present[-1]])
        data = _read(self.url, start, stop, header, self.provider)
        decode = header.page.decode
        for k in present:
            at = int(header.offsets[k]) - start
            try:
                tile, _, _ = decode(data[at : at + int(header.counts[k])], k)
            except Exception as err:  # a codec's error: the bytes are not a valid tile
                raise SourceError(
                    f"cannot read the asset (corrupt or truncated?): tile {k} does not decode "
                    f"({err.__class__.__name__}: {err})",
                    provider=self.provider or None,
                    url=public_url(self.url),
                    kind="read",
                ) from err
            out[k] = self._band(header, tile)
        return out

    def _band(self, header: CogHeader, tile: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The tile's cells of the band, ``(rows, cols)``."""
        cells = tile.reshape(tile.shape[-3:])  # (rows, cols, contiguous samples)
        return cells[..., 0 if header.separate else self.band - 1]

    def _empty(self, header: CogHeader) -> npt.NDArray[Any]:
        """A sparse tile (no bytes in the file): GDAL reads it as zeros (or nodata)."""
        nodata = header.geo.nodata if header.geo is not None else None
        return np.full(header.tile, nodata if nodata is not None else 0, dtype=header.dtype)

    def _paste(
        self, header: CogHeader, window: _Window, tiles: dict[int, npt.NDArray[Any]]
    ) -> npt.NDArray[Any]:
        rows, cols = window
        th, tw = header.tile
        out = np.empty((rows.stop - rows.start, cols.stop - cols.start), dtype=header.dtype)
        plane = (self.band - 1) * header.across * header.down if header.separate else 0
        for i in range(rows.start // th, -(-rows.stop // th)):
            r0, r1 = max(rows.start, i * th), min(rows.stop, (i + 1) * th)
            for j in range(cols.start // tw, -(-cols.stop // tw)):
                c0, c1 = max(cols.start, j * tw), min(cols.stop, (j + 1) * tw)
                tile = tiles[plane + i * header.across + j]
                out[r0 - rows.start : r1 - rows.start, c0 - cols.start : c1 - cols.start] = tile[
                    r0 - i * th : r1 - i * th, c0 - j * tw : c1 - j * tw
                ]
        return out


def _merged(header: CogHeader, wanted: list[int]) -> list[list[int]]:
    """``wanted`` tiles in groups of one range request each, in file order.

    A tile joins the group of the one before it in the file only when no other tile's
    bytes lie between them (the gap holds other bytes, at most :data:`MAX_GAP`) and the
    range stays within ``_MAX_RANGE``: a range never fetches a tile that was not asked for.
    Tiles without bytes (a sparse file's) form a group of their own, which fetches nothing.
    """
    empty = [k for k in wanted if header.counts[k] <= 0]
    order = sorted((k for k in wanted if header.counts[k] > 0), key=lambda k: header.rank[k])
    groups: list[list[int]] = [empty] if empty else []
    end = start = -1
    for n, k in enumerate(order):
        offset, count = int(header.offsets[k]), int(header.counts[k])
        if (
            n
            and header.rank[k] == header.rank[order[n - 1]] + 1
            and 0 <= offset - end <= MAX_GAP
            and offset + count - start <= _MAX_RANGE
        ):
            groups[-1].append(k)
            end = offset + count
            continue
        groups.append([k])
        start, end = offset, offset + count
    return groups


def cog_reader(url: str, band: int, provider: str) -> tuple[CogReader, CogHeader] | None:
    """A reader of ``url`` and its header, or None when this reader cannot read it.

    The header is read (once per process). None when the file is not a tiled GeoTIFF
    whose codec tifffile decodes, has fewer bands than ``band`` or is a local file that
    cannot be opened: GDAL reads it then (and says what is wrong).
    The header's ``geo`` (None when GDAL must tell) and ``tile`` shape describe the grid.

    Raises
    ------
    SourceError
        When the file cannot be fetched at all.
    """
    try:
        header = _header(url, provider)
    except (ValueError, OSError):  # not one this reader reads, or a local file missing
        return None
    bands = header.samples
    if band > bands:
        return None
    return CogReader(url, band, provider), header


def aligned(start: int, length: int, size: int) -> tuple[int, ...]:
    """Chunk lengths covering ``[start, start + length)`` with edges on multiples of ``size``."""
    edges = [start, *range((start // size + 1) * size, start + length, size), start + length]
    return tuple(b - a for a, b in itertools.pairwise(edges))


def _tile_reads(
    name: str, reader: Any, rows: slice, cols: slice, tile: tuple[int, int], offset: tuple[int, int]
) -> tuple[dict[Any, Any], tuple[tuple[int, ...], tuple[int, ...]]]:
    """Read tasks ``(name, i, j): (reader, rows, cols)`` of chunks on ``tile``, and the chunks."""
    edges = [
        list(
            itertools.pairwise(
                itertools.accumulate(aligned(a.start, a.stop - a.start, n), initial=a.start - o)
            )
        )
        for a, n, o in ((rows, tile[0], offset[0]), (cols, tile[1], offset[1]))
    ]
    graph: dict[Any, Any] = {
        (name, i, j): (reader, slice(r0, r1), slice(c0, c1))
        for (i, (r0, r1)), (j, (c0, c1)) in itertools.product(*map(enumerate, edges))
    }
    chunks = tuple(tuple(b - a for a, b in e) for e in edges)
    return graph, (chunks[0], chunks[1])


def tile_array(
    prefix: str,
    reader: Any,
    rows: slice,
    cols: slice,
    tile: tuple[int, int],
    dtype: np.dtype[Any],
    *,
    offset: tuple[int, int] = (0, 0),
) -> dask.array.Array:
    """Cells ``rows, cols`` of a tiled grid, one read task ``(reader, rows, cols)`` per tile.

    Chunk edges fall on multiples of ``tile``; the read tasks get the chunks' cells minus
    ``offset`` (the window's origin when the reader counts from it), so that
    :func:`~cas_xr.zonal._reads.compute` can fetch many together.
    """
    import dask.array as dsa
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    name = f"{prefix}-{tokenize(reader, rows, cols, tile, offset)}"
    graph, chunks = _tile_reads(name, reader, rows, cols, tile, offset)
    return dsa.Array(
        HighLevelGraph.from_collections(name, graph), name, chunks=chunks, dtype=dtype,
        meta=np.empty((0, 0), dtype),
    )  # fmt: skip


def lossy_tile_arrays(
    prefix: str,
    reader: LossyReader,
    rows: slice,
    cols: slice,
    tile: tuple[int, int],
    dtype: np.dtype[Any],
    *,
    offset: tuple[int, int] = (0, 0),
) -> tuple[dask.array.Array, dask.array.Array]:
    """As :func:`tile_array`, and the chunks' failed-chunk flags.

    ``reader`` is a :class:`~cas_xr.sources._lost.LossyReader`: its read tasks return a
    :data:`~cas_xr.sources._lost.Read`. See :func:`~cas_xr.sources._lost.lossy_arrays`.
    """
    from dask.base import tokenize

    name = f"{prefix}-{tokenize(reader, rows, cols, tile, offset)}"
    reads, chunks = _tile_reads(f"read-{name}", reader, rows, cols, tile, offset)
    return lossy_arrays(reads, name, chunks, dtype)


def known_versions(urls: Sequence[str]) -> tuple[tuple[int, str], ...] | None:
    """The size and version of each remote file's header the process keeps, or None.

    None when one of them is not kept (or has expired): it must be read. Local files are
    left out (their size and time say when they changed).
    """
    ttl = get_settings().metadata_cache_ttl_s
    now = time.monotonic()
    out = []
    with _LOCK:
        for url in urls:
            if _is_local(url):
                continue
            kept = _HEADERS.get((url,))
            if kept is None or now - kept[1] >= ttl:
                return None
            out.append((kept[0].size, kept[0].version))
    return tuple(out)
