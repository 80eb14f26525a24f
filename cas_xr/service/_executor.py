"""The job executor: runs jobs on a thread pool, records progress, honours dismissal.

A process receives a :class:`JobContext`; it reports progress through it and, between
steps, learns that its job was dismissed (or the server is stopping): ``report``,
``check`` and ``sleep`` then raise :class:`JobCancelledError`. ``report`` also raises it
when the store no longer has the job running: dismissed through another service process
sharing the database (whose ``DELETE`` cannot reach this process's threads), or marked
failed meanwhile. A dismissed job is marked ``dismissed`` at once by the store; whatever
its worker returns afterwards is dropped.

Small jobs that can run together (a :class:`Batch` with the same key, e.g. ``extract``
requests for the same datasets) wait in one queue, and a worker takes every one queued
at that moment and runs them as one computation, one computation of a key at a time:
under load, each job's share of the fixed costs (planning, opening datasets, database
writes) shrinks as the queue grows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cas_xr.errors import CasError
from cas_xr.service._jobs import JobStore
from cas_xr.service._redact import redact_text

__all__ = [
    "Batch",
    "JobCancelledError",
    "JobContext",
    "JobRunner",
    "ProcessFailureError",
    "failure_message",
]

logger = logging.getLogger("cas_xr.service")

JobFunction = Callable[["JobContext"], dict[str, Any]]

#: Jobs a worker takes from one batch queue at most.
MAX_BATCH = 1000


@dataclass(frozen=True)
class Batch:
    """How a job may run together with others: jobs of one ``key`` run as one call.

    Parameters
    ----------
    key
        Jobs with equal keys can be computed together.
    item
        This job's part of the call.
    run
        ``run(items) -> outputs``, one per item, in order. If it raises, each job of the
        call runs alone (its own ``function``), so one job's failure is not the others'.
    """

    key: Hashable
    item: Any
    run: Callable[[Sequence[Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class _Queued:
    job_id: str
    function: JobFunction
    batch: Batch
    cancelled: threading.Event


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
        """Record the progress (percent, 0..100) and check for cancellation.

        Raises :class:`JobCancelledError` if the job should stop, or if the store no longer
        has it running (dismissed by another service process, or failed meanwhile).
        """
        self.check()
        if not self._store.set_progress(self.job_id, int(progress), message):
            raise JobCancelledError(self.job_id)

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
        self._queues: dict[Hashable, list[_Queued]] = {}
        self._scheduled: set[Hashable] = set()  # keys a worker has been given, or runs

    def submit(
        self, job_id: str, function: JobFunction, *, batch: Batch | None = None
    ) -> Future[None]:
        """Queue job ``job_id`` (stored as ``accepted``) to run ``function``.

        Parameters
        ----------
        job_id
            The job.
        function
            What the job runs.
        batch
            How the job may run together with others queued at the same time (None: alone).

        Returns
        -------
        concurrent.futures.Future
            Done once the job's status is final here (see :meth:`settled`).
        """
        event = threading.Event()
        settled: Future[None] = Future()
        schedule = batch is None
        with self._lock:
            self._cancel[job_id] = event
            self._settled[job_id] = settled
            if batch is not None:
                self._queues.setdefault(batch.key, []).append(
                    _Queued(job_id, function, batch, event)
                )
                # one worker per key: a key's worker takes every job queued under it
                schedule = batch.key not in self._scheduled
                self._scheduled.add(batch.key)
        if batch is None:
            self._pool.submit(self._run, job_id, function, event)
        elif schedule:
            self._pool.submit(self._run_batch, batch.key)
        return settled

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
            self._finish(job_id, function, event)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
                settled = self._settled.pop(job_id, None)
            _settle(settled)

    def _run_batch(self, key: Hashable) -> None:
        """Run the jobs queued under ``key``, call after call, until none is left.

        One worker at a time runs a key's calls (:meth:`submit` gives a key to a worker
        only when none has it): jobs queued while a call computes wait for the next one,
        which takes them all (rather than each worker starting a small call of its own,
        the calls contending for the same cores).
        """
        while True:
            with self._lock:
                queue = self._queues.pop(key, [])
                taken, rest = queue[:MAX_BATCH], queue[MAX_BATCH:]
                if rest:
                    self._queues[key] = rest
                if not taken:
                    self._scheduled.discard(key)
                    return
            try:
                self._run_together(taken)
            except BaseException:
                with self._lock:  # the next job queued under the key gets a worker again
                    self._scheduled.discard(key)
                raise

    def _run_together(self, taken: list[_Queued]) -> None:
        alone: list[_Queued] = []
        try:
            waiting = [q for q in taken if not q.cancelled.is_set()]
            started = set(self._store.start_many([q.job_id for q in waiting]))
            jobs = [q for q in waiting if q.job_id in started]
            if not jobs:
                return
            try:
                outputs = jobs[0].batch.run([q.batch.item for q in jobs])
            except Exception:  # each alone, so that each job gets its own outcome
                alone = jobs
                return
            self._store.succeed_many({q.job_id: out for q, out in zip(jobs, outputs, strict=True)})
        finally:
            again = {q.job_id for q in alone}
            self._forget([q for q in taken if q.job_id not in again])
            self._run_alone(alone)

    def _run_alone(self, jobs: list[_Queued]) -> None:
        """Run each of ``jobs`` (started) alone, as many at once as the pool has workers.

        Each job gets its own time bound, so a call that failed (a timeout included)
        costs its jobs about one more bound, not one per job.
        """
        for q in jobs:
            try:
                self._pool.submit(self._finish_alone, q)
            except RuntimeError:  # the pool is shut down: the server stops
                self._forget([q])

    def _finish_alone(self, q: _Queued) -> None:
        try:
            self._finish(q.job_id, q.function, q.cancelled)
        finally:
            self._forget([q])

    def _forget(self, jobs: list[_Queued]) -> None:
        """Drop ``jobs``' cancellation events and settle their futures."""
        with self._lock:
            for q in jobs:
                self._cancel.pop(q.job_id, None)
            settled = [self._settled.pop(q.job_id, None) for q in jobs]
        for future in settled:
            _settle(future)

    def _finish(self, job_id: str, function: JobFunction, event: threading.Event) -> None:
        """Run a started job's ``function`` and store its outcome."""
        try:
            results = function(JobContext(job_id, self._store, event))
        except JobCancelledError:
            return
        except Exception as err:
            self._store.fail(job_id, failure_message(err))
            return
        self._store.succeed(job_id, results)


def _settle(future: Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
