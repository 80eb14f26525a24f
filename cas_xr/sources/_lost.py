"""Chunks lost to a server that keeps failing: nodata and the error, not a failed request.

A remote reader that survives lost chunks returns, for each chunk, its cells and None,
or cells of nodata and the :class:`~cas_xr.errors.SourceError` when the server still
answered the chunk's request with an HTTP error after the retries (a server that fails a
few of many requests degrades a result instead of failing it). :func:`lossy_arrays` makes
the Dask arrays of the cells and of the failed-chunk flags
(``attrs["cas_failed_chunks"]``, see :class:`~cas_xr.sources.Source`) from one read task
per chunk: each flag depends on its chunk's read alone.

Any other failure is raised by the read task: a server that cannot be reached or does not
answer in time fails every chunk alike, and an answer that is not what was asked will
not change on a later request.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from cas_xr.errors import SourceError

if TYPE_CHECKING:
    import dask.array

__all__ = ["TOLERATED_KINDS", "LossyReader", "Read", "fill_value", "lossy_arrays"]

#: SourceError kinds of a chunk that is filled with nodata and counted instead of raised.
TOLERATED_KINDS = frozenset({"http"})

#: What a lossy read task returns: the cells, and None or the error that lost them.
Read = tuple[npt.NDArray[Any], SourceError | None]


class _Gathering(Protocol):
    """A reader of windows that can read a tile lost to the server's errors as nodata."""

    def gather(self, windows: Sequence[Any], *, lost: float) -> list[Read]:
        """The cells of each window, a lost tile as ``lost``, and None or its error."""


@dataclass(frozen=True)
class LossyReader:
    """The reader of lossy Dask read tasks (:func:`lossy_arrays`): each window's :data:`Read`.

    ``reader.gather`` reads the windows, a tile the server still answers with an HTTP
    error after the retries as ``lost`` (a COG's tiles, a mosaic of STAC items, their time
    steps); other failures are raised.
    """

    reader: _Gathering
    lost: float

    def __call__(self, *window: slice) -> Read:
        """The cells of ``window`` (``rows, cols``; time steps first), and None or an error."""
        return self.read_many([window])[0]

    def read_many(self, windows: Sequence[tuple[slice, ...]]) -> list[Read]:
        """What :meth:`__call__` returns for each window, fetched together."""
        return self.reader.gather(windows, lost=self.lost)


def fill_value(dtype: np.dtype[Any], nodata: float | None) -> float | None:
    """What to fill a lost chunk with: nodata if the dtype holds it, NaN for floats, else None."""
    if nodata is not None:
        if dtype.kind == "f":
            return nodata
        info = np.iinfo(dtype)
        if float(nodata).is_integer() and info.min <= nodata <= info.max:
            return nodata
    return np.nan if dtype.kind == "f" else None


def _error_block(read: Read) -> npt.NDArray[np.object_]:
    out = np.empty((1,) * read[0].ndim, dtype=object)
    out.flat[0] = read[1]
    return out


def lossy_arrays(
    reads: dict[Any, Any],
    name: str,
    chunks: tuple[tuple[int, ...], ...],
    dtype: np.dtype[Any],
) -> tuple[dask.array.Array, dask.array.Array]:
    """The cells and the failed-chunk flags of the chunks that ``reads`` read.

    Parameters
    ----------
    reads
        ``(read_name, i, j) -> task`` for each chunk ``(i, j)``, the task returning a
        :data:`Read`; one name for all.
    name
        Name of the cells' Dask array (unique per window and chunking).
    chunks
        Chunk sizes along each axis (``y`` and ``x``; ``time`` first for time steps).
    dtype
        The cells' dtype.

    Returns
    -------
    tuple of dask.array.Array
        The cells, and an object array of one element per chunk (None, or the
        :class:`~cas_xr.errors.SourceError` of a chunk filled with nodata).
    """
    import dask.array as dsa
    from dask.highlevelgraph import HighLevelGraph

    read = next(iter(reads))[0]
    failed = f"failed-{name}"
    cells: dict[Any, Any] = {(name, *k[1:]): (operator.getitem, k, 0) for k in reads}
    errors: dict[Any, Any] = {(failed, *k[1:]): (_error_block, k) for k in reads}
    data = dsa.Array(
        HighLevelGraph({read: reads, name: cells}, {read: set(), name: {read}}),
        name,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * len(chunks), dtype),
    )
    flags = dsa.Array(
        HighLevelGraph({read: reads, failed: errors}, {read: set(), failed: {read}}),
        failed,
        chunks=tuple((1,) * len(c) for c in chunks),
        dtype=object,
        meta=np.empty((0,) * len(chunks), object),
    )
    return data, flags
