"""Content negotiation: the API's resources as HTML pages for browsers, JSON for the rest.

:class:`HtmlFace` is ASGI middleware. A GET of one of the API's resources that asks for
HTML (``?f=html``, or an ``Accept`` header that prefers ``text/html``) is passed on to the
API as a JSON request (same authentication, rate limits and limits), and the JSON it
answers is rendered as a page. Results of ``extract`` / ``batch-extract`` jobs are also
offered as ``?f=csv`` and ``?f=parquet`` (GeoParquet). Every other request passes as it is.

Pages and downloads are made in a worker thread, never on the event loop: a results page
reads the job store (the job's inputs give its geometries), and rendering a long table or
writing GeoParquet is work the other requests should not wait behind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cas_xr.service._problems import PROBLEM_MEDIA_TYPE, problem_response
from cas_xr.service._web._negotiation import asked_format, without_format
from cas_xr.service._web._render import secure_headers
from cas_xr.service._web._results import (
    ATTRIBUTE_PROCESSES,
    attribute_rows,
    geometries_of,
    to_csv,
    to_parquet,
)
from cas_xr.service._web._views import Views

__all__ = ["HtmlFace"]

_PAGES = {
    "landing": re.compile(r"/"),
    "conformance": re.compile(r"/conformance"),
    "processes": re.compile(r"/processes"),
    "process": re.compile(r"/processes/(?P<process_id>[^/]+)"),
    "jobs": re.compile(r"/jobs"),
    "job": re.compile(r"/jobs/(?P<job_id>[^/]+)"),
    "results": re.compile(r"/jobs/(?P<job_id>[^/]+)/results"),
}
_DOWNLOADS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
_KEPT_HEADERS = ("retry-after", "www-authenticate")


def _page(path: str) -> tuple[str, dict[str, str]] | None:
    for name, pattern in _PAGES.items():
        match = pattern.fullmatch(path)
        if match is not None:
            return name, match.groupdict()
    return None


class HtmlFace:
    """ASGI middleware: HTML pages (and CSV/GeoParquet downloads) by content negotiation.

    Parameters
    ----------
    app
        The wrapped application (the API).
    views
        The pages.
    """

    def __init__(self, app: ASGIApp, views: Views) -> None:
        self.app = app
        self.views = views

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a page, a download, or pass the request on."""
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path = scope["path"].removeprefix(root) if root else scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        wanted = asked_format(query, headers.get("accept", ""))
        page = _page(path or "/")
        if page is None:  # not a page; its errors are, for a browser
            on_error = self._problem_pages(scope, receive, send) if wanted == "html" else send
            await self.app(scope, receive, on_error)
            return
        name, params = page
        formats = ("html", "json", *(_DOWNLOADS if name == "results" else ()))
        if wanted not in formats:
            refused = problem_response(
                400,
                "urn:cas-xr:problem:invalid-request",
                "Invalid request",
                f"f={wanted!r}: this resource is served as {', '.join(formats)}",
                instance=scope["path"],
            )
            await refused(scope, receive, send)
            return
        if wanted == "json":
            await self.app(scope, receive, _vary(send))
            return
        status, kept, body = await self._as_json(scope, receive, without_format(query))
        request = Request(scope, receive)
        response = await run_in_threadpool(
            self._respond, request, name, params, wanted, status, body
        )
        response.headers.update(kept)
        await response(scope, receive, send)

    async def _as_json(
        self, scope: Scope, receive: Receive, query: str
    ) -> tuple[int, dict[str, str], bytes]:
        """Pass the request to the API asking for JSON; its status, headers and body."""
        headers = [(k, v) for k, v in scope["headers"] if k != b"accept"]
        inner = {**scope, "headers": [*headers, (b"accept", b"application/json")]}
        inner["query_string"] = query.encode("latin-1")
        status, kept, chunks = 500, {}, []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key.decode("latin-1").lower() in _KEPT_HEADERS:
                        kept[key.decode("latin-1")] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(inner, receive, capture)
        return status, kept, b"".join(chunks)

    def _problem_pages(self, scope: Scope, receive: Receive, send: Send) -> Send:
        """``send``, except that a problem response becomes an error page."""
        start: Message = {}
        chunks: list[bytes] = []

        async def sending(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                media = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] < 400 or not media.startswith(PROBLEM_MEDIA_TYPE.encode()):
                    await send(message)
                    return
                start = message
                return
            if not start:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                request = Request(scope, receive)
                body = b"".join(chunks)
                response = await run_in_threadpool(
                    self._respond, request, "", {}, "html", start["status"], body
                )
                await response(scope, receive, send)

        return sending

    def _respond(
        self,
        request: Request,
        name: str,
        params: dict[str, str],
        wanted: str,
        status: int,
        body: bytes,
    ) -> Response:
        try:
            doc: Any = json.loads(body or b"{}")
        except ValueError:
            doc = {"title": "Error", "detail": "the service answered something unreadable"}
        if status >= 400:
            if status == 401 and self.views.renderer.options.auth_enabled:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                login = f"{request.scope.get('root_path', '')}/login?next={quote(target)}"
                return RedirectResponse(login, status_code=303)
            if wanted != "html":
                return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
            return self.views.problem(request, status, doc)
        if wanted in _DOWNLOADS:
            return self._download(request, params["job_id"], wanted, doc)
        pages: dict[str, Callable[..., Response]] = {
            "landing": self.views.landing,
            "conformance": self.views.conformance,
            "processes": self.views.processes,
            "process": self.views.process,
            "jobs": self.views.jobs,
            "job": self.views.job,
        }
        if name == "results":
            return self.views.results(request, params["job_id"], doc)
        return pages[name](request, doc)

    def _download(self, request: Request, job_id: str, wanted: str, doc: Any) -> Response:
        store = self.views.state.store
        record = store.get(job_id)
        process_id = record.process_id if record else ""
        if process_id not in ATTRIBUTE_PROCESSES or not isinstance(doc.get("response"), dict):
            return problem_response(
                400,
                "urn:cas-xr:problem:invalid-request",
                "Invalid request",
                f"f={wanted}: only the results of extract and batch-extract jobs are "
                "offered as CSV and GeoParquet; ask for f=json",
                instance=request.url.path,
            )
        inputs = store.inputs(job_id) or {}
        geometries = geometries_of(process_id, inputs)
        rows = attribute_rows(process_id, doc["response"], [label for label, _ in geometries])
        if wanted == "csv":
            data: bytes = to_csv(rows).encode("utf-8")
        else:
            data = to_parquet(rows, geometries, str(inputs.get("geometry_crs") or "EPSG:4326"))
        disposition = f'attachment; filename="{job_id}-results.{wanted}"'
        headers = {**secure_headers(), "Content-Disposition": disposition}
        return Response(data, media_type=_DOWNLOADS[wanted], headers=headers)


def _vary(send: Send) -> Send:
    """``send`` adding ``Vary: Accept`` (the resource has an HTML page too)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"vary", b"Accept")]
        await send(message)

    return sending
