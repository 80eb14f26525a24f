"""The service's state: options, processes, the job store and the executor."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from cas_xr.engine._scheduler import current_scheduler
from cas_xr.errors import CasError
from cas_xr.service._executor import Batch, JobContext, JobRunner, failure_message
from cas_xr.service._jobs import JobRecord, JobStore
from cas_xr.service._options import ServiceOptions
from cas_xr.service._owners import BEAT_S, gone
from cas_xr.service._problems import NoSuchProcessError
from cas_xr.service._processes import Process
from cas_xr.service._redact import redact
from cas_xr.service._sessions import Sessions
from cas_xr.service._workers import WorkerProcesses

__all__ = ["ServiceState"]

logger = logging.getLogger("cas_xr.service")

_CUT_OFF = (
    "the server stopped while the job was running, so the job was cut off; execute the "
    "process again"
)


@dataclass
class ServiceState:
    """Everything the routes share.

    Parameters
    ----------
    options
        The service options.
    processes
        Process id -> process.
    store
        The job store.
    runner
        The job executor.
    sessions
        The browser sessions (ended ones kept in the job store).
    workers
        The worker processes that compute batched jobs (None: the job threads do).
    """

    options: ServiceOptions
    processes: Mapping[str, Process]
    store: JobStore
    runner: JobRunner
    sessions: Sessions
    workers: WorkerProcesses | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _beating: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def open(cls, options: ServiceOptions, processes: list[Process]) -> ServiceState:
        """Open the job store and start the executor."""
        store = JobStore(options.jobs_db)
        runner = JobRunner(store, options.job_workers)
        workers = WorkerProcesses(options.job_processes) if options.job_processes else None
        sessions = Sessions(options.api_keys, revoked=store)
        return cls(options, {p.id: p for p in processes}, store, runner, sessions, workers)

    @property
    def job_control(self) -> list[str]:
        """The ``jobControlOptions`` of every process."""
        modes = ["async-execute", "dismiss"]
        return ["sync-execute", *modes] if self.options.sync_execute else modes

    def process(self, process_id: str) -> Process:
        """The process ``process_id``, or :class:`NoSuchProcessError`."""
        try:
            return self.processes[process_id]
        except KeyError:
            raise NoSuchProcessError(
                f"there is no process {process_id!r}; the processes are "
                f"{', '.join(sorted(self.processes))}"
            ) from None

    def execute(
        self, process: Process, inputs: dict[str, Any], transmissions: dict[str, str]
    ) -> tuple[JobRecord, Future[None]]:
        """Validate ``inputs``, store and queue the job; its record as stored (accepted).

        Blocking (validation may read the catalog, the store writes to SQLite): the
        routes call it in a worker thread, never on the event loop.
        """
        (outcome,) = self.execute_many([(process, inputs, transmissions)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def execute_many(
        self, requests: Sequence[tuple[Process, dict[str, Any], dict[str, str]]]
    ) -> list[tuple[JobRecord, Future[None]] | Exception]:
        """:meth:`execute` for requests that arrived together: their jobs in one transaction.

        Parameters
        ----------
        requests
            ``(process, inputs, transmissions)`` of each request.

        Returns
        -------
        list
            For each request, in order: its job's record and future as :meth:`execute`
            gives them, or the error that refused it (no job was stored for it).
        """
        outcomes: list[Any] = []
        for process, inputs, _ in requests:
            try:
                outcomes.append(process.validate(inputs, self.options))
            except Exception as err:
                outcomes.append(err)
        valid = [
            (i, parsed) for i, parsed in enumerate(outcomes) if not isinstance(parsed, Exception)
        ]
        try:
            records = self.store.create_many(
                [(requests[i][0].id, requests[i][1], requests[i][2]) for i, _ in valid]
            )
        except Exception as err:  # nothing was stored
            return [err if not isinstance(o, Exception) else o for o in outcomes]
        for (i, parsed), record in zip(valid, records, strict=True):
            outcomes[i] = (record, self._queue(record.job_id, requests[i][0], parsed))
        return outcomes

    def _queue(self, job_id: str, process: Process, parsed: Any) -> Future[None]:
        def run(context: JobContext) -> dict[str, Any]:
            return dict(redact(process.function(parsed, context, self.options)))

        return self.runner.submit(job_id, run, batch=self._batch(process, parsed))

    def _batch(self, process: Process, parsed: Any) -> Batch | None:
        """How a job of ``process`` may run with others (None: alone)."""
        if process.batch_key is None or process.batch_function is None:
            return None
        function, workers = process.batch_function, self.workers

        def run_many(items: Sequence[Any]) -> list[dict[str, Any]]:
            if workers is not None:
                return workers.run(process.id, items, self.options)
            return [dict(redact(out)) for out in function(items, self.options)]

        return Batch((process.id, process.batch_key(parsed)), parsed, run_many)

    def recover(self) -> None:
        """Take over the jobs of service processes that are gone, now and every few seconds.

        After a (re)start that is every job of the processes before: their running jobs
        were cut off and are marked failed, their accepted jobs are re-queued here. Jobs of
        other live processes sharing the database are left alone. Every few seconds the
        sessions ended by other processes are read too (:meth:`Sessions.refresh`).
        """
        self._take_over()
        if self._beating is None:
            self._beating = threading.Thread(
                target=self._beat, name="cas_xr-service-beat", daemon=True
            )
            self._beating.start()

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_S):
            try:
                self.sessions.refresh()
            except Exception:  # the database busy or gone for a moment: read again later
                logger.exception("could not read the sessions ended by other processes")
            try:
                self._take_over()
            except Exception:  # the database busy or gone for a moment: beat again later
                logger.exception("could not record this service process's heartbeat")

    def _take_over(self) -> None:
        self.store.beat()
        owners, instances = gone(self.store)
        if instances:
            self.store.forget(instances)
        if not owners:  # the usual beat: every process alive, nothing more to write
            return
        for job_id in self.store.fail_running(_CUT_OFF, owners):
            logger.warning("job %s was cut off by a restart; marked failed", job_id)
        for job_id in self.store.adopt_accepted(owners):
            inputs = self.store.inputs(job_id) or {}
            record = self.store.get(job_id)
            try:
                process = self.process(record.process_id if record else "")
                parsed = process.validate(inputs, self.options)
            except Exception as err:
                message = f"not re-queued after a restart: {failure_message(err)}"
                self.store.fail(job_id, message)
                continue
            self._queue(job_id, process, parsed)

    def executor(self) -> str:
        """Where jobs run, in words, e.g. ``"4 job threads computing on threads"``.

        The computations go where :func:`cas_xr.extract` sends them: a Dask cluster when
        the ``dask_scheduler`` setting names one (connected to now, so that the first job
        does not wait for it), else the active ``distributed.Client``, else local threads.
        """
        try:
            where = current_scheduler().description
        except CasError as err:  # each job will try again, and fail with this message
            where = f"nothing yet ({err})"
        threads = f"{self.options.job_workers} job threads"
        if self.workers is not None:
            threads += f" ({self.options.job_processes} worker processes for extract jobs)"
        return f"{threads} computing on {where}"

    def close(self) -> None:
        """Stop the executor and fail the jobs it was running (workers may still finish)."""
        self._stop.set()
        if self._beating is not None:
            self._beating.join()
        self.runner.shutdown()
        if self.workers is not None:
            self.workers.shutdown()
        self.store.fail_running(_CUT_OFF, [self.store.owner])
        self.store.forget([self.store.owner])
