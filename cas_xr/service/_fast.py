"""What the fast paths share: who may take them, one rate-limit count, gathered store calls.

A fast path (:mod:`._submit` for execute requests, :mod:`._poll` for status requests) is
ASGI middleware in front of the routes that answers the ordinary requests of one route
itself, without FastAPI's routing and dependency solving, and passes everything else on
to the route. What they share is here: only a request with a valid API key takes a fast
path when authentication is on (anything else, a browser session included, gets the
route's own check); with rate limiting on, a request is counted once, by the fast path,
and the route does not count it again when it is passed on; and the store calls of
requests that arrive together are made as one call in a worker thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Scope

from cas_xr.service._security import COUNTED, ApiKeys, RateLimiter
from cas_xr.service._state import ServiceState

__all__ = ["FastPath", "Gathered"]

T = TypeVar("T")
R = TypeVar("R")


class Gathered(Generic[T, R]):
    """Calls that arrive together, made as one call of ``function`` in a worker thread.

    One call at a time: the items that arrive while it runs wait for the next one, so a
    burst of requests costs a few calls (and transactions), not one each.

    Parameters
    ----------
    function
        Takes the items gathered, returns one outcome for each, in order (blocking: it
        runs in a worker thread).
    """

    def __init__(self, function: Callable[[list[T]], Sequence[R]]) -> None:
        self._function = function
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        """The outcome for ``item``; raises what ``function`` raised for its call."""
        outcome: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, outcome))
        if self._running is None:
            self._running = asyncio.create_task(self._run())
        return await outcome

    async def _run(self) -> None:
        try:
            while self._pending:
                taken, self._pending = self._pending, []
                try:
                    outcomes = await run_in_threadpool(self._function, [i for i, _ in taken])
                except Exception as err:  # every item of the call gets the error
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), outcome in zip(taken, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._running = None


class FastPath:
    """The base of a fast path: the wrapped app, the state, who may take it, the count.

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
        self.app = app
        self._state = state
        self._limiter = limiter
        options = state.options
        self._keys = (
            ApiKeys(options.api_keys, options.api_key_header) if options.auth_enabled else None
        )

    def _authenticated(self, request: Request) -> bool:
        """Whether ``request`` may take the fast path: authentication off, or a valid key."""
        return self._keys is None or self._keys.identity(self._keys.presented(request)) is not None

    async def _counted(self, request: Request, scope: Scope) -> bool:
        """Count ``request`` against its client's rate limit; False: over it (or no storage).

        A request counted here is marked so that the route does not count it again; one
        refused is not (the route asks the limiter again, and refuses it with its problem).
        """
        if self._limiter is None:
            return True
        try:
            await self._limiter(request)
        except Exception:
            return False
        scope[COUNTED] = True
        return True
