"""Where lazy work runs: the active ``distributed.Client``, the ``dask_scheduler``, or threads.

The order is the contract's: the ``dask_scheduler`` setting when it is set, either a Dask
scheduler address (the active client when it is connected there, else a client connected
to it once and reused) or the name of a local scheduler (``"threads"`` or
``"synchronous"``); else a ``distributed.Client`` active in this process (the default
client); else the threaded scheduler.

On a cluster, the client's settings (the environment plus :func:`~cas_xr.configure`
overrides) and the GDAL options derived from them are applied on every worker by a
worker plugin, registered again whenever the settings change, so that tasks read with the
same retries, timeouts and providers as the client.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from cas_xr.config import Settings, configure, get_settings, shareable_settings
from cas_xr.errors import ConfigurationError, MissingDependencyError

__all__ = ["Scheduler", "current_scheduler"]

K = TypeVar("K")
T = TypeVar("T")

_LOCAL = {"threads": "threads", "synchronous": "synchronous", "sync": "synchronous"}
_PLUGIN_NAME = "cas_xr-settings"
_CONNECT_TIMEOUT_S = 10

_lock = threading.Lock()
_clients: dict[str, Any] = {}  # dask_scheduler address -> the client connected to it
_registered: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class Scheduler:
    """Computes Dask collections and runs tasks on a distributed client or local threads.

    Parameters
    ----------
    client
        A ``distributed.Client``, or None for a local scheduler.
    local
        The local Dask scheduler to use without a client (``"threads"`` or
        ``"synchronous"``).
    """

    def __init__(self, client: Any = None, local: str = "threads") -> None:
        self.client = client
        self.local = local

    def __repr__(self) -> str:
        return f"Scheduler({self.description})"

    @property
    def description(self) -> str:
        """``"distributed (<address>)"`` or the local scheduler's name."""
        if self.client is None:
            return self.local
        return f"distributed ({self.client.scheduler.address})"

    @property
    def slots(self) -> int:
        """How many tasks to keep in flight.

        Two per worker of a cluster; locally two, as each computes its graph on every core.
        """
        if self.client is None:
            return 2
        return 2 * max(len(self.client.scheduler_info(n_workers=-1)["workers"]), 1)

    def compute(self, *collections: Any) -> tuple[Any, ...]:
        """Compute Dask collections together and return their values (blocking)."""
        import dask

        if self.client is None:
            return tuple(dask.compute(*collections, scheduler=self.local))
        futures = self.client.compute(list(collections))
        try:
            return tuple(self.client.gather(futures))
        finally:
            for future in futures:
                future.release()

    @property
    def task_scheduler(self) -> str:
        """The Dask scheduler a task should use for a graph of its own."""
        return self.local if self.client is None else "synchronous"

    def unordered(
        self, jobs: Iterable[tuple[K, Callable[..., T], tuple[Any, ...]]]
    ) -> Iterator[tuple[K, T | None, BaseException | None]]:
        """Run ``(key, function, args)`` jobs, at most :attr:`slots` at a time.

        Locally each job runs in a thread (its own graph computed by
        :attr:`task_scheduler`); on a cluster each job is one task on a worker. Jobs are
        drawn from ``jobs`` only when there is room, so a generator that prepares each job
        keeps the memory of the client bounded.

        Yields
        ------
        tuple
            ``(key, result, None)`` for a job that succeeded and ``(key, None, error)`` for
            one that raised, in the order the jobs finish.
        """
        if self.client is None:
            yield from self._local_unordered(iter(jobs), self.slots)
        else:
            yield from self._distributed_unordered(iter(jobs), self.slots)

    def _local_unordered(
        self, jobs: Iterator[tuple[K, Callable[..., T], tuple[Any, ...]]], in_flight: int
    ) -> Iterator[tuple[K, T | None, BaseException | None]]:
        first = _take(jobs, 2)
        if len(first) < 2:  # a single job runs here: no pool to start
            for key, func, args in first:
                try:
                    result = func(*args)
                except Exception as err:  # the job's failure is reported, not raised
                    yield key, None, err
                else:
                    yield key, result, None
            return
        jobs = itertools.chain(first, jobs)
        pending: dict[Future[T], K] = {}
        # warnings.catch_warnings is not thread-safe: library code (xarray's) entering it in
        # two threads at once may leave one thread's filters behind; keep the caller's
        filters, show = warnings.filters, warnings.showwarning
        pool = _shared_pool()
        try:
            for key, func, args in _take(jobs, in_flight):
                pending[pool.submit(func, *args)] = key
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    key = pending.pop(future)
                    for next_key, func, args in _take(jobs, 1):
                        pending[pool.submit(func, *args)] = next_key
                    error = future.exception()
                    yield key, None if error else future.result(), error
        finally:
            for future in pending:
                future.cancel()
            warnings.filters, warnings.showwarning = filters, show

    def _distributed_unordered(
        self, jobs: Iterator[tuple[K, Callable[..., T], tuple[Any, ...]]], in_flight: int
    ) -> Iterator[tuple[K, T | None, BaseException | None]]:
        from distributed import as_completed

        pending: dict[Any, K] = {}
        completed = as_completed(loop=self.client.loop)

        def submit(count: int) -> None:
            for key, func, args in _take(jobs, count):
                future = self.client.submit(func, *args, pure=False)
                pending[future] = key
                completed.add(future)

        try:
            submit(in_flight)
            for future in completed:
                key = pending.pop(future)
                submit(1)
                try:
                    result, error = future.result(), None
                except Exception as err:  # the job's failure is reported, not raised
                    result, error = None, err
                future.release()
                yield key, result, error
        finally:
            if pending:
                self.client.cancel(list(pending))


_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


def _shared_pool() -> ThreadPoolExecutor:
    """The threads that run local jobs, kept from run to run.

    Dask's threaded scheduler keeps a pool of workers per calling thread: jobs on new
    threads would start (and tear down) a new Dask pool every run.
    """
    with _POOL_LOCK:
        if not _POOL:
            workers = min(32, (os.cpu_count() or 1) + 4)
            _POOL.append(ThreadPoolExecutor(workers, thread_name_prefix="cas_xr-batch"))
        return _POOL[0]


def _take(jobs: Iterator[Any], count: int) -> list[Any]:
    out = []
    for job in jobs:
        out.append(job)
        if len(out) == count:
            break
    return out


def current_scheduler(settings: Settings | None = None) -> Scheduler:
    """The scheduler cas_xr computes on now, with the settings shipped to its workers.

    Parameters
    ----------
    settings
        The settings to apply on cluster workers (default: the current settings).

    Returns
    -------
    Scheduler
        On the ``dask_scheduler`` setting when set, else on the active
        ``distributed.Client``, else on Dask's threaded scheduler.

    Raises
    ------
    MissingDependencyError
        If ``dask_scheduler`` names an address and ``distributed`` is not installed.
    ConfigurationError
        If no scheduler answers at the ``dask_scheduler`` address.
    """
    settings = settings or get_settings()
    address = settings.dask_scheduler
    client = _active_client()
    if address is not None:
        if address in _LOCAL:
            return Scheduler(local=_LOCAL[address])
        if client is None or client.scheduler.address != address:
            client = _client_at(address)
    if client is None:
        return Scheduler()
    _ship_settings(client, settings)
    return Scheduler(client)


def _active_client() -> Any:
    if "distributed" not in sys.modules:  # no client can exist without the import
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:  # "No clients found"
        return None
    return client if client.status == "running" else None


def _client_at(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError as err:
        raise MissingDependencyError(
            f"the dask_scheduler setting ({address!r}) needs the distributed package: "
            "pip install 'cas-xr[distributed]'"
        ) from err
    with _lock:
        client = _clients.get(address)
        if client is None or client.status != "running":
            try:
                client = Client(address, set_as_default=False, timeout=_CONNECT_TIMEOUT_S)
            except OSError as err:
                raise ConfigurationError(
                    f"no Dask scheduler answers at dask_scheduler={address!r} ({err}); start "
                    "one (`dask scheduler`) or fix the setting"
                ) from None
            _clients[address] = client
        return client


def _ship_settings(client: Any, settings: Settings) -> None:
    """Register (again, if they changed) the plugin that applies ``settings`` on workers.

    Secrets (the service's API keys...) stay behind: workers do not need them.
    """
    from cas_xr.sources._base import gdal_options

    shared = shareable_settings(settings)
    fingerprint = repr(shared)
    with _lock:
        if _registered.get(client) == fingerprint:
            return
        plugin = _plugin_class()(
            shared, gdal_options(settings), (socket.gethostname(), os.getpid())
        )
        client.register_plugin(plugin, name=_PLUGIN_NAME)
        _registered[client] = fingerprint


@functools.cache
def _plugin_class() -> type:
    """The worker plugin class (built on first use: importing distributed is slow)."""
    from distributed import WorkerPlugin

    class SettingsPlugin(WorkerPlugin):
        """Apply the client's cas_xr settings and GDAL options on a worker.

        Workers in the client's own process (a threads-only cluster) already share them.
        """

        def __init__(
            self, settings: dict[str, Any], gdal: dict[str, str], origin: tuple[str, int]
        ) -> None:
            self.settings = settings
            self.gdal = gdal
            self.origin = origin

        def setup(self, worker: Any) -> None:
            if (socket.gethostname(), os.getpid()) == self.origin:
                return
            os.environ.update(self.gdal)  # GDAL reads config options from the environment
            if shareable_settings(get_settings()) != self.settings:
                configure(**self.settings)

    return SettingsPlugin
