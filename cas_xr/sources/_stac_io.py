"""pystac-client I/O with the settings' retries, deadline and per-host cap.

Every request of a STAC API search goes through :func:`~cas_xr.sources._http.with_retries`:
429/5xx answers, timeouts and connection errors are retried with backoff, bounded by
``provider_timeout_s``; what still fails becomes a :class:`~cas_xr.errors.SourceError`
naming the provider and the URL.
"""

from __future__ import annotations

from typing import Any

import requests
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from cas_xr.errors import SourceError
from cas_xr.sources._http import RETRY_STATUS, Retryable, with_retries

__all__ = ["StacIO"]


def _classify(err: APIError, provider: str, url: str) -> Retryable | SourceError:
    """A :class:`Retryable` or a final :class:`SourceError` for a failed pystac-client call."""
    status = getattr(err, "status_code", None)
    if status is not None:
        message = f"HTTP {status}: {str(err)[:300].strip()}"
        if status in RETRY_STATUS:
            return Retryable("http", message)
        return SourceError(message, provider=provider, url=url, kind="http")
    cause = err.__context__  # pystac-client re-raises requests' errors as APIError(str(err))
    if isinstance(cause, requests.Timeout):
        return Retryable("timeout", f"no answer in time: {cause.__class__.__name__}")
    if isinstance(cause, requests.ConnectionError):
        return Retryable("connection", f"cannot connect: {cause.__class__.__name__}")
    return SourceError(str(err)[:300], provider=provider, url=url, kind="source")


class StacIO(StacApiIO):
    """pystac-client I/O through :func:`~cas_xr.sources._http.with_retries`.

    One instance serves one search in one thread (it sets ``timeout`` per attempt).
    """

    def __init__(self, provider: str) -> None:
        super().__init__(max_retries=None)
        self.session.headers["User-Agent"] = "cas_xr"
        self.provider = provider

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        """Send one request, retrying 429/5xx, timeouts and connection errors.

        Raises
        ------
        SourceError
            ``kind`` ``"http"``, ``"timeout"``, ``"connection"`` or ``"source"``, naming
            the provider and URL, once retries or ``provider_timeout_s`` are used up.
        """

        def attempt(timeout: float) -> str:
            self.timeout = timeout
            try:
                return super(StacIO, self).request(href, method, headers, parameters)
            except APIError as err:
                raise _classify(err, self.provider, href) from err

        return with_retries(attempt, url=href, provider=self.provider)
