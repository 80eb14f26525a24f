"""A server that does no work: the floor of ``service_load.py``'s load generator.

Serve it as ``python -m uvicorn noop_service:app --app-dir benchmarks`` (uvicorn picks
httptools and uvloop when they are installed, as ``cas-xr serve`` does), with
``NOOP_RESULT`` naming a file that holds a real job's results document. A bare ASGI app
(no framework, no job store, nothing computed) answers the flow of one ``extract`` job as
the service would, and at once: an execute request 201 with ``Location`` and an
``accepted`` status document, a status request ``successful``, the results the canned
document, ``/jobs`` every job it created, ``/conformance`` for the start-up check. What
the load generator measures against it is its own cost and the network stack's.
"""

from __future__ import annotations

import json
import os
from typing import Any

_JSON = [(b"content-type", b"application/json")]
_RESULTS = b""
_created: list[str] = []


def _status(job_id: str, status: str, base: str) -> dict[str, Any]:
    href = f"{base}jobs/{job_id}"
    links = [{"href": href, "rel": "self", "type": "application/json", "title": "job status"}]
    return {"jobID": job_id, "processID": "extract", "status": status, "type": "process",
            "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
            "links": links}  # fmt: skip


async def _answer(send: Any, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON, *length, *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI application."""
    global _RESULTS
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                with open(os.environ["NOOP_RESULT"], "rb") as f:
                    _RESULTS = f.read()
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode()
    base, path = f"http://{host}/", scope["path"]
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
        job_id = f"job_{len(_created)}"
        _created.append(job_id)
        document = json.dumps(_status(job_id, "accepted", base)).encode()
        await _answer(send, 201, document, [(b"location", f"{base}jobs/{job_id}".encode())])
    elif path == "/conformance":
        await _answer(send, 200, b'{"conformsTo": []}')
    elif path == "/jobs":
        jobs = [_status(job_id, "successful", base) for job_id in _created]
        await _answer(send, 200, json.dumps({"jobs": jobs, "links": []}).encode())
    elif path.endswith("/results"):
        await _answer(send, 200, _RESULTS)
    else:
        job_id = path.rsplit("/", 1)[-1]
        await _answer(send, 200, json.dumps(_status(job_id, "successful", base)).encode())
