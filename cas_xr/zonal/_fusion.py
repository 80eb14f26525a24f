"""Dask's low-level fusion kept off while cas_xr builds and optimises graphs that read.

Fused, a source chunk's read task becomes part of the task that slices it (a window of
some geometries), so :mod:`cas_xr.zonal._reads` no longer finds it: every chunk is then
read whole, on its own, one request each (a WCS GetCoverage per 128-cell chunk instead of
the planned rectangles). Graphs are built and optimised with fusion off: a window task
is a ``Delayed`` whose array arguments dask optimises when the task is made.

``dask.config.set`` is process-wide, and on exit it puts back the value it found on
entry: two threads that enter in turn and leave in the same order (two units of a batch
in flight, two service jobs) leave fusion on for the rest of the second one, whose
windows are then built fused (seen: a window built so read its chunks on Dask's threads,
a whole chunk per request; under CPU load, when units' turns overlap most, 100,000
polygons took 636-775 requests instead of about 80). :func:`no_fusion` turns fusion off
when the first thread enters and puts the setting back when the last one leaves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["no_fusion"]

_FUSE = "optimization.fuse.active"


class _Holder:
    """The threads inside :func:`no_fusion` and the ``dask.config.set`` they share."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.setting: Any = None


_HOLDER = _Holder()


@contextlib.contextmanager
def no_fusion() -> Iterator[None]:
    """Keep dask's low-level fusion off while any thread of this process is inside.

    Yields
    ------
    None
    """
    import dask

    with _HOLDER.lock:
        if not _HOLDER.inside:
            _HOLDER.setting = dask.config.set({_FUSE: False})
        _HOLDER.inside += 1
    try:
        yield
    finally:
        with _HOLDER.lock:
            _HOLDER.inside -= 1
            if not _HOLDER.inside:
                _HOLDER.setting.__exit__(None, None, None)
                _HOLDER.setting = None
