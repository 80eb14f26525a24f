"""Where a GeoTIFF's internal tiles lie in the file, to tell which tiles a reader fetched."""

from __future__ import annotations

import os
from collections.abc import Iterable

import rasterio

from cas_xr.errors import InvalidArgumentError
from cas_xr.testing._latency import RequestRecord

__all__ = ["tiff_tiles", "tiles_requested"]


def tiff_tiles(
    path: str | os.PathLike[str], *, band: int = 1
) -> dict[tuple[int, int], tuple[int, int]]:
    """Byte offset and length of each internal tile of a GeoTIFF's full-resolution image.

    Read from the file's ``TileOffsets`` and ``TileByteCounts`` (GDAL's ``TIFF`` metadata
    domain); overviews are not included. The strips of an untiled file are its tiles of
    one column.

    Parameters
    ----------
    path : str or os.PathLike
        A GeoTIFF (e.g. a COG from :func:`~cas_xr.testing.make_cog`).
    band : int, default 1
        Band whose tiles to list (they differ only for band-separate files).

    Returns
    -------
    dict
        ``(row, col) -> (offset, length)`` in bytes; a tile that was never written (sparse
        file) has length 0.

    Raises
    ------
    cas_xr.errors.InvalidArgumentError
        If the file is not a GeoTIFF. Also a :class:`ValueError`.
    """
    with rasterio.open(path) as src:
        if src.driver != "GTiff":
            raise InvalidArgumentError(f"{path}: not a GeoTIFF but a {src.driver} file")
        height, width = src.block_shapes[band - 1]
        rows, cols = -(-src.height // height), -(-src.width // width)
        tiles = {}
        for row in range(rows):
            for col in range(cols):
                offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
                length = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
                tiles[row, col] = (int(offset or 0), int(length or 0))
    return tiles


def tiles_requested(
    records: Iterable[RequestRecord], tiles: dict[tuple[int, int], tuple[int, int]]
) -> set[tuple[int, int]]:
    """The tiles some of whose bytes a server sent.

    Parameters
    ----------
    records : iterable of RequestRecord
        E.g. :attr:`LatencyHTTPServer.records <cas_xr.testing.LatencyHTTPServer.records>`,
        keeping those of one file's path.
    tiles : dict
        ``(row, col) -> (offset, length)`` of that file, from :func:`tiff_tiles`.

    Returns
    -------
    set of tuple of int
        ``(row, col)`` of every tile that overlaps a byte range sent.
    """
    sent = [r for record in records for r in record.ranges]
    return {
        key
        for key, (offset, length) in tiles.items()
        if length and any(first < offset + length and offset <= last for first, last in sent)
    }
