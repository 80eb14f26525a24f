"""The job routes' fast paths: a job's status (and long poll), its results, without FastAPI.

Every client of a job polls its status (``GET /jobs/{jobId}``, with ``Prefer: wait=N`` a
long poll that is answered when the job has finished): as many status requests as
execute requests, on the same event loop, and FastAPI's routing and dependency solving
cost more of that loop than reading the job. :class:`FastStatus` is ASGI middleware in
front of the routes that answers an ordinary status request itself: the same wait
(:func:`~cas_xr.service._routes.long_poll`), the same document and headers
(:func:`~cas_xr.service._routes.status_response`). The jobs of the status requests that
arrive while one worker-thread read is busy are read together by the next, in one query.

Every other request passes on to the route, so every refusal and every unusual answer is
the route's own: a job that does not exist, a query string, more than one ``Prefer``
header, anything but a valid API key when authentication is on (no key, a wrong one, a
browser session), a root path, a method other than GET. With rate limiting on, the
request is counted here once: the route does not count a request this middleware counted
and then passed on. Jobs are not owned by API keys: any valid key reads any job, on
either path. :class:`FastResults` does the same for the results of a successful job.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cas_xr.ogc import JobStatus
from cas_xr.service._fast import FastPath, Gathered
from cas_xr.service._jobs import JobRecord
from cas_xr.service._routes import long_poll, status_response, wait_preference
from cas_xr.service._security import RateLimiter
from cas_xr.service._state import ServiceState

__all__ = ["FastResults", "FastStatus"]

_PREFIX, _RESULTS = "/jobs/", "/results"


class FastStatus(FastPath):
    """ASGI middleware: answers ordinary status requests (and long polls) without the router.

    Parameters
    ----------
    app
        The wrapped application (the API).
    state
        The service state.
    limiter
        The rate limiter (None: rate limiting is off).
    """

    def __init__(self, app: ASGIApp, state: ServiceState, limiter: RateLimiter | None) -> None:
        super().__init__(app, state, limiter)
        self._read: Gathered[str, JobRecord | None] = Gathered(state.store.get_many)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the status of a job, or pass the request on."""
        job_id = _job_id(scope)
        if job_id is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        prefer = request.headers.getlist("prefer")
        if len(prefer) > 1 or not self._authenticated(request):
            await self.app(scope, receive, send)
            return
        if not await self._counted(request, scope):  # the route refuses it
            await self.app(scope, receive, send)
            return
        wait = wait_preference(prefer[0] if prefer else None)
        await long_poll(self._state, job_id, wait)
        try:
            record = await self._read(job_id)
        except Exception:  # the store failed: the route answers its problem
            record = None
        if record is None:  # no such job: the route's 404
            await self.app(scope, receive, send)
            return
        await status_response(record, str(request.base_url), wait=wait)(scope, receive, send)


class FastResults(FastPath):
    """ASGI middleware: answers ordinary results requests without the router.

    ``GET /jobs/{jobId}/results`` of a successful job without file outputs: the route's
    answer (its outputs, as JSON), built in the worker-thread call that reads the jobs of
    the results requests that arrived together. Anything else passes on to the route: a
    job that does not exist, has not finished, failed or was dismissed, file outputs, a
    query string, anything but a valid API key when authentication is on, a root path.

    Parameters
    ----------
    app
        The wrapped application (the API).
    state
        The service state.
    limiter
        The rate limiter (None: rate limiting is off).
    """

    def __init__(self, app: ASGIApp, state: ServiceState, limiter: RateLimiter | None) -> None:
        super().__init__(app, state, limiter)
        self._answers: Gathered[str, Response | None] = Gathered(self._read)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the results of a job, or pass the request on."""
        job_id = _job_id(scope, _RESULTS)
        if job_id is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not self._authenticated(request) or not await self._counted(request, scope):
            await self.app(scope, receive, send)
            return
        try:
            answer = await self._answers(job_id)
        except Exception:  # the store failed: the route answers its problem
            answer = None
        await (self.app if answer is None else answer)(scope, receive, send)

    def _read(self, job_ids: list[str]) -> list[Response | None]:
        """The answers of the route for successful jobs without files (else None)."""
        answers: list[Response | None] = []
        for found in self._state.store.outputs_many(job_ids):
            if found is None or found[0].status is not JobStatus.SUCCESSFUL or found[2]:
                answers.append(None)
            else:
                answers.append(JSONResponse(found[1] or {}))
        return answers


def _job_id(scope: Scope, suffix: str = "") -> str | None:
    """The job of a plain request's path ``/jobs/{jobId}{suffix}`` (None: not one)."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if scope.get("query_string") or not path.startswith(_PREFIX) or not path.endswith(suffix):
        return None
    job_id = path[len(_PREFIX) : len(path) - len(suffix)]
    return job_id if job_id and "/" not in job_id else None
