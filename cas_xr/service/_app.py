"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

import cas_xr as cas
from cas_xr.config import Settings
from cas_xr.service._demo import demo_processes
from cas_xr.service._options import ServiceOptions
from cas_xr.service._poll import FastResults, FastStatus
from cas_xr.service._problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from cas_xr.service._processes import cas_processes
from cas_xr.service._routes import api_routes, problems, public_routes
from cas_xr.service._schema import openapi30_document
from cas_xr.service._security import BodySizeLimit, RateLimiter, authenticator
from cas_xr.service._state import ServiceState
from cas_xr.service._submit import FastSubmit
from cas_xr.service._table import extract_table_process
from cas_xr.service._web import install_web

__all__ = ["create_app", "create_testing_app"]

logger = logging.getLogger("cas_xr.service")

_DESCRIPTION = """\
Zonal statistics with units, quality flags, coverage and provenance, served as
[OGC API - Processes](https://ogcapi.ogc.org/processes/) 1.0 processes and jobs.
Statistics only: rasters are never served over HTTP.
"""


def _problem_documents(document: dict[str, Any]) -> dict[str, Any]:
    """Document error responses as ``application/problem+json``; drop FastAPI's 422s."""
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for code, response in responses.items():
                if int(code) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: problem}
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def create_app(settings: Settings | None = None, *, testing: bool = False) -> FastAPI:
    """Build the OGC API - Processes application.

    Parameters
    ----------
    settings
        The service settings (job store, authentication, limits, CORS); default: the
        current :func:`cas_xr.get_settings`. The computations use the facade, which
        reads :func:`cas_xr.get_settings` itself.
    testing
        Also offer the demo processes ``sleep_a_while`` and ``primes_between``.

    Returns
    -------
    fastapi.FastAPI
        The application; serve it with uvicorn (``cas-xr serve`` does).

    Examples
    --------
    >>> import cas_xr as cas
    >>> from cas_xr.service import create_app
    >>> app = create_app(cas.Settings(jobs_db=":memory:"), testing=True)
    >>> sorted(path for path in app.openapi()["paths"] if path.startswith("/jobs"))
    ['/jobs', '/jobs/{jobId}', '/jobs/{jobId}/results']
    """
    options = ServiceOptions.from_settings(settings or cas.get_settings())
    processes = [*cas_processes(), extract_table_process(), *(demo_processes() if testing else [])]
    state = ServiceState.open(options, processes)
    limiter = RateLimiter(options, state.sessions) if options.rate_limit_enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("cas_xr service: %s", await run_in_threadpool(state.executor))
        if state.workers is not None:
            state.workers.start()
        if limiter is not None:
            await limiter.check_storage()
        state.recover()
        yield
        state.close()

    app = FastAPI(
        title="cas_xr",
        description=_DESCRIPTION,
        version=cas.__version__,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc come from install_web, without a CDN
        redoc_url=None,
        dependencies=[] if limiter is None else [Depends(limiter)],
        responses=problems(500) if limiter is None else problems(429, 500, 503),
    )
    app.state.cas = state
    install_problem_handlers(app)
    app.include_router(public_routes())
    protected = [Depends(authenticator(options, state.sessions))] if options.auth_enabled else []
    app.include_router(
        api_routes(state),
        dependencies=protected,
        responses=problems(401, 403) if options.auth_enabled else None,
    )
    # the fast paths of execute, status and results requests, inside the others
    app.add_middleware(FastResults, state=state, limiter=limiter)
    app.add_middleware(FastStatus, state=state, limiter=limiter)
    app.add_middleware(FastSubmit, state=state, limiter=limiter)
    install_web(app, state)
    app.add_middleware(BodySizeLimit, max_bytes=options.max_request_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(options.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["Location", "Retry-After", "Preference-Applied"],
    )
    if options.trusted_proxies:  # their X-Forwarded-For names the client
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(options.trusted_proxies))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = openapi30_document(_problem_documents(document))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_testing_app() -> FastAPI:
    """:func:`create_app` with ``testing=True`` (a factory for ``uvicorn --factory``)."""
    return create_app(testing=True)
