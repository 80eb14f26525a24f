"""Failures: chunks a source could not read, failed results, and the warnings about them.

Chunks a source could not read are counted over the chunks a computation reads.

A source that survives failed chunks (see :class:`~cas_xr.sources.Source`) sets
``attrs["cas_failed_chunks"]``: one element per chunk, None or the error, each from a
task that depends only on the read of its chunk. :func:`read_failures` keeps the
elements whose read a computation needs, so counting them reads nothing more than the
computation itself (zonal statistics read only the chunks under their geometries).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cas_xr.errors import BatchFailureWarning, QualityWarning, SourceError

if TYPE_CHECKING:
    import dask.array
    import xarray as xr

__all__ = ["failure_kind", "read_failures", "warn_summary"]


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


def failure_kind(err: BaseException) -> str:
    """The machine-readable kind of a run-time failure (``SourceError.kind`` or the class)."""
    return err.kind if isinstance(err, SourceError) else type(err).__name__


_INTERNAL = ("cas_xr", "asyncio", "concurrent.futures", "threading")


def _caller_stacklevel() -> int:
    """The ``stacklevel``, for a warning of the calling function, of the user's line."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not any(module == p or module.startswith(p + ".") for p in _INTERNAL):
            break
        frame, level = frame.f_back, level + 1
    return level


def warn_summary(
    failures: list[dict[str, Any]],
    flagged: dict[tuple[str, str], list[Any]],
    *,
    failed: int,
    results: int,
    values: int | None = None,
) -> None:
    """Warn once about a request's failed results and once about its non-GOOD ones.

    The warnings point at the caller's line: the first frame outside cas_xr (and outside
    asyncio, which runs the async API and the ``*_sync`` twins).

    Parameters
    ----------
    failures
        As in a cube's ``attrs["cas_failures"]``: ``dataset_id`` (None: every dataset),
        ``kind``, ``message``, ``count``.
    flagged
        ``(dataset_id, flag) -> [count, a reason]`` of the results that are not GOOD.
    failed
        How many results failed.
    results
        The number of results of the request (geometries x datasets).
    values
        The number of values ``flagged`` counts, when it counts each time step of a
        temporal result and each layer of a cube's other dimensions (geometries x
        datasets x steps x layers); default ``results``.
    """
    import warnings

    stacklevel = _caller_stacklevel()

    if failures:
        names = sorted({f"{f['dataset_id'] or 'every dataset'} ({f['kind']})" for f in failures})
        parts = [
            f"{f['dataset_id'] or 'every dataset'}: {f['count']} geometries ({f['kind']}: "
            f"{f['message']})"
            for f in failures
        ]
        warnings.warn(
            BatchFailureWarning(
                f"{failed} of {results} results failed at run time: {', '.join(names)}; they "
                "are MISSING: " + "; ".join(parts) + " (details in each result's error, or "
                "attrs['cas_failures'] of a cube or table)",
                failures,
            ),
            stacklevel=stacklevel,
        )
    if flagged:
        parts = [
            f"{d}: {flag}: {n} (e.g. {why})" for (d, flag), (n, why) in sorted(flagged.items())
        ]
        what = (
            "results"
            if values is None or values == results
            else f"values ({results} results over their time steps and other dimensions)"
        )
        warnings.warn(
            f"{sum(n for n, _ in flagged.values())} of {values or results} {what} are not GOOD; "
            + "; ".join(parts),
            QualityWarning,
            stacklevel=stacklevel,
        )
