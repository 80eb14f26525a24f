"""HTTP for metadata and WCS requests: retries with backoff inside a deadline, host caps.

Every request to a provider goes through :func:`fetch`: at most
``max_concurrent_requests_per_host`` run at once per host (so public services are not
hammered), 429/5xx answers, timeouts and connection errors are retried up to
``http_retries`` times with exponential backoff (``Retry-After`` honoured), and the
whole call, retries included, never outlasts ``provider_timeout_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from cas_xr.config import get_settings, settings_generation
from cas_xr.errors import SourceError

__all__ = ["fetch"]

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_lock = threading.Lock()
_semaphores: dict[tuple[int, str], threading.BoundedSemaphore] = {}
_local = threading.local()


def _semaphore(host: str) -> threading.BoundedSemaphore:
    key = (settings_generation(), host)
    with _lock:
        if key not in _semaphores:
            _semaphores[key] = threading.BoundedSemaphore(
                get_settings().max_concurrent_requests_per_host
            )
        return _semaphores[key]


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers["User-Agent"] = "cas_xr"
    return session


def _delay(attempt: int, response: requests.Response | None, remaining: float) -> float:
    wait = 0.2 * 2**attempt
    if response is not None and response.headers.get("Retry-After", "").isdigit():
        wait = float(response.headers["Retry-After"])
    return min(wait, max(remaining, 0.0))


def fetch(
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    provider: str = "",
    headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """GET ``url`` with the settings' retries, deadline and per-host cap.

    Parameters
    ----------
    url
        The URL.
    params
        Query parameters.
    provider
        Provider slug, named in errors.
    headers
        Extra request headers.

    Returns
    -------
    requests.Response
        A successful (2xx) response.

    Raises
    ------
    SourceError
        ``kind="timeout"`` past ``provider_timeout_s``, ``kind="http"`` for a final error
        status (the message quotes the server), ``kind="connection"`` when unreachable.
    """
    settings = get_settings()
    deadline = time.monotonic() + settings.provider_timeout_s
    host = urlsplit(url).netloc
    last: str = ""
    for attempt in range(settings.http_retries + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        response = None
        try:
            with _semaphore(host):
                response = _session().get(url, params=params, headers=headers, timeout=remaining)
        except requests.Timeout:
            last = f"no answer within {settings.provider_timeout_s} s"
        except requests.ConnectionError as err:
            last = f"cannot connect: {err.__class__.__name__}"
            if attempt == settings.http_retries:
                raise SourceError(last, provider=provider, url=url, kind="connection") from err
        else:
            if response.ok:
                return response
            last = f"HTTP {response.status_code}: {response.text[:300].strip()}"
            if response.status_code not in _RETRY_STATUS:
                raise SourceError(last, provider=provider, url=response.url, kind="http")
        time.sleep(_delay(attempt, response, deadline - time.monotonic()))
    kind = "timeout" if time.monotonic() >= deadline else "http"
    raise SourceError(
        f"gave up after retries within provider_timeout_s ({settings.provider_timeout_s} s): "
        f"{last}",
        provider=provider,
        url=url,
        kind=kind,
    )
