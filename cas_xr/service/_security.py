"""Authentication, rate limiting and the request-size limit.

- Authentication (``auth_enabled``): an API key from ``api_keys``, sent in the
  ``api_key_header`` header (default ``X-API-Key``) or as ``Authorization: Bearer <key>``.
  The landing page, ``/conformance`` and the API documents stay public.
- Rate limiting (``rate_limit_enabled``): a token bucket per client (its API key, else
  its address) holding ``rate_limit_per_minute`` requests; over it, 429 with
  ``Retry-After``.
- Body size: a body larger than ``max_request_bytes`` is refused with 413 before the
  application reads it.
"""

import hmac
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cas_xr.service._options import ServiceOptions
from cas_xr.service._problems import (
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
    render_problem,
)

__all__ = ["BodySizeLimit", "RateLimiter", "authenticator"]

_MAX_BUCKETS = 10_000


def authenticator(options: ServiceOptions) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that refuses requests without a valid API key.

    Parameters
    ----------
    options
        ``api_keys`` and ``api_key_header`` are used.
    """
    api_key_scheme = APIKeyHeader(name=options.api_key_header, auto_error=False)
    bearer_scheme = HTTPBearer(auto_error=False)
    keys = [k.encode() for k in options.api_keys]

    # annotations are evaluated here (no `from __future__ import annotations` in this
    # module) so that FastAPI sees the local security schemes
    async def authenticate(
        api_key: Annotated[str | None, Security(api_key_scheme)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> None:
        given = api_key if api_key is not None else (bearer.credentials if bearer else None)
        if given is None:
            detail = (
                f"this service needs an API key: send it in the {options.api_key_header} "
                "header or as 'Authorization: Bearer <key>'"
            )
        elif any(hmac.compare_digest(given.encode(), key) for key in keys):
            return
        else:
            detail = "the API key or bearer token is not valid"
        raise UnauthorizedError(detail, headers={"WWW-Authenticate": 'Bearer realm="cas-xr"'})

    return authenticate


class RateLimiter:
    """A FastAPI dependency: at most ``per_minute`` requests per client and minute.

    Parameters
    ----------
    per_minute
        The bucket size; it refills evenly over a minute.
    key_header
        The API-key header: requests carrying a key are counted per key, others per
        client address.
    """

    def __init__(self, per_minute: int, key_header: str) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._key_header = key_header
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time)

    def _client(self, request: Request) -> str:
        key = request.headers.get(self._key_header) or request.headers.get("authorization")
        if key:
            return "key:" + key
        return "addr:" + (request.client.host if request.client else "unknown")

    async def __call__(self, request: Request) -> None:
        """Take one request from the client's bucket, or raise :class:`RateLimitedError`."""
        client = self._client(request)
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > _MAX_BUCKETS:
                self._buckets.clear()
            tokens, then = self._buckets.get(client, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - then) * self._rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return
            self._buckets[client] = (tokens, now)
        wait = math.ceil((1 - tokens) / self._rate)
        raise RateLimitedError(
            f"more than {int(self._capacity)} requests in a minute from this client; "
            f"retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )


class BodySizeLimit:
    """ASGI middleware that answers 413 to bodies larger than ``max_bytes``.

    A declared ``Content-Length`` is checked at once; a body without one is read up to
    the limit before the application sees it.

    Parameters
    ----------
    app
        The wrapped application.
    max_bytes
        The largest body allowed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body size, then pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) <= self.max_bytes:
                await self.app(scope, receive, send)
                return
            await self._refuse(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:  # no Content-Length: read the (chunked) body up to the limit
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLargeError(
            f"the request body is larger than max_request_bytes ({self.max_bytes} bytes)"
        )
        await render_problem(error, instance=scope.get("path"))(scope, receive, send)
