"""Requests being sent: Python's cyclic garbage collection held back until they are on their way.

A full collection walks every object the process tracks. With the stack cas_xr runs on
imported (xarray, Dask, geopandas, pystac, rasterio...: some 10^5 objects) it takes
100-180 ms on 2 cores, holding the GIL. The burst of allocation of a read's requests
(threads started, sessions, request objects) is what often makes one fall due; one that
landed while a COG's five tile ranges were being sent held three of them back by 165 ms
(at a 150 ms round trip the server saw them leave as the first two came back).

:func:`hold` keeps automatic collection off until each request it counts is on its way:
a collection that falls due runs right after, while the answers travel. The thread that
sends a counted request runs it in :func:`owing`; its share is released when the request
is sent (:func:`sent`, called by the connections of :class:`SentAdapter` as they turn to
read the answer), when it must wait for a slot of its host (it cannot leave now), or when
:func:`owing` exits, whatever happened. No hold outlasts :data:`MAX_HOLD_S`, and
collection is turned back on only if it was on when the first hold began. The same
signal sets the event of :func:`signalling`: a read started ahead lets its caller go on
(and hold the GIL) only once its request has left.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

__all__ = ["MAX_HOLD_S", "SentAdapter", "hold", "owing", "release", "sent", "signalling"]

#: Longest automatic collection stays off (a counted request stuck behind busy threads).
MAX_HOLD_S = 1.0

_lock = threading.Lock()
_local = threading.local()


class _Hold:
    """Requests counted and not yet sent; collection's state before the first was counted."""

    count = 0
    era = 0  # a new one each time collection is turned back on: late releases are ignored
    since = 0.0
    was_on = False


def _release(count: int, era: int) -> None:
    """Release ``count`` requests of ``era`` (with the lock held)."""
    if era != _Hold.era or not _Hold.count:
        return
    _Hold.count = max(_Hold.count - count, 0)
    if not _Hold.count:
        _Hold.era += 1
        if _Hold.was_on:
            gc.enable()


def _expire() -> None:
    """Release every request of a hold older than :data:`MAX_HOLD_S` (with the lock held)."""
    if _Hold.count and time.monotonic() - _Hold.since > MAX_HOLD_S:
        _release(_Hold.count, _Hold.era)


def hold(count: int) -> int:
    """Keep automatic garbage collection off until ``count`` more requests are sent.

    Parameters
    ----------
    count
        Requests about to be handed to threads that send each in :func:`owing`.

    Returns
    -------
    int
        The hold's token, for :func:`owing` (-1 for no request: nothing is held).
    """
    if count <= 0:
        return -1
    with _lock:
        _expire()
        if not _Hold.count:
            _Hold.was_on, _Hold.since = gc.isenabled(), time.monotonic()
            gc.disable()
        _Hold.count += count
        return _Hold.era


@contextmanager
def owing(token: int) -> Iterator[None]:
    """Send a request that the :func:`hold` of ``token`` counted, in this block.

    Its share is released when it is sent, or at the end of the block at the latest.
    """
    _local.owing = token if token >= 0 else None
    try:
        yield
    finally:
        sent()


@contextmanager
def signalling(event: threading.Event) -> Iterator[None]:
    """Set ``event`` when the request this thread sends next is sent, or at the end."""
    _local.signal = event
    try:
        yield
    finally:
        sent()


def release(token: int) -> None:
    """Release one share of the :func:`hold` of ``token``: a request that cannot leave now.

    For a request that waits in line for a slot of its host instead of being sent (it is
    then sent outside :func:`owing`).
    """
    if token < 0:
        return
    with _lock:
        _release(1, token)
        _expire()


def sent() -> None:
    """Release the share of this thread's counted request: it is sent, or cannot leave now.

    Also sets the event of :func:`signalling`, if any.
    """
    signal = getattr(_local, "signal", None)
    if signal is not None:
        _local.signal = None
        signal.set()
    era = getattr(_local, "owing", None)
    if era is None:
        return
    _local.owing = None
    with _lock:
        _release(1, era)
        _expire()


# getresponse is called once the request is written: what is left is the wait for the
# answer (the ignore: urllib3's own override narrows http.client's return type too)
class _SentHTTPConnection(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        sent()
        return super().getresponse()


class _SentHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        sent()
        return super().getresponse()


class _SentHTTPPool(HTTPConnectionPool):
    ConnectionCls = _SentHTTPConnection


class _SentHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _SentHTTPSConnection


class SentAdapter(HTTPAdapter):
    """requests' adapter whose connections call :func:`sent` once a request is written."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the pool manager, with connection pools that say when a request is sent."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _SentHTTPPool, "https": _SentHTTPSPool}
