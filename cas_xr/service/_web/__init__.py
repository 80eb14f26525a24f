"""The service's web face: HTML pages for browsers, working offline.

The API's resources are also pages (content negotiation, :mod:`._face`); a login form
(with ``auth_enabled``), a page to run ``extract`` / ``batch-extract``, and Swagger UI and
ReDoc served from installed packages (the assets of ``fastapi-offline``; never a CDN).
Templates are in ``cas_xr/service/templates``, scripts and styles in
``cas_xr/service/static``; no page runs an inline script (``script-src 'self'``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cas_xr.errors import MissingDependencyError
from cas_xr.service._state import ServiceState
from cas_xr.service._web._face import HtmlFace
from cas_xr.service._web._render import Renderer
from cas_xr.service._web._routes import web_routes
from cas_xr.service._web._views import Views

__all__ = ["install_web"]

_STATIC = Path(__file__).parents[1] / "static"


def _docs_assets() -> str:
    """The folder of Swagger UI's and ReDoc's scripts in the installed ``fastapi-offline``."""
    try:
        return str(files("fastapi_offline") / "static")
    except ModuleNotFoundError as err:
        raise MissingDependencyError(
            "the cas_xr service's API documentation pages need fastapi-offline (the "
            "'service' extra): pip install 'cas-xr[service]'"
        ) from err


def install_web(app: FastAPI, state: ServiceState) -> None:
    """Add the pages, their static files and the content negotiation to ``app``.

    Parameters
    ----------
    app
        The application (built with ``docs_url=None, redoc_url=None``).
    state
        The service state.
    """
    renderer = Renderer(state.options, state.sessions)
    assets = _docs_assets()
    app.include_router(web_routes(renderer, Path(assets)))  # before the mounts: it overrides one
    app.mount("/static/docs", StaticFiles(directory=assets), name="docs-assets")
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    app.add_middleware(HtmlFace, views=Views(renderer, state))
