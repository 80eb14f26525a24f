"""RFC 7807 problem responses: one table maps each exception class to a status and type.

Every error the service answers with is ``application/problem+json``: validation errors,
unknown routes and unexpected failures included. Unexpected failures are logged with
their traceback on the server and answered with a generic message, never with a
traceback or a server path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from cas_xr.errors import (
    ArgumentTypeError,
    CasError,
    InvalidArgumentError,
    InvalidDatasetIdError,
    InvalidGeometryError,
    LimitExceededError,
    RequestTimeoutError,
    UnknownProviderError,
)
from cas_xr.service._redact import redact_text

__all__ = [
    "PROBLEM_TABLE",
    "CsrfError",
    "InvalidInputError",
    "JobDismissedError",
    "JobFailedError",
    "NoSuchJobError",
    "NoSuchOutputError",
    "NoSuchProcessError",
    "PayloadTooLargeError",
    "RasterNotServedError",
    "RateLimitUnavailableError",
    "RateLimitedError",
    "ResultNotReadyError",
    "ServiceError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "install_problem_handlers",
    "problem_response",
    "render_problem",
]

logger = logging.getLogger("cas_xr.service")

PROBLEM_MEDIA_TYPE = "application/problem+json"
_OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
_CAS = "urn:cas-xr:problem:"


class ServiceError(CasError):
    """An error the service answers with a problem response; the message is the detail.

    Parameters
    ----------
    detail
        What went wrong and how to fix it (shown to the caller).
    headers
        Extra response headers (``Retry-After``, ``WWW-Authenticate``...).
    """

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.headers = dict(headers or {})


class NoSuchProcessError(ServiceError):
    """No process has this id."""


class NoSuchJobError(ServiceError):
    """No job has this id (never existed, or was removed)."""


class NoSuchOutputError(ServiceError):
    """The job has no file output of this id."""


class ResultNotReadyError(ServiceError):
    """The job has not finished yet."""


class JobFailedError(ServiceError):
    """The job failed; the detail is its message."""


class JobDismissedError(ServiceError):
    """The job was dismissed before it finished: it has no results."""


class InvalidInputError(ServiceError, ValueError):
    """Unknown, missing or ill-typed process inputs."""


class RasterNotServedError(ServiceError, ValueError):
    """Raster output was asked for; it is only available in-process."""


class UnauthorizedError(ServiceError):
    """No valid API key or bearer token."""


class CsrfError(ServiceError):
    """A request authenticated by the session cookie lacks its CSRF token."""


class RateLimitedError(ServiceError):
    """Too many requests from this client in the last minute."""


class RateLimitUnavailableError(ServiceError):
    """The rate-limit storage (Redis) does not answer: requests are refused, not let by."""


class PayloadTooLargeError(ServiceError):
    """The request body is larger than allowed."""


class UnsupportedMediaTypeError(ServiceError):
    """The request body is not JSON."""


# (exception class, HTTP status, problem type, title); the first class that matches wins
PROBLEM_TABLE: tuple[tuple[type[Exception], int, str, str], ...] = (
    (NoSuchProcessError, 404, _OGC + "no-such-process", "No such process"),
    (NoSuchJobError, 404, _OGC + "no-such-job", "No such job"),
    (NoSuchOutputError, 404, _CAS + "no-such-output", "No such output"),
    (ResultNotReadyError, 404, _OGC + "result-not-ready", "Result not ready"),
    (JobDismissedError, 410, _CAS + "job-dismissed", "Job dismissed"),
    (JobFailedError, 500, _CAS + "job-failed", "Job failed"),
    (RasterNotServedError, 400, _CAS + "raster-not-served", "Raster output is not served"),
    (InvalidInputError, 400, _CAS + "invalid-input", "Invalid input"),
    (ValidationError, 400, _CAS + "invalid-input", "Invalid input"),
    (RequestValidationError, 400, _CAS + "invalid-request", "Invalid request"),
    (InvalidGeometryError, 400, _CAS + "invalid-input", "Invalid input"),
    (InvalidArgumentError, 400, _CAS + "invalid-input", "Invalid input"),
    (ArgumentTypeError, 400, _CAS + "invalid-input", "Invalid input"),
    (InvalidDatasetIdError, 400, _CAS + "invalid-dataset-id", "Invalid dataset id"),
    (UnknownProviderError, 400, _CAS + "unknown-dataset", "Unknown dataset"),
    (LimitExceededError, 400, _CAS + "limit-exceeded", "Limit exceeded"),
    (PayloadTooLargeError, 413, _CAS + "payload-too-large", "Payload too large"),
    (UnsupportedMediaTypeError, 415, _CAS + "unsupported-media-type", "Unsupported media type"),
    (UnauthorizedError, 401, _CAS + "unauthorized", "Unauthorized"),
    (CsrfError, 403, _CAS + "csrf-failed", "CSRF token missing or wrong"),
    (RateLimitedError, 429, _CAS + "rate-limited", "Too many requests"),
    (RateLimitUnavailableError, 503, _CAS + "rate-limit-unavailable", "Service unavailable"),
    (RequestTimeoutError, 504, _CAS + "timeout", "Request timed out"),
    (Exception, 500, _CAS + "internal-error", "Internal server error"),
)

_INTERNAL = "an internal error occurred; the server log has the details"


def _location(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(request)"


def _invalid_params(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "name": _location(e.get("loc", ())),
            "reason": str(e.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for e in errors
    ]


def problem_response(
    status: int,
    type_: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """An ``application/problem+json`` response.

    Parameters
    ----------
    status, type_, title, detail, instance
        The RFC 7807 members (``type_`` is ``type``).
    headers
        Extra response headers.
    extra
        Extension members (e.g. ``invalid-params``).
    """
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _lookup(exc: BaseException) -> tuple[int, str, str]:
    for cls, status, type_, title in PROBLEM_TABLE:
        if isinstance(exc, cls):
            return status, type_, title
    raise AssertionError("the table ends with Exception")  # pragma: no cover


def _unexpected(exc: BaseException, status: int) -> bool:
    expected = JobFailedError | RequestTimeoutError | RateLimitUnavailableError
    return status >= 500 and not isinstance(exc, expected)


def render_problem(exc: Exception, *, instance: str | None = None) -> JSONResponse:
    """The problem response for ``exc``, as the table says.

    Parameters
    ----------
    exc
        The error.
    instance
        The request path.
    """
    status, type_, title = _lookup(exc)
    extra: dict[str, Any] = {}
    headers = exc.headers if isinstance(exc, ServiceError) else None
    if isinstance(exc, ValidationError | RequestValidationError):
        extra["invalid-params"] = _invalid_params(exc.errors())
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in extra["invalid-params"])
    elif _unexpected(exc, status):
        detail = _INTERNAL
    else:
        detail = redact_text(str(exc))
    return problem_response(
        status, type_, title, detail, instance=instance, headers=headers, extra=extra
    )


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    if _unexpected(exc, _lookup(exc)[0]):
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return render_problem(exc, instance=request.url.path)


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        detail = f"there is no resource at {request.url.path}; the landing page / lists them"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers = {**headers, "Allow": ", ".join(_allowed_methods(request))}
    else:
        detail = str(exc.detail)
    return problem_response(
        exc.status_code,
        _CAS + phrase.lower().replace(" ", "-"),
        phrase,
        detail,
        instance=request.url.path,
        headers=headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API document lists for the request's path."""
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    for template, item in paths.items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            return sorted(method.upper() for method in item)
    return []


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem response.

    Parameters
    ----------
    app
        The application.
    """
    app.add_exception_handler(HTTPException, _handle_http)
    for cls, *_ in PROBLEM_TABLE:
        app.add_exception_handler(cls, _handle)
