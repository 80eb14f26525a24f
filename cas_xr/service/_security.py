"""Authentication, rate limiting and the request-size limit.

- Authentication (``auth_enabled``): an API key from ``api_keys``, sent in the
  ``api_key_header`` header (default ``X-API-Key``) or as ``Authorization: Bearer <key>``,
  or a browser session (``cas_xr.service._sessions``: a signed cookie set by the login
  page; requests that change something also need its CSRF token). The landing page,
  ``/conformance`` and the API documents stay public.
- Rate limiting (``rate_limit_enabled``): at most ``rate_limit_per_minute`` requests per
  client in any minute (the `limits <https://limits.readthedocs.io>`_ library's moving
  window); over it, 429 with ``Retry-After``. A client is the API key it sent *when that
  key is valid*, else its address: the socket's peer, or the address a proxy listed in
  ``trusted_proxies`` names in ``X-Forwarded-For`` (uvicorn's ``ProxyHeadersMiddleware``
  reads it). Headers a client is free to vary (an unknown key, a bearer token, an
  ``X-Forwarded-For`` from anyone else) never open a new budget. The counts live in
  ``rate_limit_storage_url``: ``memory://`` (one process), or ``redis://host:port`` so
  that several worker processes share one budget.
- Body size: a body larger than ``max_request_bytes`` is refused with 413 before the
  application reads it.
"""

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cas_xr.errors import ConfigurationError
from cas_xr.service._options import ServiceOptions
from cas_xr.service._problems import (
    CsrfError,
    PayloadTooLargeError,
    RateLimitedError,
    RateLimitUnavailableError,
    UnauthorizedError,
    render_problem,
)
from cas_xr.service._sessions import COOKIE, CSRF_HEADER, SAFE_METHODS, Sessions

__all__ = ["COUNTED", "ApiKeys", "BodySizeLimit", "RateLimiter", "authenticator"]

logger = logging.getLogger("cas_xr.service")

#: The scope key of a request the rate limiter has counted already.
COUNTED = "cas_xr.rate_counted"


class ApiKeys:
    """The accepted API keys, and the key a request presents.

    Parameters
    ----------
    keys
        The accepted keys.
    header
        The API-key header; ``Authorization: Bearer <key>`` is read too.
    """

    def __init__(self, keys: Iterable[SecretStr], header: str) -> None:
        self._keys = [k.get_secret_value().encode() for k in keys]
        self.header = header

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._keys)} keys>, header={self.header!r})"

    def presented(self, request: Request) -> str | None:
        """The key in the API-key header, else the bearer token, else None."""
        key = request.headers.get(self.header)
        if key is not None:
            return key
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def identity(self, given: str | None) -> str | None:
        """``key:<digest>`` for a valid key (never the key itself), else None."""
        if given is None:
            return None
        encoded = given.encode()
        if any(hmac.compare_digest(encoded, key) for key in self._keys):
            return "key:" + hashlib.sha256(encoded).hexdigest()[:32]
        return None


def authenticator(options: ServiceOptions, sessions: Sessions) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that refuses requests without a valid API key or session.

    Parameters
    ----------
    options
        ``api_keys`` and ``api_key_header`` are used.
    sessions
        The browser sessions.
    """
    api_key_scheme = APIKeyHeader(name=options.api_key_header, auto_error=False)
    bearer_scheme = HTTPBearer(auto_error=False)
    keys = ApiKeys(options.api_keys, options.api_key_header)

    # annotations are evaluated here (no `from __future__ import annotations` in this
    # module) so that FastAPI sees the local security schemes
    async def authenticate(
        request: Request,
        api_key: Annotated[str | None, Security(api_key_scheme)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> None:
        given = api_key if api_key is not None else (bearer.credentials if bearer else None)
        cookie = request.cookies.get(COOKIE)
        if given is None and sessions.identity(cookie) is not None:
            assert cookie is not None  # a valid session has a cookie
            if request.method in SAFE_METHODS or sessions.check_csrf(
                cookie, request.headers.get(CSRF_HEADER)
            ):
                return
            raise CsrfError(
                f"this request comes with the session cookie but not with its CSRF token "
                f"(header {CSRF_HEADER}): send it from the service's own pages (reload "
                "the page), or authenticate with an API key instead"
            )
        if given is None:
            detail = (
                f"this service needs an API key: send it in the {options.api_key_header} "
                "header or as 'Authorization: Bearer <key>'"
            )
        elif keys.identity(given) is not None:
            return
        else:
            detail = "the API key or bearer token is not valid"
        raise UnauthorizedError(detail, headers={"WWW-Authenticate": 'Bearer realm="cas-xr"'})

    return authenticate


def _storage(url: SecretStr) -> Any:
    """The async ``limits`` storage at ``url`` (``memory://``, ``redis://...``)."""
    from limits.errors import ConfigurationError as LimitsConfigurationError
    from limits.storage import storage_from_string

    uri = url.get_secret_value()
    scheme = uri.partition("://")[0]
    options = {"implementation": "redispy"} if "redis" in scheme else {}
    try:
        return storage_from_string(
            uri if uri.startswith("async+") else "async+" + uri, wrap_exceptions=True, **options
        )
    except LimitsConfigurationError as err:
        hint = " (install redis: pip install 'cas-xr[redis]')" if "redis" in scheme else ""
        raise ConfigurationError(
            f"rate_limit_storage_url: cannot use a {scheme!r} storage ({err}){hint}; "
            "use memory:// or redis://host:port"
        ) from None


class RateLimiter:
    """A FastAPI dependency: at most ``rate_limit_per_minute`` requests per client.

    Parameters
    ----------
    options
        ``rate_limit_per_minute``, ``rate_limit_storage_url`` and, with ``auth_enabled``,
        ``api_keys`` and ``api_key_header`` are used.
    sessions
        The browser sessions (a session's requests count against its key).
    """

    def __init__(self, options: ServiceOptions, sessions: Sessions) -> None:
        from limits import RateLimitItemPerMinute
        from limits.aio.strategies import MovingWindowRateLimiter

        self._item = RateLimitItemPerMinute(options.rate_limit_per_minute)
        self._storage = _storage(options.rate_limit_storage_url)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._keys = (
            ApiKeys(options.api_keys, options.api_key_header) if options.auth_enabled else None
        )
        self._sessions = sessions

    def client(self, request: Request) -> str:
        """Who ``request`` counts against: a verified API key, else an address."""
        if self._keys is not None:
            identity = self._keys.identity(self._keys.presented(request))
            if identity is None:
                identity = self._sessions.identity(request.cookies.get(COOKIE))
            if identity is not None:
                return identity
        return "addr:" + (request.client.host if request.client else "unknown")

    async def check_storage(self) -> bool:
        """Whether the storage answers (logged when it does not)."""
        if await self._storage.check():
            return True
        logger.error("the rate-limit storage does not answer; requests get 503 until it does")
        return False

    async def __call__(self, request: Request) -> None:
        """Count one request of its client, or raise :class:`RateLimitedError`."""
        from limits.errors import StorageError

        if request.scope.get(COUNTED):  # FastSubmit counted it, then passed it on
            return
        client = self.client(request)
        try:
            if await self._limiter.hit(self._item, "cas_xr", client):
                return
            stats = await self._limiter.get_window_stats(self._item, "cas_xr", client)
        except StorageError as err:
            logger.error("rate-limit storage error: %s", err.storage_error)
            raise RateLimitUnavailableError(
                "the rate-limit storage does not answer; retry later", headers={"Retry-After": "5"}
            ) from None
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitedError(
            f"more than {self._item.amount} requests in a minute from this client; "
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
