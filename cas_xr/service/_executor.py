"""The job executor: runs jobs on a thread pool, records progress, honours dismissal.

A process receives a :class:`JobContext`; it reports progress through it and, between
steps, learns that its job was dismissed (or the server is stopping): ``report``,
``check`` and ``sleep`` then raise :class:`JobCancelledError`. A dismissed job is
marked ``dismissed`` at once by the store; whatever its worker returns afterwards is
dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cas_xr.errors import CasError
from cas_xr.service._jobs import JobStore
from cas_xr.service._redact import redact_text

__all__ = [
    "JobCancelledError",
    "JobContext",
    "JobRunner",
    "ProcessFailureError",
    "failure_message",
]

logger = logging.getLogger("cas_xr.service")

JobFunction = Callable[["JobContext"], dict[str, Any]]


class JobCancelledError(CasError):
    """The job was dismissed, or the server is stopping."""


class ProcessFailureError(CasError):
    """A process failed in a way it expects; the message is shown as the job's message."""


def failure_message(err: BaseException) -> str:
    """The job message for a failure: the error's own words, or a generic one.

    Errors that cas_xr raises on purpose (and value, timeout and expected process
    failures) carry messages written for users (local paths in them redacted); anything
    else is logged with its traceback and reported without details.
    """
    if isinstance(err, CasError | ValueError | TimeoutError):
        return redact_text(str(err)) or type(err).__name__
    logger.error("job failed unexpectedly", exc_info=err)
    return f"the job failed with an internal error ({type(err).__name__}); see the server log"


class JobContext:
    """What a running process sees of its job.

    Parameters
    ----------
    job_id
        The job's id.
    store
        Where progress goes.
    cancelled
        Set when the job is dismissed or the server stops.
    """

    def __init__(self, job_id: str, store: JobStore, cancelled: threading.Event) -> None:
        self.job_id = job_id
        self._store = store
        self._cancelled = cancelled

    def check(self) -> None:
        """Raise :class:`JobCancelledError` if the job should stop."""
        if self._cancelled.is_set():
            raise JobCancelledError(self.job_id)

    def report(self, progress: float, message: str | None = None) -> None:
        """Record the progress (percent, 0..100) and check for cancellation."""
        self.check()
        self._store.set_progress(self.job_id, int(progress), message)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, returning early (with :class:`JobCancelledError`) if cancelled."""
        if self._cancelled.wait(seconds):
            raise JobCancelledError(self.job_id)


class JobRunner:
    """Runs jobs on a thread pool.

    Parameters
    ----------
    store
        The job store.
    workers
        The number of jobs that run at once; more wait in ``accepted``.
    """

    def __init__(self, store: JobStore, workers: int) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cas_xr-job")
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._settled: dict[str, Future[None]] = {}

    def submit(self, job_id: str, function: JobFunction) -> Future[None]:
        """Queue job ``job_id`` (stored as ``accepted``) to run ``function``.

        Returns
        -------
        concurrent.futures.Future
            Done when the job has finished (whatever its status).
        """
        event = threading.Event()
        with self._lock:
            self._cancel[job_id] = event
            self._settled[job_id] = Future()
        return self._pool.submit(self._run, job_id, function, event)

    def settled(self, job_id: str) -> Future[None] | None:
        """A future done once job ``job_id``'s status is final here (None: it already is).

        Done when the job finishes, is dismissed or the executor stops, even if its
        computation goes on in the background.
        """
        with self._lock:
            return self._settled.get(job_id)

    def cancel(self, job_id: str) -> None:
        """Ask job ``job_id`` to stop at its next check (no-op if it is not running)."""
        with self._lock:
            event = self._cancel.get(job_id)
            settled = self._settled.pop(job_id, None)
        if event is not None:
            event.set()
        _settle(settled)

    def shutdown(self) -> None:
        """Stop every job at its next check and drop queued ones; do not wait."""
        with self._lock:
            events = list(self._cancel.values())
            settled = list(self._settled.values())
            self._settled.clear()
        for event in events:
            event.set()
        for future in settled:
            _settle(future)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job_id: str, function: JobFunction, event: threading.Event) -> None:
        try:
            if event.is_set() or not self._store.start(job_id):
                return
            try:
                results = function(JobContext(job_id, self._store, event))
            except JobCancelledError:
                return
            except Exception as err:
                self._store.fail(job_id, failure_message(err))
                return
            self._store.succeed(job_id, results)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
                settled = self._settled.pop(job_id, None)
            _settle(settled)


def _settle(future: Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
