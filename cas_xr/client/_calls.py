"""The requests of the client, as data shared by the blocking and the async client.

Each operation is a :class:`Call`: method, path, query, body and how to read the
answer. The two clients only differ in how they send it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from cas_xr.client._errors import ClientError
from cas_xr.models import AttributeRequest, BatchAttributeRequest
from cas_xr.ogc import (
    Capabilities,
    ConformanceDeclaration,
    JobList,
    JobResults,
    JobStatus,
    ProcessDescription,
    ProcessList,
    ProcessRequest,
    StatusInfo,
)

__all__ = [
    "LONG_POLL_S",
    "Call",
    "Calls",
    "JobWait",
    "backoff_s",
    "ensure_successful",
    "parse_response",
    "poll_interval_s",
]

T = TypeVar("T")

#: Seconds a status poll asks the service to hold it while the job runs (``Prefer: wait``)
LONG_POLL_S = 5
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RASTER_FIELDS = {"bbox", "target_resolution", "resampling"}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        """Whether sending the request twice is harmless (then it is retried)."""
        return self.method in _IDEMPOTENT


def _segment(value: str) -> str:
    return quote(value, safe="")


class Calls:
    """The operations of an OGC API - Processes service."""

    @staticmethod
    def capabilities() -> Call[Capabilities]:
        """``GET /``."""
        return Call("GET", "", Capabilities.model_validate)

    @staticmethod
    def conformance() -> Call[ConformanceDeclaration]:
        """``GET /conformance``."""
        return Call("GET", "conformance", ConformanceDeclaration.model_validate)

    @staticmethod
    def processes() -> Call[ProcessList]:
        """``GET /processes``."""
        return Call("GET", "processes", ProcessList.model_validate)

    @staticmethod
    def process(process_id: str) -> Call[ProcessDescription]:
        """``GET /processes/{processID}``."""
        return Call("GET", f"processes/{_segment(process_id)}", ProcessDescription.model_validate)

    @staticmethod
    def execute(
        process_id: str, request: ProcessRequest | Mapping[str, Any] | None
    ) -> Call[StatusInfo]:
        """``POST /processes/{processID}/execution``, asking for a job (``respond-async``)."""
        body = ProcessRequest.model_validate(dict(request or {})).body()
        return Call(
            "POST",
            f"processes/{_segment(process_id)}/execution",
            StatusInfo.model_validate,
            json=body,
            headers={"Prefer": "respond-async"},
        )

    @staticmethod
    def jobs(
        limit: int | None = None,
        status: str | Sequence[str] | None = None,
        process_id: str | Sequence[str] | None = None,
    ) -> Call[JobList]:
        """``GET /jobs``, optionally filtered."""
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if status is not None:
            params["status"] = [status] if isinstance(status, str) else list(status)
        if process_id is not None:
            ids = [process_id] if isinstance(process_id, str) else list(process_id)
            params["processID"] = ids
        return Call("GET", "jobs", JobList.model_validate, params=params)

    @staticmethod
    def job(job_id: str, *, wait: int | None = None) -> Call[StatusInfo]:
        """``GET /jobs/{jobId}``; with ``wait``, ``Prefer: wait=<wait>`` (see :class:`JobWait`)."""
        headers = {} if wait is None else {"Prefer": f"wait={wait}"}
        return Call("GET", f"jobs/{_segment(job_id)}", StatusInfo.model_validate, headers=headers)

    @staticmethod
    def results(job_id: str) -> Call[JobResults]:
        """``GET /jobs/{jobId}/results``."""
        return Call("GET", f"jobs/{_segment(job_id)}/results", JobResults.model_validate)

    @staticmethod
    def dismiss(job_id: str) -> Call[StatusInfo]:
        """``DELETE /jobs/{jobId}``."""
        return Call("DELETE", f"jobs/{_segment(job_id)}", StatusInfo.model_validate)

    @staticmethod
    def extract_inputs(request: AttributeRequest | Mapping[str, Any]) -> dict[str, Any]:
        """The inputs of the ``extract`` process for a request (raster fields left out)."""
        validated = AttributeRequest.model_validate(request)
        return validated.model_dump(mode="json", exclude=_RASTER_FIELDS)

    @staticmethod
    def batch_inputs(request: BatchAttributeRequest | Mapping[str, Any]) -> dict[str, Any]:
        """The inputs of the ``batch-extract`` process for a request."""
        return BatchAttributeRequest.model_validate(request).model_dump(mode="json")


def parse_response(response: httpx.Response, call: Call[T]) -> T:
    """Read an answer, or raise :class:`ClientError` with the problem details."""
    if response.is_error:
        raise ClientError.from_response(response)
    try:
        return call.parse(response.json())
    except ValueError as err:
        raise ClientError(
            f"{call.method} {response.request.url} -> {response.status_code}: the answer is "
            f"not what an OGC API - Processes service sends ({err})",
            status_code=response.status_code,
        ) from None


def ensure_successful(status: StatusInfo) -> StatusInfo:
    """Return ``status`` if its job was successful, else raise :class:`ClientError`."""
    if status.status != JobStatus.SUCCESSFUL:
        raise ClientError(f"job {status.jobID} {status.status}: {status.message or 'no message'}")
    return status


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based) of an idempotent request."""
    return float(min(0.2 * 2**attempt, 5.0))


def poll_interval_s(attempt: int) -> float:
    """Seconds between the starts of status polls ``attempt`` and ``attempt + 1`` of a job."""
    return float(min(0.05 * 1.5**attempt, 1.0))


class JobWait:
    """How a client waits for a job: status polls that the service may hold (long polling).

    Each poll asks ``Prefer: wait=N`` (RFC 7240): a service that honours it (cas_xr's does)
    answers as soon as the job has finished, or after N seconds, and the next poll follows
    at once; a service that ignores it answers at once, and polls are then paced by
    :func:`poll_interval_s` (quick at first, then once a second).

    Parameters
    ----------
    job_id
        The job.
    timeout
        Seconds to wait in all (None: no limit).
    answer_within
        The client's HTTP timeout: a poll asks to be held for less than that.
    """

    def __init__(self, job_id: str, timeout: float | None, *, answer_within: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self._longest = min(LONG_POLL_S, math.floor(answer_within - 1))  # a second to spare
        self._started = self._sent = time.monotonic()
        self._attempt = 0

    def poll(self) -> Call[StatusInfo]:
        """The next status request."""
        self._sent = time.monotonic()
        wait = self._longest
        if self.timeout is not None:
            wait = min(wait, math.ceil(self.timeout - (self._sent - self._started)))
        return Calls.job(self.job_id, wait=wait if wait >= 1 else None)

    def pause(self) -> float:
        """Seconds to sleep before the next poll of an unfinished job.

        Raises
        ------
        ClientError
            If the job has not finished within ``timeout``.
        """
        now = time.monotonic()
        if self.timeout is not None and now - self._started > self.timeout:
            raise ClientError(
                f"job {self.job_id} did not finish within {self.timeout:g} s; it goes on in "
                "the service (poll it with get_job, or dismiss_job it)"
            )
        pause = max(0.0, poll_interval_s(self._attempt) - (now - self._sent))
        self._attempt += 1
        return pause
