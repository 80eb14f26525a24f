"""HTTP for metadata and WCS requests: retries with backoff inside a deadline, host caps.

Every request to a provider goes through :func:`with_retries` (directly, or via
:func:`fetch` for plain GETs): at most ``max_concurrent_requests_per_host`` run at once
per host (so public services are not hammered), 429/5xx answers, timeouts and connection
errors are retried up to ``http_retries`` times with exponential backoff
(``Retry-After`` honoured), and the whole call, retries included, never outlasts
``provider_timeout_s`` from its first request (the wait for a free slot of the host's cap
is not the provider's time: a request queued behind slow ones is not lost unasked).
The sessions' connections say when a request is sent (:mod:`cas_xr.sources._sending`).

Many requests to one host are handed to the I/O threads (:func:`io_pool`) by
:func:`hand_over`: at most the host's cap of them hold a thread, the others wait in the
host's line for one of those to end, so a slow host's backlog never holds the threads
that the requests of other hosts need.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from cas_xr.config import get_settings, settings_generation
from cas_xr.errors import SourceError
from cas_xr.sources._sending import SentAdapter, owing, release, sent

__all__ = [
    "RETRY_STATUS", "Retryable", "fetch", "fetch_range", "hand_over", "io_pool", "public_url",
    "with_retries",
]  # fmt: skip

#: HTTP statuses worth retrying.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_T = TypeVar("_T")
_lock = threading.Lock()
_semaphores: dict[tuple[int, str], threading.BoundedSemaphore] = {}
_local = threading.local()
_pool: list[ThreadPoolExecutor] = []
_lines_lock = threading.Lock()


class Retryable(Exception):
    """Raised by an attempt that may succeed when tried again.

    Parameters
    ----------
    kind
        ``"http"``, ``"timeout"`` or ``"connection"`` (the SourceError kind if retries run out).
    message
        What went wrong, quoting the server when it said something.
    retry_after
        Seconds the server asked to wait, if it did.
    """

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


def public_url(url: str) -> str:
    """``url`` without its query and fragment (signed URLs carry tokens there)."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def _semaphore(host: str) -> threading.BoundedSemaphore:
    key = (settings_generation(), host)
    with _lock:
        if key not in _semaphores:
            _semaphores[key] = threading.BoundedSemaphore(
                get_settings().max_concurrent_requests_per_host
            )
        return _semaphores[key]


def with_retries(attempt: Callable[[float], _T], *, url: str, provider: str = "") -> _T:
    """Run ``attempt(timeout_s)`` until it succeeds, within the settings' retries and deadline.

    Parameters
    ----------
    attempt
        Makes one request with the given timeout; raises :class:`Retryable` for a failure
        worth retrying, :class:`~cas_xr.errors.SourceError` for a final one.
    url
        The URL, for the per-host cap and error messages.
    provider
        Provider slug, named in errors.

    Raises
    ------
    SourceError
        With the last failure's kind once ``http_retries`` or ``provider_timeout_s`` (from
        the first attempt's start) are used up (``kind="timeout"`` when the deadline passed).
    """
    settings = get_settings()
    deadline = math.inf  # set when the first attempt has a slot of the host's cap
    last = Retryable("timeout", "no attempt fitted in the deadline")
    attempts = 0
    slots = _semaphore(urlsplit(url).netloc)
    for n in range(settings.http_retries + 1):
        if not slots.acquire(blocking=False):
            sent()  # it cannot leave now: no hold of garbage collection waits for it
            slots.acquire()
        try:
            now = time.monotonic()
            deadline = min(deadline, now + settings.provider_timeout_s)
            remaining = deadline - now
            if remaining <= 0:
                break
            attempts += 1
            return attempt(remaining)
        except Retryable as err:
            last = err
        finally:
            slots.release()
        if n < settings.http_retries:
            wait = last.retry_after if last.retry_after is not None else 0.2 * 2**n
            time.sleep(min(wait, max(deadline - time.monotonic(), 0.0)))
    kind = "timeout" if time.monotonic() >= deadline else last.kind
    raise SourceError(
        f"gave up after {attempts} attempt(s) within http_retries ({settings.http_retries}) "
        f"and provider_timeout_s ({settings.provider_timeout_s} s): {last.message}",
        provider=provider,
        url=url,
        kind=kind,
    )


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers["User-Agent"] = "cas_xr"
        for prefix in ("http://", "https://"):
            session.mount(prefix, SentAdapter())
    return session


def fetch(
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    provider: str = "",
    headers: Mapping[str, str] | None = None,
    accept_status: Collection[int] = (),
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
    accept_status
        Error statuses returned to the caller instead of raised (e.g. OGC services that
        send exception reports with 400/404), so it can read the server's report.

    Returns
    -------
    requests.Response
        A successful (2xx) response, or one with a status in ``accept_status``.

    Raises
    ------
    SourceError
        ``kind="timeout"`` past ``provider_timeout_s``, ``kind="http"`` for a final error
        status (the message quotes the server), ``kind="connection"`` when unreachable or
        when answers keep being cut short.
    """

    def attempt(timeout: float) -> requests.Response:
        try:
            response = _session().get(url, params=params, headers=headers, timeout=timeout)
        except requests.Timeout:
            raise Retryable("timeout", f"no answer within {timeout:.1f} s") from None
        except requests.ConnectionError as err:
            raise Retryable("connection", f"cannot connect: {err.__class__.__name__}") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise Retryable("connection", "the answer was cut short or garbled") from None
        if response.ok or response.status_code in accept_status:
            return response
        message = f"HTTP {response.status_code}: {response.text[:300].strip()}"
        if response.status_code not in RETRY_STATUS:
            raise SourceError(message, provider=provider, url=response.url, kind="http")
        after = response.headers.get("Retry-After", "")
        raise Retryable("http", message, float(after) if after.isdigit() else None)

    return with_retries(attempt, url=url, provider=provider)


def io_pool() -> ThreadPoolExecutor:
    """The process's threads for remote reads, apart from the compute threads.

    Reads submitted here are bounded per host by ``max_concurrent_requests_per_host``
    (inside :func:`with_retries`), not by the number of threads that compute.
    """
    with _lock:
        if not _pool:
            workers = max(32, 4 * (os.cpu_count() or 1))
            _pool.append(ThreadPoolExecutor(workers, thread_name_prefix="cas_xr-io"))
        return _pool[0]


def fetch_range(url: str, first: int, last: int, *, provider: str = "") -> tuple[bytes, int, str]:
    """Bytes ``first..last`` (inclusive) of ``url``, the resource's size and its version.

    Parameters
    ----------
    url
        The URL.
    first, last
        The byte range; a range past the end is cut at the end, as HTTP does.
    provider
        Provider slug, named in errors.

    Returns
    -------
    tuple
        The bytes, the size of the whole resource, and what tells its versions apart
        (the ``ETag``, else ``Last-Modified``; empty when the server sends neither).

    Raises
    ------
    SourceError
        As :func:`fetch`, naming the URL without its query; ``kind="not_found"`` for a
        404, ``"read"`` when the range is not satisfiable.
    """
    shown = public_url(url)
    try:
        response = fetch(
            url, provider=provider, headers={"Range": f"bytes={first}-{last}"},
            accept_status=(404, 416),
        )  # fmt: skip
    except SourceError as err:  # said again without the URL's query (a signing token)
        query = urlsplit(url).query
        said = err.message.replace(query, "") if query else err.message
        raise SourceError(said, provider=provider, url=shown, kind=err.kind) from None
    if response.status_code == 404:
        raise SourceError("not found (HTTP 404)", provider=provider, url=shown, kind="not_found")
    if response.status_code == 416:
        raise SourceError(
            f"bytes {first}-{last} are past the end of the file", provider=provider, url=shown,
            kind="read",
        )  # fmt: skip
    version = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else -1
        return response.content, size if size >= 0 else first + len(response.content), version
    body = response.content  # a server that ignores ranges sends the whole file
    return body[first : last + 1], len(body), version


class _Line:
    """The jobs of one host: at most ``cap`` of them on the I/O threads, the rest waiting."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.running = 0
        self.waiting: deque[Callable[[], object]] = deque()


_lines: dict[tuple[int, str], _Line] = {}


def hand_over(url: str, job: Callable[[], object], *, token: int = -1) -> None:
    """Run ``job`` on the I/O threads once the host of ``url`` has a free slot of its cap.

    At most ``max_concurrent_requests_per_host`` jobs of a host hold an I/O thread (each
    sends its requests through :func:`with_retries`); the others wait in the host's line,
    in the order handed over, and each takes the thread of a job that ended. A slow host's
    backlog thus holds at most its cap of threads, and a read from another host finds a
    thread free.

    Parameters
    ----------
    url
        The URL the job requests (its host names the line).
    job
        Sends a request; what it returns or raises is dropped (it reports its own
        outcome, e.g. through futures).
    token
        The :func:`~cas_xr.sources._sending.hold` that counted the job's request: the
        job sends it in :func:`~cas_xr.sources._sending.owing`, or, when it must wait in
        line, its share is released at once (it cannot leave now).
    """
    key = (settings_generation(), urlsplit(url).netloc)
    with _lines_lock:
        line = _lines.get(key)
        if line is None:
            line = _lines[key] = _Line(get_settings().max_concurrent_requests_per_host)
        now = line.running < line.cap
        if now:
            line.running += 1
        else:
            line.waiting.append(job)
    if now:
        io_pool().submit(_run_in_line, line, job, token)
    else:
        release(token)


def _run_in_line(line: _Line, job: Callable[[], object], token: int) -> None:
    """Run ``job``, then hand its thread's slot to the next job in ``line``, if any."""
    try:
        with owing(token):
            job()
    finally:
        with _lines_lock:
            following = line.waiting.popleft() if line.waiting else None
            if following is None:
                line.running -= 1
        if following is not None:
            io_pool().submit(_run_in_line, line, following, -1)
