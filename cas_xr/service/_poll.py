"""The status route's fast path: a job's status (and long poll) without FastAPI's machinery.

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
either path.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cas_xr.service._fast import FastPath, Gathered
from cas_xr.service._jobs import JobRecord
from cas_xr.service._routes import long_poll, status_response, wait_preference
from cas_xr.service._security import RateLimiter
from cas_xr.service._state import ServiceState

__all__ = ["FastStatus"]

_PREFIX = "/jobs/"


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


def _job_id(scope: Scope) -> str | None:
    """The job of a plain status request's path (None: not one)."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if scope.get("query_string") or not path.startswith(_PREFIX):
        return None
    job_id = path[len(_PREFIX) :]
    return job_id if job_id and "/" not in job_id else None
