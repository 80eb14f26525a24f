"""The Dask graph of a window of a remote Zarr array: one read task per chunk, batchable.

xarray's graph of a Zarr variable reads each chunk in its own task, so the requests in
flight are bounded by the compute threads. Here a window of the array is a Dask array
whose chunks are the store's chunks (cut at the window's edges), each read by a task
``(reader, rows, cols)`` over the last two axes (a :class:`ZarrWindows` per chunk of the
leading axes, e.g. time). :func:`~cas_xr.zonal._reads.compute` gives the chunks a
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

_Window = tuple[slice, slice]


@dataclass(frozen=True, eq=False)  # one reader, one batch (see cas_xr.zonal._reads)
class ZarrWindows:
    """Reads windows of the last two axes of a Zarr array at fixed leading slices.

    Parameters
    ----------
    array
        The array (zarr's async array; picklable: workers fetch through their own store).
    lead
        The slice of each leading axis, or its index where the axis is dropped (none for
        a two-dimensional array).
    """

    array: zarr.AsyncArray[Any]
    lead: tuple[slice | int, ...] = ()

    def __call__(self, rows: slice, cols: slice) -> npt.NDArray[Any]:
        """The cells ``lead..., rows, cols``."""
        return self.read_many([(rows, cols)])[0]

    def read_many(self, windows: Sequence[_Window]) -> list[npt.NDArray[Any]]:
        """The cells of each window, their chunks fetched concurrently.

        Raises
        ------
        SourceError
            When a chunk cannot be fetched (after the retries).
        """
        from zarr.core.sync import sync  # zarr's event loop, as zarr.Array runs its reads

        async def read_all() -> list[Any]:
            return await asyncio.gather(
                *(self.array.getitem((*self.lead, rows, cols)) for rows, cols in windows)
            )

        return [np.asarray(cells) for cells in sync(read_all())]


def window_array(
    array: zarr.AsyncArray[Any], window: Sequence[slice | int], name: str
) -> dask.array.Array:
    """The cells of ``array`` under ``window``, one read task per chunk.

    ``window`` has a slice per axis, or an index for a leading axis that is dropped; the
    last two are slices. Chunk edges fall on the store's chunk edges, so each task reads
    whole chunks' cells once. ``name`` names the Dask array (unique per window of an open).
    """
    import dask.array as dsa
    from dask.highlevelgraph import HighLevelGraph

    if len(window) != array.ndim or not all(isinstance(s, slice) for s in window[-2:]):
        raise ValueError(f"a window of {array.ndim} axes needs {array.ndim} items, slices last")
    edges = [
        [(s, s + 1)]
        if isinstance(s, int)
        else list(
            itertools.pairwise(
                itertools.accumulate(aligned(s.start, s.stop - s.start, n), initial=s.start)
            )
        )
        for s, n in zip(window, array.chunks, strict=True)
    ]
    kept = [axis for axis, s in enumerate(window) if isinstance(s, slice)]
    readers: dict[tuple[int, ...], ZarrWindows] = {}
    graph: dict[Any, Any] = {}
    for index in itertools.product(*(range(len(e)) for e in edges)):
        spans: list[Any] = [
            s if isinstance(s, int) else slice(*edges[axis][i])
            for axis, (s, i) in enumerate(zip(window, index, strict=True))
        ]
        lead = index[:-2]
        if lead not in readers:
            readers[lead] = ZarrWindows(array, tuple(spans[:-2]))
        graph[(name, *(index[axis] for axis in kept))] = (readers[lead], spans[-2], spans[-1])
    chunks = tuple(tuple(b - a for a, b in edges[axis]) for axis in kept)
    dtype = np.dtype(array.dtype)
    return dsa.Array(
        HighLevelGraph.from_collections(name, graph), name, chunks=chunks, dtype=dtype,
        meta=np.empty((0,) * len(kept), dtype),
    )  # fmt: skip
