"""The error the client raises, carrying the service's problem details."""

from __future__ import annotations

from typing import Any

import httpx

from cas_xr.errors import CasError

__all__ = ["ClientError"]


class ClientError(CasError):
    """A request to the service failed.

    Parameters
    ----------
    message
        What went wrong.
    status_code
        The HTTP status (None when the service could not be reached).
    problem
        The RFC 7807 problem details the service sent (``type``, ``title``, ``status``,
        ``detail``...), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.problem = problem or {}

    @property
    def type(self) -> str | None:
        """The problem type (a URI), if the service sent one."""
        return self.problem.get("type")

    @property
    def detail(self) -> str | None:
        """The problem detail, if the service sent one."""
        return self.problem.get("detail")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ClientError:
        """The error for an HTTP error response."""
        try:
            body = response.json()
        except ValueError:
            body = None
        problem = body if isinstance(body, dict) else {"detail": response.text[:500]}
        title = problem.get("title") or response.reason_phrase
        detail = problem.get("detail")
        request = response.request
        message = f"{request.method} {request.url} -> {response.status_code} {title}"
        return cls(
            f"{message}: {detail}" if detail else message,
            status_code=response.status_code,
            problem=problem,
        )
