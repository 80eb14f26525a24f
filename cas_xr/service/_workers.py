"""Worker processes that compute batched jobs, away from the server's event loop.

With ``job_processes`` > 0, the calls of jobs that run together (``extract``) are
computed in that many worker processes at a lower CPU priority (``nice`` +10). The
event loop's process then only answers HTTP requests and writes the job store, so a
burst of submits is not answered behind the computation: the engine's Python holds the
GIL of its own process, and the operating system serves the HTTP answers first. The
workers apply the server's settings (without the service's secrets) before each call.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pydantic import SecretStr

import cas_xr as cas
from cas_xr.config import configure, shareable_settings
from cas_xr.errors import CasWarning
from cas_xr.service._options import ServiceOptions
from cas_xr.service._processes import Process, cas_processes
from cas_xr.service._redact import redact

__all__ = ["WorkerProcesses"]

#: How much lower the workers' CPU priority is than the server's (Unix ``nice``).
NICENESS = 10


#: Seconds between a worker's checks that its server still runs.
SERVER_CHECK_S = 1.0


def _start_worker(server_pid: int) -> None:
    """Lower the worker's priority; its warnings travel in the responses.

    The worker also exits when its server has gone (killed, so that it could not stop
    its workers): a worker waiting for work would otherwise wait for ever.
    """
    if hasattr(os, "nice"):
        os.nice(NICENESS)
    warnings.simplefilter("ignore", CasWarning)
    if os.name == "posix":  # (signal 0 only asks whether a process exists there)
        threading.Thread(target=_exit_with, args=(server_pid,), daemon=True).start()


def _exit_with(server_pid: int) -> None:
    """Exit this process once process ``server_pid`` has gone."""
    while True:
        time.sleep(SERVER_CHECK_S)
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # there, but another user's: not the server
            os._exit(0)


def _ready() -> None:
    """Nothing: unpickling this function imports the engine in the worker."""


@functools.cache
def _processes() -> dict[str, Process]:
    return {p.id: p for p in cas_processes()}


def _compute(
    process_id: str, items: Sequence[Any], settings: dict[str, Any], options: ServiceOptions
) -> list[dict[str, Any]]:
    """In a worker: the outputs of ``items`` of process ``process_id``, as the server would."""
    if shareable_settings(cas.get_settings()) != settings:
        configure(**settings)
    function = _processes()[process_id].batch_function
    assert function is not None  # only batched processes are sent here
    return [dict(redact(out)) for out in function(items, options)]


class WorkerProcesses:
    """A pool of worker processes for batched jobs, started on first use.

    Parameters
    ----------
    count
        How many worker processes.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                methods = multiprocessing.get_all_start_methods()
                context = multiprocessing.get_context(
                    "forkserver" if "forkserver" in methods else "spawn"
                )
                self._pool = ProcessPoolExecutor(
                    self._count,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def start(self) -> None:
        """Start the workers now (they import the engine), so that the first job does not wait."""
        pool = self._current()
        for _ in range(self._count):
            pool.submit(_ready)

    def run(
        self, process_id: str, items: Sequence[Any], options: ServiceOptions
    ) -> list[dict[str, Any]]:
        """Compute ``items`` of batched process ``process_id`` in a worker; wait for it.

        If a worker died, the pool is replaced (for the next call) and the error raised:
        the executor then runs each job of the call alone, in its own thread.
        """
        pool = self._current()
        settings = shareable_settings(cas.get_settings())
        # the service's secrets stay in the server: the workers compute, they do not serve
        shared = dataclasses.replace(
            options, api_keys=(), rate_limit_storage_url=SecretStr("memory://")
        )
        try:
            return pool.submit(_compute, process_id, list(items), settings, shared).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    def shutdown(self) -> None:
        """Stop the workers (a call in progress is cut off; its jobs are failed by the store).

        The worker processes are terminated, not asked to finish: a worker left waiting
        for work outlived the server (with the forkserver it holds open), and each
        restart leaked a process with the engine loaded.
        """
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
