"""The blocking :class:`Client` and the :class:`AsyncClient` of a cas_xr service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self, TypeVar

import httpx

from cas_xr.client._calls import (
    Call,
    Calls,
    JobWait,
    backoff_s,
    ensure_successful,
    parse_response,
)
from cas_xr.client._config import ClientConfig
from cas_xr.client._errors import ClientError
from cas_xr.models import (
    AttributeRequest,
    AttributeResponse,
    BatchAttributeRequest,
    BatchAttributeResponse,
)
from cas_xr.ogc import (
    Capabilities,
    ConformanceDeclaration,
    JobList,
    JobResults,
    ProcessDescription,
    ProcessList,
    ProcessRequest,
    StatusInfo,
)

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")

_Request = ProcessRequest | Mapping[str, Any] | None
_Status = str | Sequence[str] | None


def _unreachable(call: Call[Any], url: httpx.URL, err: httpx.TransportError) -> ClientError:
    return ClientError(f"{call.method} {url}: cannot reach the service ({err!r})")


class _Base:
    def __init__(
        self,
        config: ClientConfig | None,
        retries: int,
        timeout: float,
        fields: dict[str, Any],
    ) -> None:
        self.config = config if config is not None else ClientConfig(**fields)
        self.retries = retries
        self.timeout = timeout

    def __repr__(self) -> str:
        return repr(self.config)

    def _options(self) -> dict[str, Any]:
        return {
            "base_url": self.config.api_url,
            "headers": self.config.headers(),
            "auth": self.config.auth(),
            "timeout": self.timeout,
        }


class Client(_Base):
    """A blocking client of an OGC API - Processes service (cas_xr's, or another).

    Parameters
    ----------
    config
        A :class:`ClientConfig`; default: built from ``**fields`` and the
        ``CAS_CLIENT_*`` environment (the service at ``http://127.0.0.1:8008/``).
    retries
        How often idempotent requests (GET, DELETE) are retried when the service
        cannot be reached.
    timeout
        Seconds to wait for each HTTP answer.
    transport
        An httpx transport (for tests).
    **fields
        :class:`ClientConfig` fields (``api_url``, ``auth_type``, ``api_key``...).

    Raises
    ------
    ClientError
        From every method, when the service answers with an error (the problem details
        are in ``problem``) or cannot be reached.

    Examples
    --------
    >>> from cas_xr.client import Client
    >>> client = Client(api_url="http://127.0.0.1:8008/")
    >>> client.config.api_url
    'http://127.0.0.1:8008/'
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        retries: int = 3,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(config, retries, timeout, fields)
        self._http = httpx.Client(transport=transport, **self._options())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        request = self._http.build_request(
            call.method, call.path, params=dict(call.params), json=call.json, headers=call.headers
        )
        for attempt in range(self.retries + 1):
            try:
                response = self._http.send(request)
            except httpx.TransportError as err:
                if not call.idempotent or attempt == self.retries:
                    raise _unreachable(call, request.url, err) from None
                time.sleep(backoff_s(attempt))
            else:
                return parse_response(response, call)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_capabilities(self) -> Capabilities:
        """The landing page: title, description and links."""
        return self._send(Calls.capabilities())

    def get_conformance(self) -> ConformanceDeclaration:
        """The conformance classes (``conformsTo``)."""
        return self._send(Calls.conformance())

    def get_processes(self) -> ProcessList:
        """The processes (``processes``, ``links``)."""
        return self._send(Calls.processes())

    def get_process(self, process_id: str) -> ProcessDescription:
        """The description of process ``process_id``: its inputs and outputs."""
        return self._send(Calls.process(process_id))

    def execute_process(self, process_id: str, request: _Request = None) -> StatusInfo:
        """Start a job of process ``process_id``; returns its status (``jobID``...).

        Parameters
        ----------
        process_id
            The process.
        request
            A :class:`ProcessRequest`, or a mapping: with ``inputs`` it is a request,
            without it is the inputs.
        """
        return self._send(Calls.execute(process_id, request))

    def get_jobs(
        self, *, limit: int | None = None, status: _Status = None, process_id: _Status = None
    ) -> JobList:
        """The jobs (``jobs``), optionally at most ``limit``, by status or by process."""
        return self._send(Calls.jobs(limit, status, process_id))

    def get_job(self, job_id: str) -> StatusInfo:
        """The status of job ``job_id``."""
        return self._send(Calls.job(job_id))

    def get_job_results(self, job_id: str) -> JobResults:
        """The outputs of a successful job: output id -> value."""
        return self._send(Calls.results(job_id))

    get_job_result = get_job_results

    def dismiss_job(self, job_id: str) -> StatusInfo:
        """Cancel a queued or running job, or remove a finished one with its results."""
        return self._send(Calls.dismiss(job_id))

    def wait_for_job(self, job_id: str, *, timeout: float | None = None) -> StatusInfo:
        """Poll job ``job_id`` until it has finished; returns its final status.

        Raises
        ------
        ClientError
            If it has not finished after ``timeout`` seconds (None: wait on).
        """
        waiting = JobWait(job_id, timeout, answer_within=self.timeout)
        while not (status := self._send(waiting.poll())).done:
            time.sleep(waiting.pause())
        return status

    def extract(
        self, request: AttributeRequest | Mapping[str, Any], *, timeout: float | None = None
    ) -> AttributeResponse:
        """Statistics of one geometry: run ``extract`` and wait; as :func:`cas_xr.extract`.

        Parameters
        ----------
        request
            An :class:`~cas_xr.models.AttributeRequest` (or a dict validated as one).
        timeout
            Seconds to wait for the job (None: no limit).
        """
        started = self.execute_process("extract", {"inputs": Calls.extract_inputs(request)})
        status = ensure_successful(self.wait_for_job(started.jobID, timeout=timeout))
        return AttributeResponse.model_validate(self.get_job_results(status.jobID)["response"])

    def batch_extract(
        self, request: BatchAttributeRequest | Mapping[str, Any], *, timeout: float | None = None
    ) -> BatchAttributeResponse:
        """Statistics of many geometries: run ``batch-extract`` and wait.

        As :func:`cas_xr.batch_extract`; see :meth:`extract` for the parameters.
        """
        started = self.execute_process("batch-extract", {"inputs": Calls.batch_inputs(request)})
        status = ensure_successful(self.wait_for_job(started.jobID, timeout=timeout))
        response = self.get_job_results(status.jobID)["response"]
        return BatchAttributeResponse.model_validate(response)


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: the same methods, as coroutines.

    Parameters
    ----------
    config, retries, timeout, **fields
        As for :class:`Client`.
    transport
        An async httpx transport (e.g. ``httpx.ASGITransport(app)`` in tests).
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        retries: int = 3,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(config, retries, timeout, fields)
        self._http = httpx.AsyncClient(transport=transport, **self._options())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        request = self._http.build_request(
            call.method, call.path, params=dict(call.params), json=call.json, headers=call.headers
        )
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.send(request)
            except httpx.TransportError as err:
                if not call.idempotent or attempt == self.retries:
                    raise _unreachable(call, request.url, err) from None
                await asyncio.sleep(backoff_s(attempt))
            else:
                return parse_response(response, call)
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_capabilities(self) -> Capabilities:
        """The landing page: title, description and links."""
        return await self._send(Calls.capabilities())

    async def get_conformance(self) -> ConformanceDeclaration:
        """The conformance classes (``conformsTo``)."""
        return await self._send(Calls.conformance())

    async def get_processes(self) -> ProcessList:
        """The processes (``processes``, ``links``)."""
        return await self._send(Calls.processes())

    async def get_process(self, process_id: str) -> ProcessDescription:
        """The description of process ``process_id``: its inputs and outputs."""
        return await self._send(Calls.process(process_id))

    async def execute_process(self, process_id: str, request: _Request = None) -> StatusInfo:
        """Start a job of process ``process_id``; see :meth:`Client.execute_process`."""
        return await self._send(Calls.execute(process_id, request))

    async def get_jobs(
        self, *, limit: int | None = None, status: _Status = None, process_id: _Status = None
    ) -> JobList:
        """The jobs (``jobs``), optionally at most ``limit``, by status or by process."""
        return await self._send(Calls.jobs(limit, status, process_id))

    async def get_job(self, job_id: str) -> StatusInfo:
        """The status of job ``job_id``."""
        return await self._send(Calls.job(job_id))

    async def get_job_results(self, job_id: str) -> JobResults:
        """The outputs of a successful job: output id -> value."""
        return await self._send(Calls.results(job_id))

    get_job_result = get_job_results

    async def dismiss_job(self, job_id: str) -> StatusInfo:
        """Cancel a queued or running job, or remove a finished one with its results."""
        return await self._send(Calls.dismiss(job_id))

    async def wait_for_job(self, job_id: str, *, timeout: float | None = None) -> StatusInfo:
        """Poll job ``job_id`` until it has finished; see :meth:`Client.wait_for_job`."""
        waiting = JobWait(job_id, timeout, answer_within=self.timeout)
        while not (status := await self._send(waiting.poll())).done:
            await asyncio.sleep(waiting.pause())
        return status

    async def extract(
        self, request: AttributeRequest | Mapping[str, Any], *, timeout: float | None = None
    ) -> AttributeResponse:
        """Statistics of one geometry; see :meth:`Client.extract`."""
        inputs = Calls.extract_inputs(request)
        started = await self.execute_process("extract", {"inputs": inputs})
        status = ensure_successful(await self.wait_for_job(started.jobID, timeout=timeout))
        results = await self.get_job_results(status.jobID)
        return AttributeResponse.model_validate(results["response"])

    async def batch_extract(
        self, request: BatchAttributeRequest | Mapping[str, Any], *, timeout: float | None = None
    ) -> BatchAttributeResponse:
        """Statistics of many geometries; see :meth:`Client.batch_extract`."""
        inputs = Calls.batch_inputs(request)
        started = await self.execute_process("batch-extract", {"inputs": inputs})
        status = ensure_successful(await self.wait_for_job(started.jobID, timeout=timeout))
        results = await self.get_job_results(status.jobID)
        return BatchAttributeResponse.model_validate(results["response"])
