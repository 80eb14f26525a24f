"""The service's state: options, processes, the job store and the executor."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from cas_xr.engine._scheduler import current_scheduler
from cas_xr.errors import CasError
from cas_xr.ogc import JobStatus
from cas_xr.service._executor import Batch, JobContext, JobRunner, failure_message
from cas_xr.service._jobs import JobRecord, JobStore
from cas_xr.service._options import ServiceOptions
from cas_xr.service._problems import NoSuchProcessError
from cas_xr.service._processes import Process
from cas_xr.service._redact import redact
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
    workers
        The worker processes that compute batched jobs (None: the job threads do).
    """

    options: ServiceOptions
    processes: Mapping[str, Process]
    store: JobStore
    runner: JobRunner
    workers: WorkerProcesses | None = None

    @classmethod
    def open(cls, options: ServiceOptions, processes: list[Process]) -> ServiceState:
        """Open the job store and start the executor."""
        store = JobStore(options.jobs_db)
        runner = JobRunner(store, options.job_workers)
        workers = WorkerProcesses(options.job_processes) if options.job_processes else None
        return cls(options, {p.id: p for p in processes}, store, runner, workers)

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
        """After a (re)start: fail the jobs that were cut off, re-queue the accepted ones."""
        for job_id in self.store.fail_running(_CUT_OFF):
            logger.warning("job %s was cut off by a restart; marked failed", job_id)
        for record in self.store.find(limit=-1, statuses=[JobStatus.ACCEPTED.value]):
            inputs = self.store.inputs(record.job_id) or {}
            try:
                process = self.process(record.process_id)
                parsed = process.validate(inputs, self.options)
            except Exception as err:
                message = f"not re-queued after a restart: {failure_message(err)}"
                self.store.fail(record.job_id, message)
                continue
            self._queue(record.job_id, process, parsed)

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
        self.runner.shutdown()
        if self.workers is not None:
            self.workers.shutdown()
        self.store.fail_running(_CUT_OFF)
