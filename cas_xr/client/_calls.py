"""The requests of the client, as data shared by the blocking and the async client.

Each operation is a :class:`Call`: method, path, query, body and how to read the
answer. The two clients only differ in how they send it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from cas_xr.client._errors import ClientError
from cas_xr.client._models import (
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
from cas_xr.models import AttributeRequest, BatchAttributeRequest

__all__ = [
    "Call",
    "Calls",
    "backoff_s",
    "ensure_successful",
    "parse_response",
    "poll_interval_s",
]

T = TypeVar("T")

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
    def job(job_id: str) -> Call[StatusInfo]:
        """``GET /jobs/{jobId}``."""
        return Call("GET", f"jobs/{_segment(job_id)}", StatusInfo.model_validate)

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
    """Seconds to wait before status poll ``attempt`` (0-based) of a job."""
    return float(min(0.05 * 1.5**attempt, 1.0))
