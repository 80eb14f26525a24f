"""Compute Dask collections with their remote reads batched: many chunks per request round.

A remote source's Dask array has one read task per chunk, ``(reader, rows, cols)``, whose
``reader`` can also read many windows at once (:class:`BatchReader`: a COG's tiles in
merged range requests, a WCS's tiles concurrently). Run one by one, the reads in flight
are bounded by the compute threads, and every read waits a round trip in turn.
:func:`compute` finds the read tasks a computation needs (after culling: only the chunks
under its geometries) and replaces them with one task per batch of chunks of one reader,
which fetches the whole batch concurrently on the I/O threads, bounded per host by
``max_concurrent_requests_per_host``. Every other task, and each chunk's key, stay as
they were, so what depends on a chunk (its failure flag, a zonal window) is untouched.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["BatchReader", "compute"]

#: Cells of the chunks fetched by one batch task at most (its memory: 32 Mi cells).
_BATCH_CELLS = 32 * 1024 * 1024


@runtime_checkable
class BatchReader(Protocol):
    """A chunk reader of a Dask read task ``(reader, rows, cols)`` that reads many at once."""

    def __call__(self, rows: slice, cols: slice) -> Any:
        """What the read task of the chunk ``rows, cols`` returns."""

    def read_many(self, windows: Sequence[tuple[slice, slice]]) -> list[Any]:
        """What the read tasks of the chunks ``windows`` return, fetched together."""


def _cells(window: tuple[slice, slice]) -> int:
    rows, cols = window
    return (rows.stop - rows.start) * (cols.stop - cols.start)


def _read_tasks(graph: dict[Any, Any]) -> list[tuple[BatchReader, list[tuple[Any, Any]]]]:
    """The read tasks of the graph by reader: ``(key, (rows, cols))``."""
    from dask._task_spec import Task

    found: dict[int, tuple[BatchReader, list[tuple[Any, Any]]]] = {}
    for key, task in graph.items():
        if (
            isinstance(task, Task)
            and isinstance(task.func, BatchReader)
            and len(task.args) == 2
            and all(isinstance(a, slice) for a in task.args)
        ):
            found.setdefault(id(task.func), (task.func, []))[1].append((key, tuple(task.args)))
    return list(found.values())


def batched(graph: dict[Any, Any]) -> dict[Any, Any]:
    """``graph`` (of Tasks) with its read tasks fetched in batches (see the module)."""
    from dask._task_spec import Task, TaskRef
    from dask.base import tokenize

    out = dict(graph)
    for reader, reads in _read_tasks(graph):
        if len(reads) < 2:
            continue
        reads.sort(key=lambda kw: (kw[1][0].start, kw[1][1].start))
        batches: list[list[tuple[Any, Any]]] = [[]]
        cells = 0
        for read in reads:
            if batches[-1] and cells + _cells(read[1]) > _BATCH_CELLS:
                batches.append([])
                cells = 0
            batches[-1].append(read)
            cells += _cells(read[1])
        for batch in batches:
            name = f"cas-batch-read-{tokenize(id(reader), [key for key, _ in batch])}"
            out[name] = Task(name, reader.read_many, [window for _, window in batch])
            for n, (key, _) in enumerate(batch):
                out[key] = Task(key, operator.getitem, TaskRef(name), n)
    return out


def compute(
    *collections: Any, scheduler: str = "threads", optimize: bool = True
) -> tuple[Any, ...]:
    """Compute Dask collections together, as ``dask.compute``, with batched remote reads.

    Parameters
    ----------
    *collections
        Dask collections (arrays).
    scheduler
        A local Dask scheduler: ``"threads"`` or ``"synchronous"`` (this runs inside a
        unit's task; asking Dask for the scheduler by name would import distributed).
    optimize
        Optimise the graph as ``dask.compute`` does; False only culls it to the tasks the
        collections need (the same values: for the few tasks of a small request,
        optimising costs more than it saves).

    Returns
    -------
    tuple
        The computed values, in order.
    """
    import dask
    import dask.local
    import dask.threaded
    from dask._task_spec import convert_legacy_graph
    from dask.core import flatten
    from dask.optimization import cull

    if optimize:
        with dask.config.set({"optimization.fuse.active": False}):  # keep the read tasks
            optimized = dask.optimize(*collections)
    else:
        optimized = collections
    graph: dict[Any, Any] = {}
    for collection in optimized:
        graph.update(collection.__dask_graph__())
    keys = [collection.__dask_keys__() for collection in optimized]
    if not optimize:
        graph, _ = cull(graph, list(flatten(keys)))
    get = dask.local.get_sync if scheduler in ("synchronous", "sync") else dask.threaded.get
    results = get(batched(convert_legacy_graph(graph)), keys)
    finals = (collection.__dask_postcompute__() for collection in optimized)
    return tuple(f(r, *args) for r, (f, args) in zip(results, finals, strict=True))
