"""Compute Dask collections with their remote reads batched: many chunks per request round.

A remote source's Dask array has one read task per chunk, ``(reader, rows, cols)`` (with
the slices of leading axes first, e.g. ``(reader, steps, rows, cols)``), whose ``reader``
can also read many windows at once (:class:`BatchReader`: a COG's tiles in merged range
requests, the tiles of several time steps of a STAC layer, a WCS's tiles concurrently, a
Zarr array's chunks concurrently). Run one by one, the reads in flight are bounded by the
compute threads, and every read waits a round trip in turn.
:func:`compute` finds the read tasks a computation needs (after culling: only the chunks
under its geometries) and replaces them with one task per batch of chunks of one reader,
which fetches the whole batch concurrently on the I/O threads, bounded per host by
``max_concurrent_requests_per_host``. Every other task, and each chunk's key, stay as
they were, so what depends on a chunk (its failure flag, a zonal window) is untouched.

A reader that can fetch any window, not only whole chunks (``reads_any_window``: a WCS
asks for any box), fetches only the part of a chunk that the computation slices out of
it: when every use of the chunk's cells is a slice, its read is cut to the box around
the slices and the slices are shifted to match (sparse zonal windows slice each chunk to
the geometries' windows, see :mod:`cas_xr.zonal._sparse`); slices that do not take the
whole box are read apart and joined (the reader's ``joined``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from cas_xr.zonal._fusion import no_fusion

__all__ = ["BatchReader", "compute"]

#: Cells of the chunks fetched by one batch task at most (its memory: 32 Mi cells).
_BATCH_CELLS = 32 * 1024 * 1024


@runtime_checkable
class BatchReader(Protocol):
    """A chunk reader of a Dask read task ``(reader, rows, cols)`` that reads many at once.

    A reader of more than two axes is given a slice of each (``(reader, steps, rows,
    cols)``), and its ``read_many`` windows of as many slices.
    """

    def __call__(self, *window: slice) -> Any:
        """What the read task of the chunk ``window`` (``rows, cols``) returns."""

    def read_many(self, windows: Sequence[tuple[slice, ...]]) -> list[Any]:
        """What the read tasks of the chunks ``windows`` return, fetched together."""


def _cells(window: tuple[slice, ...]) -> int:
    return math.prod(s.stop - s.start for s in window)


def _read_tasks(graph: dict[Any, Any]) -> list[tuple[BatchReader, list[tuple[Any, Any]]]]:
    """The read tasks of the graph by reader: ``(key, ((steps,) rows, cols))``."""
    from dask._task_spec import Task

    found: dict[int, tuple[BatchReader, list[tuple[Any, Any]]]] = {}
    for key, task in graph.items():
        if (
            isinstance(task, Task)
            and isinstance(task.func, BatchReader)
            and len(task.args) >= 2
            and all(isinstance(a, slice) for a in task.args)
        ):
            found.setdefault(id(task.func), (task.func, []))[1].append((key, tuple(task.args)))
    return list(found.values())


def _is_getitem(task: Any) -> bool:
    from dask._task_spec import Alias, Task, TaskRef
    from dask.array.chunk import getitem

    return (
        isinstance(task, Task)
        and task.func in (operator.getitem, getitem)
        and len(task.args) == 2
        and isinstance(task.args[0], (TaskRef, Alias))
        and not task.kwargs
    )


def _box(index: Any, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """The last two items of ``index`` as unit-step slices within ``shape``, or None."""
    out = []
    for item, n in zip(index[-2:], shape, strict=True):
        if not isinstance(item, slice):
            return None
        start, stop, step = item.indices(n)
        if step != 1 or stop <= start:
            return None
        out.append(slice(start, stop))
    return out[0], out[1]


def _slicers(graph: dict[Any, Any], users: dict[Any, list[Any]], key: Any, ndim: int) -> list[Any]:
    """The tasks that slice the chunk ``key`` (of ``ndim`` dims, the last two spatial).

    Uses that only add leading axes (``x[None, :, :]``) are looked through. Empty when
    some use is anything else: it may need the whole chunk.
    """
    found = []
    for user in users.get(key, ()):
        task = graph[user]
        index = task.args[1] if _is_getitem(task) else None
        if not isinstance(index, tuple):
            return []
        added = sum(item is None for item in index)
        if len(index) - added != ndim:
            return []
        if not added:
            found.append(user)
            continue
        lead, last = index[:-2], index[-2:]
        if last != (slice(None), slice(None)) or any(
            i != slice(None) for i in lead if i is not None
        ):
            return []
        inner = _slicers(graph, users, user, len(index))
        if not inner:
            return []
        found.extend(inner)
    return found


def _cropped(graph: dict[Any, Any], reads: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Cut reads to what their chunk's users slice out (see the module); in place.

    The read becomes the box around the slices when one slice takes all of it; else it
    is split into one read per slice and their join (``reader.joined``): the reader's
    ``read_many`` reads the cells of all the slices once (see
    :meth:`cas_xr.sources._wcs_tiles.TileReader.read_many`).
    Returns the reads now in the graph: ``(key, (rows, cols))``.
    """
    from dask._task_spec import Task, TaskRef

    from cas_xr.zonal._boxes import around

    users: dict[Any, list[Any]] = {}
    for key, task in graph.items():
        for dep in getattr(task, "dependencies", ()):
            users.setdefault(dep, []).append(key)
    out = []
    for key, (rows, cols) in reads:
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        cells = [u for u in users.get(key, ()) if _is_getitem(graph[u]) and graph[u].args[1] == 0]
        slicers = _slicers(graph, users, cells[0], 2) if len(cells) == 1 else []
        found = [_box(graph[u].args[1], shape) for u in slicers]
        boxes = [(r.start, r.stop, c.start, c.stop) for r, c in (b for b in found if b)]
        if not slicers or len(boxes) < len(slicers):  # some use takes the whole chunk
            out.append((key, (rows, cols)))
            continue
        r0, r1, c0, c1 = around(boxes)
        for u, (a, b, c, d) in zip(slicers, boxes, strict=True):
            task = graph[u]
            shifted = (slice(a - r0, b - r0), slice(c - c0, d - c0))
            graph[u] = Task(u, task.func, task.args[0], (*task.args[1][:-2], *shifted))
        reader = graph[key].func
        parts = sorted(set(boxes))
        if (r0, r1, c0, c1) in parts:  # one slice takes the box around all
            parts = [(r0, r1, c0, c1)]
        keys = (
            [key] if len(parts) == 1 else [(f"{key[0]}-{n}", *key[1:]) for n in range(len(parts))]
        )
        for part, (a, b, c, d) in zip(keys, parts, strict=True):
            window = (slice(rows.start + a, rows.start + b), slice(cols.start + c, cols.start + d))
            graph[part] = Task(part, reader, *window)
            out.append((part, window))
        if len(parts) > 1:
            spans = [(a - r0, b - r0, c - c0, d - c0) for a, b, c, d in parts]
            refs = [TaskRef(part) for part in keys]
            graph[key] = Task(key, reader.joined, spans, (r1 - r0, c1 - c0), *refs)
    return out


def batched(graph: dict[Any, Any]) -> dict[Any, Any]:
    """``graph`` (of Tasks) with its read tasks fetched in batches (see the module)."""
    from dask._task_spec import Task, TaskRef
    from dask.base import tokenize

    out = dict(graph)
    for reader, found in _read_tasks(graph):
        reads = _cropped(out, found) if getattr(reader, "reads_any_window", False) else found
        if len(reads) < 2:
            continue
        reads.sort(key=lambda kw: (kw[1][-2].start, kw[1][-1].start, kw[1][0].start))
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


def _nested(keys: Any, values: dict[Any, Any]) -> Any:
    """The values of ``keys`` (lists of lists of keys) as tuples of tuples, as Dask gives."""
    if isinstance(keys, list):
        return tuple(_nested(k, values) for k in keys)
    return values[keys]


def _get_inline(graph: dict[Any, Any], keys: list[Any]) -> Any:
    """The values of ``keys``: each task they need run here, after those it depends on.

    No scheduler: for the few tasks of a small request, ordering them and keeping the
    books costs more than running them; every value is kept until the end.
    """
    from dask.core import flatten

    values: dict[Any, Any] = {}
    for key in flatten(keys):
        stack = [key]
        while stack:
            if stack[-1] in values:  # a dependency of more than one task
                stack.pop()
                continue
            task = graph[stack[-1]]
            waiting = [d for d in task.dependencies if d not in values]
            if waiting:
                stack.extend(waiting)
                continue
            values[stack.pop()] = task(values)
    return _nested(keys, values)


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
        unit's task; asking Dask for the scheduler by name would import distributed), or
        ``"inline"``: the tasks run in this thread in dependency order, without a
        scheduler (for the few tasks of a small request).
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
        with no_fusion():  # keep the read tasks
            optimized = dask.optimize(*collections)
    else:
        optimized = collections
    graph: dict[Any, Any] = {}
    for collection in optimized:
        graph.update(collection.__dask_graph__())
    keys = [collection.__dask_keys__() for collection in optimized]
    if not optimize:
        graph, _ = cull(graph, list(flatten(keys)))
    gets: dict[str, Callable[..., Any]] = {
        "synchronous": dask.local.get_sync, "sync": dask.local.get_sync, "inline": _get_inline,
    }  # fmt: skip
    results = gets.get(scheduler, dask.threaded.get)(batched(convert_legacy_graph(graph)), keys)
    finals = (collection.__dask_postcompute__() for collection in optimized)
    return tuple(f(r, *args) for r, (f, args) in zip(results, finals, strict=True))
