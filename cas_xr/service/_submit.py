"""The execute route's fast path: an asynchronous job created without FastAPI's machinery.

Clients send execute requests (``POST /processes/{processID}/execution``) in bursts, and
every one of them waits on the one event loop for the requests before it. FastAPI's
routing, dependency solving and body validation cost about half a millisecond of that
loop per request, more than validating and storing the job. :class:`FastSubmit` is ASGI
middleware in front of the routes that answers the ordinary asynchronous request itself:
a JSON body that is a valid execute request for a process that exists, inputs that
validate. The answer is the route's (201, the same ``Location`` and status document,
built by the same code), and the requests that arrive while one worker-thread call is
busy go to the next call together: their inputs validated and their jobs stored in one
SQLite transaction (a group commit), before any of them is answered.

Every other request passes on to the route with its body, so every refusal and every
unusual answer is the route's own: a body that is not JSON or not valid, an unknown
process or output, invalid inputs, a limit exceeded, synchronous execution, anything but
a valid API key when authentication is on (no key, a wrong one, a browser session with
its CSRF check), a root path. With rate limiting on, the request is counted here once:
the route does not count a request this middleware counted and then passed on.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cas_xr.ogc import StrictProcessRequest
from cas_xr.service._fast import FastPath, Gathered
from cas_xr.service._jobs import JobRecord
from cas_xr.service._processes import Process
from cas_xr.service._routes import created_response, is_json_body
from cas_xr.service._security import RateLimiter
from cas_xr.service._state import ServiceState

__all__ = ["FastSubmit"]

_EXECUTE = TypeAdapter(StrictProcessRequest)
_PREFIX, _SUFFIX = "/processes/", "/execution"

_Request = tuple[Process, dict[str, Any], dict[str, str]]
_Outcome = tuple[JobRecord, Future[None]] | Exception


class FastSubmit(FastPath):
    """ASGI middleware: answers ordinary asynchronous execute requests without the router.

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
        # a group commit: the requests that arrive while one call runs are validated and
        # stored together by the next, in one transaction
        self._commit: Gathered[_Request, _Outcome] = Gathered(state.execute_many)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Create the job of an ordinary execute request, or pass the request on."""
        process = self._process(scope)
        if process is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        prefer = request.headers.get("prefer", "").lower()
        if not self._eligible(request, prefer):
            await self.app(scope, receive, send)
            return
        messages = await _read(receive)
        replay = _replay(messages, receive)
        if not await self._counted(request, scope):  # the route refuses it
            await self.app(scope, replay, send)
            return
        outcome = await self._submit(process, messages)
        if isinstance(outcome, tuple):
            record, _ = outcome
            applied = self._state.options.sync_execute  # and the request asked for a job
            response = created_response(
                record, str(request.base_url), respond_async_applied=applied
            )
            await response(scope, replay, send)
            return
        await self.app(scope, replay, send)

    def _process(self, scope: Scope) -> Process | None:
        """The process of an execute request's path (None: not one, or no such process)."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        process_id = path[len(_PREFIX) : -len(_SUFFIX)]
        return None if "/" in process_id else self._state.processes.get(process_id)

    def _eligible(self, request: Request, prefer: str) -> bool:
        """Whether the request is one this path answers: async, a JSON body, authenticated."""
        if self._state.options.sync_execute and "respond-async" not in prefer:
            return False
        headers = request.headers
        if not is_json_body(headers) or headers.get("content-length") in (None, "0"):
            return False
        return self._authenticated(request)

    async def _submit(self, process: Process, messages: list[Message]) -> _Outcome | None:
        if any(m["type"] != "http.request" for m in messages):
            return None  # the client went away: the route sees it as it is
        try:
            execute = _EXECUTE.validate_python(
                json.loads(b"".join(m.get("body", b"") for m in messages))
            )
            transmissions = process.transmissions(execute.outputs)
        except Exception:  # not JSON, too deep, not valid...: the route answers its problem
            return None
        try:
            return await self._commit((process, dict(execute.inputs or {}), transmissions))
        except Exception:  # nothing was stored: the route answers (or stores it)
            return None


async def _read(receive: Receive) -> list[Message]:
    """The request's body messages, up to the last (or a disconnect)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` again, then what ``receive`` gives."""
    queue = list(messages)

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay
