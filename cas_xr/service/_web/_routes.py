"""The pages that are not API resources: log in / out, the run page, Swagger UI and ReDoc."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

import cas_xr as cas
from cas_xr.models import AggregationMethod
from cas_xr.service._sessions import COOKIE, CSRF_FIELD, LOGIN_COOKIE
from cas_xr.service._web._render import DOCS_CSP, Renderer

__all__ = ["web_routes"]

#: ReDoc's script shows Redocly's logo from their CDN in its menu; it is served with our own.
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _redoc_script(folder: Path) -> bytes:
    """``redoc.standalone.js`` of ``folder``, showing the service's icon instead of the CDN's."""
    script = (folder / "redoc.standalone.js").read_bytes()
    return script.replace(_REDOC_LOGO.encode(), b"static/favicon.svg")


def _local(target: str | None) -> str:
    """``target`` if it is a path of this site, else ``/`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def web_routes(renderer: Renderer, assets: Path) -> APIRouter:
    """The routes of the login form, the run page and the API documentation pages.

    Parameters
    ----------
    renderer
        The template renderer.
    assets
        The folder of Swagger UI's and ReDoc's scripts.
    """
    router = APIRouter(include_in_schema=False)
    sessions = renderer.sessions

    def _login_form(
        request: Request, target: str | None, *, error: str = "", status_code: int = 200
    ) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or sessions.login_nonce()
        response = renderer.page(
            request,
            "login.html",
            status_code=status_code,
            title="Log in",
            login_token=sessions.login_token(nonce),
            next=_local(target),
            error=error,
        )
        secure = request.url.scheme == "https"
        response.set_cookie(
            LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=secure, path="/"
        )
        return response

    @router.get("/login")
    def login_page(request: Request) -> Response:
        if not renderer.options.auth_enabled:
            return RedirectResponse("./", status_code=303)
        return _login_form(request, request.query_params.get("next"))

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not renderer.options.auth_enabled:
            return RedirectResponse("./", status_code=303)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token, target = form.get(CSRF_FIELD, [None])[0], form.get("next", [None])[0]
        if not sessions.check_login(request.cookies.get(LOGIN_COOKIE), token):
            message = "the form expired or did not come from this site: try again"
            return _login_form(request, target, error=message, status_code=403)
        identity = renderer.keys.identity(form.get("api_key", [None])[0])
        if identity is None:
            return _login_form(request, target, error="that API key is not valid", status_code=401)
        root = request.scope.get("root_path", "").rstrip("/")
        response = RedirectResponse(root + _local(target), status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.issue(identity),
            max_age=sessions.lifetime_s,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        cookie = request.cookies.get(COOKIE)
        home = RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)
        if cookie is None:  # no session sent (e.g. a form on another site): nothing to end
            return home
        if not sessions.check_csrf(cookie, form.get(CSRF_FIELD, [None])[0]):
            return renderer.page(
                request,
                "problem.html",
                status_code=403,
                title="CSRF token missing or wrong",
                problem={"status": 403, "detail": "log out from the service's own pages"},
            )
        await run_in_threadpool(sessions.end, cookie)  # for every copy of the cookie
        home.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return home

    @router.get("/run")
    async def run_page(request: Request) -> Response:
        if not renderer.signed_in(request):
            login = f"{request.scope.get('root_path', '')}/login?next={quote('/run')}"
            return RedirectResponse(login, status_code=303)
        datasets = await run_in_threadpool(cas.list_datasets)
        return renderer.page(
            request,
            "run.html",
            title="Run a computation",
            datasets=datasets,
            statistics=[a.value for a in AggregationMethod],
        )

    @router.get("/docs")
    def swagger_ui(request: Request) -> Response:
        return renderer.page(request, "swagger.html", csp=DOCS_CSP, title="API documentation")

    @router.get("/static/docs/redoc.standalone.js")
    def redoc_script() -> Response:
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(_redoc_script(assets), media_type="text/javascript", headers=headers)

    @router.get("/redoc")
    def redoc(request: Request) -> Response:
        return renderer.page(request, "redoc.html", csp=DOCS_CSP, title="API documentation")

    return router
