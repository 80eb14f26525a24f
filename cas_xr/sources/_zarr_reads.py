"""The Dask graph of a window of a remote Zarr array: one read task per chunk, batchable.

xarray's graph of a Zarr variable reads each chunk in its own task, so the requests in
flight are bounded by the compute threads. Here a window of the array is a Dask array
whose chunks are the store's chunks (cut at the window's edges), each read by a task
``(reader, rows, cols)``, or ``(reader, steps, rows, cols)`` with a time axis, of one
:class:`ZarrWindows`. :func:`~cas_xr.zonal._reads.compute` gives the chunks a
computation needs to one :meth:`ZarrWindows.read_many`, which has zarr fetch them all at
once through the store (:class:`~cas_xr.sources._zarr_store.HttpStore`: per-host cap,
retries, deadline); culling keeps only the chunks under the geometries.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.sources._cog import aligned

if TYPE_CHECKING:
    import dask.array
    import zarr

__all__ = ["ZarrWindows", "window_array"]


@dataclass(frozen=True, eq=False)  # one reader, one batch (see cas_xr.zonal._reads)
class ZarrWindows:
    """Reads windows of a Zarr array: a slice per axis, but for the axes it drops.

    Parameters
    ----------
    array
        The array (zarr's async array; picklable: workers fetch through their own store).
    dropped
        Per axis, the index read where the axis is dropped (one step), or None where a
        window gives a slice of it.
    """

    array: zarr.AsyncArray[Any]
    dropped: tuple[int | None, ...]

    def __call__(self, *spans: slice) -> npt.NDArray[Any]:
        """The cells under ``spans`` (a slice per axis not dropped, e.g. rows, cols)."""
        return self.read_many([spans])[0]

    def read_many(self, windows: Sequence[tuple[slice, ...]]) -> list[npt.NDArray[Any]]:
        """The cells of each window, their chunks fetched concurrently.

        Raises
        ------
        SourceError
            When a chunk cannot be fetched (after the retries).
        """
        from zarr.core.sync import sync  # zarr's event loop, as zarr.Array runs its reads

        async def read_all() -> list[Any]:
            return await asyncio.gather(*(self.array.getitem(self._at(w)) for w in windows))

        return [np.asarray(cells) for cells in sync(read_all())]

    def _at(self, window: tuple[slice, ...]) -> tuple[slice | int, ...]:
        spans = iter(window)
        return tuple(next(spans) if i is None else i for i in self.dropped)


def window_array(
    array: zarr.AsyncArray[Any], window: Sequence[slice | int], name: str
) -> dask.array.Array:
    """The cells of ``array`` under ``window``, one read task per chunk.

    ``window`` has a slice per axis, or an index for an axis that is dropped; the last two
    are slices. Chunk edges fall on the store's chunk edges, so each task
    ``(reader, *slices)`` reads whole chunks' cells once, and one reader reads them all
    (its batches fetch chunks of every step at once). ``name`` names the Dask array
    (unique per window of an open).
    """
    import dask.array as dsa
    from dask.highlevelgraph import HighLevelGraph

    if len(window) != array.ndim or not all(isinstance(s, slice) for s in window[-2:]):
        raise ValueError(f"a window of {array.ndim} axes needs {array.ndim} items, slices last")
    kept = [(s, n) for s, n in zip(window, array.chunks, strict=True) if isinstance(s, slice)]
    edges = [
        list(
            itertools.pairwise(
                itertools.accumulate(aligned(s.start, s.stop - s.start, n), initial=s.start)
            )
        )
        for s, n in kept
    ]
    reader = ZarrWindows(array, tuple(s if isinstance(s, int) else None for s in window))
    graph: dict[Any, Any] = {
        (name, *index): (reader, *(slice(*edges[a][i]) for a, i in enumerate(index)))
        for index in itertools.product(*(range(len(e)) for e in edges))
    }
    chunks = tuple(tuple(b - a for a, b in e) for e in edges)
    dtype = np.dtype(array.dtype)
    return dsa.Array(
        HighLevelGraph.from_collections(name, graph), name, chunks=chunks, dtype=dtype,
        meta=np.empty((0,) * len(kept), dtype),
    )  # fmt: skip
