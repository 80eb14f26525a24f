"""Chunks a source could not read, counted over the chunks a computation reads.

A source that survives failed chunks (see :class:`~cas_xr.sources.Source`) sets
``attrs["cas_failed_chunks"]``: one element per chunk, None or the error, each from a
task that depends only on the read of its chunk. :func:`read_failures` keeps the
elements whose read a computation needs, so counting them reads nothing more than the
computation itself (zonal statistics read only the chunks under their geometries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import dask.array
    import xarray as xr

__all__ = ["read_failures"]


def _needed_keys(collections: tuple[Any, ...]) -> set[Any]:
    """Every key the graphs of ``collections`` need to compute them."""
    from dask.core import flatten

    needed: set[Any] = set()
    for collection in collections:
        graph = collection.__dask_graph__()  # a HighLevelGraph for arrays and xarray objects
        needed |= set(graph.cull(set(flatten(collection.__dask_keys__()))).keys())
    return needed


def _tally(blocks: list[npt.NDArray[np.object_]]) -> npt.NDArray[np.int64]:
    """The number of failed chunks; the first error if every chunk failed."""
    errors = [e for block in blocks for e in block.ravel()]
    failed = [e for e in errors if e is not None]
    if failed and len(failed) == len(errors):
        raise failed[0]
    return np.array([len(failed)], dtype=np.int64)


def read_failures(da: xr.DataArray, *collections: Any) -> dask.array.Array | None:
    """How many of the chunks of ``da`` that ``collections`` read failed (lazy).

    Parameters
    ----------
    da
        Data from a source, maybe with ``attrs["cas_failed_chunks"]``.
    *collections
        The Dask collections (e.g. a zonal cube over ``da``) that will be computed
        together with the result.

    Returns
    -------
    dask.array.Array or None
        None when the source reports no failed chunks; else a one-element int64 array
        to compute together with ``collections`` (so that the chunks are read once),
        whose computation raises the first chunk's error when every chunk the
        collections read failed.
    """
    import dask.array as dsa
    from dask.base import tokenize
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph

    flags = da.attrs.get("cas_failed_chunks")
    if flags is None:
        return None
    needed = _needed_keys(collections)
    dependencies = flags.__dask_graph__().get_all_dependencies()
    keys = [k for k in flatten(flags.__dask_keys__()) if dependencies.get(k, set()) & needed]
    name = f"read-failures-{tokenize(flags.name, keys)}"
    graph = HighLevelGraph.from_collections(name, {(name, 0): (_tally, keys)}, [flags])
    return dsa.Array(graph, name, chunks=((1,),), dtype=np.int64, meta=np.empty(0, np.int64))
