"""The Dask graph of a WCS window: one GetCoverage per chunk, and the chunks that failed.

Each chunk is read by one task that returns its cells and, when the server still answers
the request with an HTTP error after the retries, cells of nodata and the
:class:`~cas_xr.errors.SourceError`: a server that fails a few of many requests degrades
a result instead of failing it. A small task per chunk takes that error (or None) from
the read task's result; together they form ``attrs["cas_failed_chunks"]`` (see
:class:`~cas_xr.sources.Source`).

Any other failure is raised by the read task. A server that cannot be reached or does not
answer in time fails every tile alike, so waiting out each tile's retries would only
multiply the wait before the same error; an exception report, an answer that is not a
GeoTIFF or one on another grid will not change on a later request.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
from affine import Affine

from cas_xr.errors import SourceError
from cas_xr.sources._lost import TOLERATED_KINDS, Read, fill_value, lossy_arrays
from cas_xr.sources._wcs_io import same_nodata

if TYPE_CHECKING:
    import dask.array

    from cas_xr.sources._wcs import DescribedCoverage, WcsSource

__all__ = ["TileReader", "tile_arrays"]

_LOG = logging.getLogger("cas_xr.sources")


@dataclass(frozen=True)
class TileReader:
    """Reads one chunk of a window of a coverage (picklable for distributed workers).

    Parameters
    ----------
    source
        The source (its ``_tile`` sends the checked GetCoverage request).
    coverage
        What the source described: grid, dtype and nodata.
    window
        Transform of the window's first cell.
    """

    source: WcsSource
    coverage: DescribedCoverage
    window: Affine
    #: Any box can be requested, not only whole chunks (see cas_xr.zonal._reads).
    reads_any_window: ClassVar[bool] = True

    def __call__(self, rows: slice, cols: slice) -> Read:
        """The cells ``rows, cols`` of the window, and None; or nodata and the error."""
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        transform = self.window @ Affine.translation(cols.start, rows.start)
        dtype = np.dtype(self.coverage.dtype)
        try:
            tile = self.source._tile(self.coverage.grid, transform, shape)
        except SourceError as err:
            fill = fill_value(dtype, self.coverage.nodata)
            if err.kind not in TOLERATED_KINDS or fill is None:
                raise
            _LOG.warning("a WCS tile is treated as nodata: %s", err)
            return np.full(shape, fill, dtype=dtype), err
        if tile.data.dtype != dtype:
            raise SourceError(
                f"a tile came back as {tile.data.dtype}, the coverage is {self.coverage.dtype}",
                provider=self.source.provider,
                url=tile.url,
                kind="bad_payload",
            )
        same_nodata(tile.data, tile.nodata, self.coverage.nodata)
        return tile.data, None

    def joined(
        self, spans: Sequence[tuple[int, int, int, int]], shape: tuple[int, int], *reads: Read
    ) -> Read:
        """One read of ``shape`` cells from reads of its parts ``spans`` (r0, r1, c0, c1).

        Cells in no part are never used (see :func:`cas_xr.zonal._reads.compute`); they
        hold zeros. The error is the first part's that failed, if any.
        """
        data = np.zeros(shape, dtype=np.dtype(self.coverage.dtype))
        for (r0, r1, c0, c1), (part, _) in zip(spans, reads, strict=True):
            data[r0:r1, c0:c1] = part
        return data, next((error for _, error in reads if error is not None), None)

    def read_many(self, windows: Sequence[tuple[slice, slice]]) -> list[Read]:
        """What :meth:`__call__` returns for each window, in few concurrent requests.

        The cells of all windows are read once, in few disjoint rectangles of at most
        ``tile_size`` cells a side that hold at most ``read_ratio`` times the cells the
        windows cover (see :func:`cas_xr.zonal._cover.cover`: where geometries are
        dense, the box around many windows takes few requests but reads the gaps
        between them, 2.1x the cells for 2,000 windows of about 110 x 110 cells on
        6,144^2 cells; 1.2x takes 1,300 requests); the requests run at once
        on the I/O threads (see :func:`_read_all`). A window under several rectangles is
        pieced together from them; a rectangle is at least two cells a side (see
        :func:`_two_cells`).
        """
        from cas_xr.zonal._cover import cover

        boxes = [(r.start, r.stop, c.start, c.stop) for r, c in windows]
        rects = [
            _two_cells(rect) for rect in cover(boxes, self.source.tile_size, self.source.read_ratio)
        ]
        reads = _read_all(self, rects)
        starts = np.array(rects, dtype=np.int64).reshape(-1, 4)
        return [self._piece(box, rects, starts, reads) for box in boxes]

    def _piece(
        self,
        box: tuple[int, int, int, int],
        rects: Sequence[tuple[int, int, int, int]],
        edges: npt.NDArray[np.int64],
        reads: Sequence[Read],
    ) -> Read:
        """The read of ``box`` from the reads of the rectangles ``rects`` that cover it."""
        r0, r1, c0, c1 = box
        under = np.flatnonzero(
            (edges[:, 0] < r1) & (edges[:, 1] > r0) & (edges[:, 2] < c1) & (edges[:, 3] > c0)
        ).tolist()
        if len(under) == 1:  # inside one rectangle: a view of its cells
            a, _, c, _ = rects[under[0]]
            data, error = reads[under[0]]
            return data[r0 - a : r1 - a, c0 - c : c1 - c], error
        out = np.empty((r1 - r0, c1 - c0), dtype=np.dtype(self.coverage.dtype))
        for k in under:
            a, b, c, d = rects[k]
            top, bottom, left, right = max(a, r0), min(b, r1), max(c, c0), min(d, c1)
            out[top - r0 : bottom - r0, left - c0 : right - c0] = reads[k][0][
                top - a : bottom - a, left - c : right - c
            ]
        return out, next((reads[k][1] for k in under if reads[k][1] is not None), None)


def _read_all(
    read: Callable[[slice, slice], Read], rects: Sequence[tuple[int, int, int, int]]
) -> list[Read]:
    """``read`` of each rectangle ``(r0, r1, c0, c1)``, several at once on the I/O threads.

    At most ``max_concurrent_requests_per_host`` of them are handed to the I/O threads at
    a time (the host's cap on requests in flight, see :mod:`cas_xr.sources._http`), the
    next as one ends: a slow host's hundreds of rectangles never hold every I/O thread
    (the reads of other hosts would wait behind them). The first failure is raised; the
    rectangles not yet handed over are then never requested.
    """
    from concurrent.futures import FIRST_COMPLETED, Future, wait

    from cas_xr.config import get_settings
    from cas_xr.sources._http import io_pool

    pool = io_pool()
    todo = iter(enumerate(rects))
    running: dict[Future[Read], int] = {}
    found: dict[int, Read] = {}

    def hand_over(count: int) -> None:
        for k, (r0, r1, c0, c1) in itertools.islice(todo, count):
            running[pool.submit(read, slice(r0, r1), slice(c0, c1))] = k

    hand_over(get_settings().max_concurrent_requests_per_host)
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            found[running.pop(future)] = future.result()
        hand_over(len(done))
    return [found[k] for k in range(len(rects))]


def _two_cells(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``box`` grown to at least two cells a side; it may then overlap another.

    MapServer answers a request one cell wide with a GeoTIFF whose transform is NaN.
    """
    r0, r1, c0, c1 = box
    if r1 - r0 < 2:
        r0, r1 = (r0 - 1, r1) if r0 > 0 else (r0, r1 + 1)
    if c1 - c0 < 2:
        c0, c1 = (c0 - 1, c1) if c0 > 0 else (c0, c1 + 1)
    return r0, r1, c0, c1


def tile_arrays(
    reader: TileReader, blocks: tuple[tuple[int, ...], tuple[int, ...]], name: str
) -> tuple[dask.array.Array, dask.array.Array]:
    """The window's cells and its failed-chunk array, both from one read task per chunk.

    Parameters
    ----------
    reader
        Reads one chunk.
    blocks
        Chunk sizes along ``y`` and ``x``; each chunk is one GetCoverage request.
    name
        Name of the cells' Dask array (unique per window and chunking).

    Returns
    -------
    tuple of dask.array.Array
        The cells, and an object array of one element per chunk (None, or the
        :class:`~cas_xr.errors.SourceError` of a chunk filled with nodata).
    """
    read = f"read-{name}"
    edges = [list(itertools.pairwise(itertools.accumulate(b, initial=0))) for b in blocks]
    reads: dict[Any, Any] = {}
    for (i, (r0, r1)), (j, (c0, c1)) in itertools.product(*map(enumerate, edges)):
        reads[(read, i, j)] = (reader, slice(r0, r1), slice(c0, c1))
    return lossy_arrays(reads, name, blocks, np.dtype(reader.coverage.dtype))
