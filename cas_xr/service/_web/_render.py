"""Templates (Jinja2, autoescaped), the security headers of every page, and who is signed in."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from cas_xr.service._options import ServiceOptions
from cas_xr.service._security import ApiKeys
from cas_xr.service._sessions import COOKIE, Sessions

__all__ = ["DOCS_CSP", "PAGE_CSP", "Renderer"]

_COMMON_CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The Content-Security-Policy of the service's own pages: nothing inline runs.
PAGE_CSP = f"{_COMMON_CSP}; style-src 'self'"
#: Swagger UI and ReDoc set inline styles, and ReDoc searches in a worker.
DOCS_CSP = f"{_COMMON_CSP}; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:"


def _number(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (as text), or the value as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


class Renderer:
    """Renders the templates of ``cas_xr/service/templates`` for one application.

    Parameters
    ----------
    options
        The service options (``auth_enabled``, the API keys).
    sessions
        The browser sessions.
    """

    def __init__(self, options: ServiceOptions, sessions: Sessions) -> None:
        self.options = options
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("cas_xr.service", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["number"] = _number
        self.sessions = sessions
        self.keys = ApiKeys(options.api_keys, options.api_key_header)

    def __repr__(self) -> str:
        return f"Renderer(auth_enabled={self.options.auth_enabled})"

    def signed_in(self, request: Request) -> bool:
        """Whether ``request`` may use the API: auth off, a valid key, or a session."""
        if not self.options.auth_enabled:
            return True
        if self.keys.identity(self.keys.presented(request)) is not None:
            return True
        return self.sessions.identity(request.cookies.get(COOKIE)) is not None

    def context(self, request: Request) -> dict[str, Any]:
        """What every page shows: the root path, the sign-in state, the CSRF token."""
        cookie = request.cookies.get(COOKIE)
        session = cookie if self.sessions.identity(cookie) is not None else None
        return {
            "root": request.scope.get("root_path", "").rstrip("/"),
            "auth": self.options.auth_enabled,
            "session": session is not None,
            "csrf": self.sessions.csrf_token(session) if session else "",
        }

    def page(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        csp: str = PAGE_CSP,
        **values: Any,
    ) -> HTMLResponse:
        """``template`` rendered with ``values``, and the security headers."""
        body = self.env.get_template(template).render(**self.context(request), **values)
        return HTMLResponse(
            body, status_code=status_code, headers={**secure_headers(csp), **(headers or {})}
        )


def secure_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    """The headers of every HTML page."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Vary": "Accept, Cookie",
    }
