"""The OGC API - Processes routes: landing page, conformance, processes and jobs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import re
from concurrent.futures import Future
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from cas_xr.errors import RequestTimeoutError
from cas_xr.ogc import (
    ACTIVE,
    REL,
    Capabilities,
    ConformanceDeclaration,
    JobList,
    JobResults,
    JobStatus,
    Link,
    Problem,
    ProcessDescription,
    ProcessList,
    ProcessRequest,
    StatusInfo,
    StrictProcessRequest,
)
from cas_xr.service._jobs import JobRecord
from cas_xr.service._problems import (
    JobDismissedError,
    JobFailedError,
    NoSuchJobError,
    NoSuchOutputError,
    ResultNotReadyError,
    UnsupportedMediaTypeError,
)
from cas_xr.service._state import ServiceState

__all__ = [
    "CONFORMANCE",
    "api_routes",
    "created_response",
    "is_json_body",
    "long_poll",
    "public_routes",
    "status_response",
    "wait_preference",
]

_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
#: The conformance classes this service implements.
CONFORMANCE = [
    _CONF + name
    for name in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss")
]
_JSON = "application/json"
_OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
_ProcessID = Annotated[str, Path(alias="processID", description="A process id.")]
_STRING = {"type": "string"}
_NO_BODY = ProcessRequest()  # a request without a body has no inputs
_JobID = Annotated[str, Path(alias="jobId", description="A job id such as job_0.")]
_OutputID = Annotated[str, Path(alias="outputId", description="An output id such as table.")]
#: The media types of file outputs, and the suffix of their downloads.
_SUFFIXES = {"application/vnd.apache.parquet": ".parquet"}
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+)", re.IGNORECASE)
_MAX_WAIT_S = 10  # the longest a status request waits for its job (Prefer: wait=N)
_JOB_ID = re.compile(r"job_(\d+)")
_DATETIME_DOC = (
    "only jobs created at this RFC 3339 date-time, or in the interval START/END (`..` or "
    "nothing for an open end), e.g. 2024-05-01T00:00:00Z/.."
)


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry documenting problem responses with these status codes."""
    return {code: {"model": Problem, "description": HTTPStatus(code).phrase} for code in codes}


def _base(request: Request) -> str:
    return str(request.base_url)


def _status_info(record: JobRecord, base: str) -> StatusInfo:
    href = f"{base}jobs/{record.job_id}"
    links = [Link(href=href, rel="self", type=_JSON, title="job status")]
    if record.status is JobStatus.SUCCESSFUL:
        links.append(Link(href=f"{href}/results", rel=REL["results"], type=_JSON, title="results"))
    return StatusInfo(
        jobID=record.job_id,
        processID=record.process_id,
        status=record.status,
        message=record.message,
        created=record.created,
        started=record.started,
        finished=record.finished,
        updated=record.updated,
        progress=record.progress,
        links=links,
    )


def wait_preference(prefer: str | None) -> int:
    """The seconds of a ``Prefer: wait=N`` header, at most ``_MAX_WAIT_S`` (0: none)."""
    match = _WAIT.search(prefer or "")
    return min(int(match.group(1)), _MAX_WAIT_S) if match else 0


async def long_poll(state: ServiceState, job_id: str, wait: int) -> None:
    """Wait until job ``job_id``'s status is final here, at most ``wait`` seconds."""
    settled = state.runner.settled(job_id) if wait else None
    if settled is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(settled)), wait)


def status_response(record: JobRecord, base: str, *, wait: int) -> JSONResponse:
    """The answer to a status request: the job's status document.

    Parameters
    ----------
    record
        The job.
    base
        The service's base URL (ending with ``/``).
    wait
        The seconds of the request's ``Prefer: wait`` (0: none): said in
        ``Preference-Applied``.
    """
    headers = {"Preference-Applied": f"wait={wait}"} if wait else None
    return JSONResponse(_dump(_status_info(record, base)), headers=headers)


def _bad_query(name: str, value: str, reason: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", name), "msg": reason, "type": "value_error", "input": value}]
    )


def _job_number(job_id: str) -> int:
    match = _JOB_ID.fullmatch(job_id)
    if match is None:
        raise _bad_query("after", job_id, f"{job_id!r} is not a job id such as job_12")
    return int(match.group(1))


def _instant(text: str, value: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _bad_query(
            "datetime", value, f"{text!r} is not an RFC 3339 date-time such as 2024-05-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _interval(value: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``datetime``: an instant, or ``start/end`` with ``..`` (or nothing) for an open end."""
    if value is None:
        return None, None
    start, sep, end = value.partition("/")
    if not sep:
        moment = _instant(start, value)
        if moment is None:
            raise _bad_query("datetime", value, "give a date-time or an interval START/END")
        return moment, moment
    bounds = _instant(start, value), _instant(end, value)
    if bounds[0] and bounds[1] and bounds[0] > bounds[1]:
        raise _bad_query("datetime", value, "the interval's start is after its end")
    return bounds


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def is_json_body(headers: Headers) -> bool:
    """Whether a request has a body that FastAPI reads as JSON (``application/...json``)."""
    media_type = _media_type(headers)
    json_type = media_type == _JSON or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    return _has_body(headers) and json_type


async def _json_body(request: Request) -> None:
    """Refuse a body that is not JSON (415) before FastAPI reads it (async: no thread hop)."""
    media_type = _media_type(request.headers)
    if not _has_body(request.headers) or media_type == _JSON or media_type.endswith("+json"):
        return
    raise UnsupportedMediaTypeError(
        f"the body is {media_type or 'of no declared type'}; send the execute request as "
        "JSON with 'Content-Type: application/json'"
    )


def _dump(model: StatusInfo) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


def created_response(record: JobRecord, base: str, *, respond_async_applied: bool) -> Response:
    """The answer to an asynchronous execute request: 201, ``Location`` and the status.

    Parameters
    ----------
    record
        The new job.
    base
        The service's base URL (ending with ``/``).
    respond_async_applied
        Whether to say ``Preference-Applied: respond-async`` (the service also executes
        synchronously, and the request asked for a job).
    """
    headers = {"Location": f"{base}jobs/{record.job_id}"}
    if respond_async_applied:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(_dump(_status_info(record, base)), status_code=201, headers=headers)


def public_routes() -> APIRouter:
    """The landing page and the conformance declaration (never behind authentication)."""
    router = APIRouter(tags=["Capabilities"])

    @router.get("/", response_model=Capabilities, response_model_exclude_none=True)
    def get_capabilities(request: Request) -> Capabilities:
        """The landing page: what this service is, and links to its resources."""
        base = _base(request)
        return Capabilities(
            title="cas_xr attribute service",
            description=(
                "Zonal statistics (catchment attributes) with units, quality flags and "
                "provenance, as OGC API - Processes 1.0 processes and jobs"
            ),
            links=[
                Link(href=base, rel="self", type=_JSON, title="this document"),
                Link(href=f"{base}openapi.json", rel="service-desc", type=_OPENAPI,
                     title="the API definition"),
                Link(href=f"{base}docs", rel="service-doc", type="text/html",
                     title="the API documentation (Swagger UI)"),
                Link(href=f"{base}redoc", rel="service-doc", type="text/html",
                     title="the API documentation (ReDoc)"),
                Link(href=f"{base}conformance", rel=REL["conformance"], type=_JSON,
                     title="conformance classes"),
                Link(href=f"{base}processes", rel=REL["processes"], type=_JSON,
                     title="processes"),
                Link(href=f"{base}jobs", rel=REL["job-list"], type=_JSON, title="jobs"),
            ],
        )  # fmt: skip

    @router.get("/conformance", response_model=ConformanceDeclaration)
    def get_conformance() -> ConformanceDeclaration:
        """The conformance classes this service implements."""
        return ConformanceDeclaration(conformsTo=CONFORMANCE)

    return router


def api_routes(state: ServiceState) -> APIRouter:
    """The routes of processes and jobs.

    Parameters
    ----------
    state
        The service state the routes use.
    """
    router = APIRouter()
    store = state.store

    def _record(job_id: str) -> JobRecord:
        record = store.get(job_id)
        if record is None:
            raise NoSuchJobError(f"there is no job {job_id!r} (never created, or dismissed)")
        return record

    @router.get(
        "/processes",
        tags=["Processes"],
        response_model=ProcessList,
        response_model_exclude_none=True,
    )
    def get_processes(request: Request) -> ProcessList:
        """The processes this service runs."""
        base = _base(request)
        return ProcessList(
            processes=[p.summary(state.job_control, base) for p in state.processes.values()],
            links=[Link(href=f"{base}processes", rel="self", type=_JSON, title="processes")],
        )

    @router.get(
        "/processes/{processID}",
        tags=["Processes"],
        response_model=ProcessDescription,
        response_model_exclude_none=True,
        response_model_by_alias=True,
        responses=problems(404),
    )
    def get_process(request: Request, process_id: _ProcessID) -> ProcessDescription:
        """The description of a process: its inputs and outputs as OpenAPI 3.0 schemas."""
        return state.process(process_id).description_document(state.job_control, _base(request))

    @router.post(
        "/processes/{processID}/execution",
        tags=["Execution"],
        status_code=201,
        response_model=StatusInfo,
        response_model_exclude_none=True,
        responses={
            201: {
                "description": "The job was created (asynchronous execution).",
                "headers": {"Location": {"description": "The job URL", "schema": _STRING}},
            },
            200: {"model": JobResults, "description": "The outputs (synchronous execution)."},
            **problems(400, 404, 413, 415, 500, 504),
        },
        dependencies=[Depends(_json_body)],
    )
    async def execute_process(
        request: Request,
        process_id: _ProcessID,
        execute: Annotated[StrictProcessRequest, Body()] = _NO_BODY,
        prefer: Annotated[
            str | None, Header(description="'respond-async' asks for a job (201)")
        ] = None,
    ) -> Response:
        """Run a process: create a job (201 + Location), or answer with its outputs."""
        process = state.process(process_id)
        inputs = dict(execute.inputs or {})
        transmissions = process.transmissions(execute.outputs)
        record, done = await run_in_threadpool(state.execute, process, inputs, transmissions)
        base = _base(request)
        respond_async = "respond-async" in (prefer or "").lower()
        if state.options.sync_execute and not respond_async:
            await _wait(record.job_id, done, f"{base}jobs/{record.job_id}")
            raw = execute.response != "document"
            return await run_in_threadpool(_results, record.job_id, base, raw=raw)
        applied = respond_async and state.options.sync_execute
        return created_response(record, base, respond_async_applied=applied)

    async def _wait(job_id: str, done: Future[None], href: str) -> None:
        timeout = state.options.request_timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), timeout)
        except TimeoutError:
            raise RequestTimeoutError(
                f"job {job_id!r} did not finish within request_timeout_s ({timeout} s); it "
                f"goes on: follow it at {href}, or ask for a job with "
                "'Prefer: respond-async'"
            ) from None

    def _finished(job_id: str) -> None:
        """Raise unless job ``job_id`` was successful."""
        record = _record(job_id)
        if record.status in ACTIVE:
            raise ResultNotReadyError(
                f"job {job_id!r} is {record.status.value}; its results are not ready yet"
            )
        if record.status is JobStatus.FAILED:
            raise JobFailedError(f"job {job_id!r} failed: {record.message}")
        if record.status is JobStatus.DISMISSED:
            raise JobDismissedError(f"job {job_id!r} was dismissed before it finished")

    def _results(job_id: str, base: str, *, raw: bool = False) -> Response:
        """The outputs; a file by value (base64) or by reference (a link), as asked."""
        _finished(job_id)
        results = store.results(job_id) or {}
        files = store.file_types(job_id)
        if raw and len(results) == 1 and files:  # a raw response of one file is the file
            return _download(job_id, next(iter(files)))
        modes = store.transmissions(job_id)
        for output_id, media_type in files.items():
            if modes.get(output_id) == "reference":
                href = f"{base}jobs/{job_id}/results/{output_id}"
                results[output_id] = {"href": href, "type": media_type, "rel": "enclosure"}
            else:
                data = store.file(job_id, output_id).data  # type: ignore[union-attr]
                encoded = base64.b64encode(data).decode("ascii")
                results[output_id] = {"value": encoded, "mediaType": media_type,
                                      "encoding": "base64"}  # fmt: skip
        if raw and len(results) == 1:  # a raw response of one output is its value
            return JSONResponse(next(iter(results.values())))
        return JSONResponse(results)

    def _download(job_id: str, output_id: str) -> Response:
        file = store.file(job_id, output_id)
        if file is None:
            raise NoSuchOutputError(
                f"job {job_id!r} has no file output {output_id!r}; its results are at "
                f"jobs/{job_id}/results"
            )
        suffix = _SUFFIXES.get(file.media_type, "")
        disposition = f'attachment; filename="{job_id}-{output_id}{suffix}"'
        return Response(
            file.data, media_type=file.media_type, headers={"Content-Disposition": disposition}
        )

    @router.get(
        "/jobs",
        tags=["Jobs"],
        response_model=JobList,
        response_model_exclude_none=True,
        responses=problems(400),
    )
    def get_jobs(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        status: Annotated[list[JobStatus] | None, Query()] = None,
        process_id: Annotated[list[str] | None, Query(alias="processID")] = None,
        datetime: Annotated[str | None, Query(description=_DATETIME_DOC)] = None,
        min_duration: Annotated[
            int | None, Query(alias="minDuration", ge=0, description="seconds")
        ] = None,
        max_duration: Annotated[
            int | None, Query(alias="maxDuration", ge=0, description="seconds")
        ] = None,
        after: Annotated[
            str | None, Query(description="only jobs after this job id (the `next` link)")
        ] = None,
    ) -> JobList:
        """The jobs, oldest first: at most ``limit``, and a ``next`` link to the rest."""
        records = store.find(
            limit=limit + 1,
            statuses=[s.value for s in status or []],
            process_ids=process_id or [],
            after=None if after is None else _job_number(after),
            created=_interval(datetime),
            duration_s=(min_duration, max_duration),
        )
        base = _base(request)
        links = [Link(href=str(request.url), rel="self", type=_JSON, title="these jobs")]
        if len(records) > limit:
            records = records[:limit]
            following = request.url.include_query_params(after=records[-1].job_id)
            links.append(Link(href=str(following), rel="next", type=_JSON, title="more jobs"))
        return JobList(jobs=[_status_info(r, base) for r in records], links=links)

    @router.get(
        "/jobs/{jobId}",
        tags=["Jobs"],
        response_model=StatusInfo,
        response_model_exclude_none=True,
        responses={
            200: {
                "description": "The job's status.",
                "headers": {
                    "Preference-Applied": {
                        "description": "'wait=N' when the request's wait preference was used",
                        "schema": _STRING,
                    }
                },
            },
            **problems(404),
        },
    )
    async def get_job(
        request: Request,
        job_id: _JobID,
        prefer: Annotated[
            str | None,
            Header(
                description=f"'wait=N' (RFC 7240): answer once the job has finished, or "
                f"after N seconds (at most {_MAX_WAIT_S})"
            ),
        ] = None,
    ) -> JSONResponse:
        """The status of a job; with ``Prefer: wait=N``, once it has finished or after N s."""
        wait = wait_preference(prefer)
        await long_poll(state, job_id, wait)
        record = await run_in_threadpool(_record, job_id)
        return status_response(record, _base(request), wait=wait)

    @router.delete(
        "/jobs/{jobId}",
        tags=["Jobs"],
        response_model=StatusInfo,
        response_model_exclude_none=True,
        responses=problems(404),
    )
    def dismiss_job(request: Request, job_id: _JobID) -> StatusInfo:
        """Dismiss a job: cancel it if it is queued or running, else remove it and its results."""
        record = _record(job_id)
        if record.status in ACTIVE and store.dismiss(job_id):
            state.runner.cancel(job_id)
            return _status_info(_record(job_id), _base(request))
        store.delete(job_id)
        info = _status_info(record, _base(request))
        removed = {"status": JobStatus.DISMISSED, "message": "removed with its results"}
        return info.model_copy(update={**removed, "links": []})

    @router.get(
        "/jobs/{jobId}/results",
        tags=["Jobs"],
        response_model=JobResults,
        responses=problems(404, 410, 500),
    )
    def get_job_results(request: Request, job_id: _JobID) -> Response:
        """The outputs of a successful job: output id -> value (or link, for a file)."""
        return _results(job_id, _base(request))

    @router.get(
        "/jobs/{jobId}/results/{outputId}",
        tags=["Jobs"],
        response_class=Response,
        responses={
            200: {
                "description": "The file (e.g. GeoParquet) of a file output.",
                "content": {media: {} for media in _SUFFIXES},
            },
            **problems(404, 410, 500),
        },
    )
    def get_job_result_file(job_id: _JobID, output_id: _OutputID) -> Response:
        """A file output of a successful job (what a result by reference links to)."""
        _finished(job_id)
        return _download(job_id, output_id)

    return router
