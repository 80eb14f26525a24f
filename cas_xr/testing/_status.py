"""A server that answers every request with one HTTP status (e.g. 401 or 403)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cas_xr.errors import InvalidArgumentError
from cas_xr.testing._server import running

__all__ = ["serve_status"]


class _StatusHandler(BaseHTTPRequestHandler):
    server: _StatusServer

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        body = f"{self.server.status} {self.responses.get(self.server.status, ('',))[0]}\n"
        data = body.encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if self.server.status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="cas_xr test"')
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass


class _StatusServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, host: str, port: int) -> None:
        super().__init__((host, port), _StatusHandler)
        self.status = status


@contextmanager
def serve_status(status: int, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve one HTTP status for every path, in a background thread.

    Stands in for a provider that refuses anonymous access (401, 403) or fails (500...),
    e.g. to test :func:`cas_xr.check_providers`.

    Parameters
    ----------
    status : int
        The status of every answer (400-599).
    host : str, default "127.0.0.1"
        Address to bind.
    port : int, default 0
        Port to bind; 0 picks a free port.

    Yields
    ------
    str
        Base URL, ending with ``/``.

    Raises
    ------
    cas_xr.errors.InvalidArgumentError
        If ``status`` is not an HTTP error status.

    Examples
    --------
    >>> import requests
    >>> with serve_status(403) as url:
    ...     requests.get(url + "catalog.json").status_code
    403
    """
    if not 400 <= status < 600:
        raise InvalidArgumentError(f"status must be an HTTP error status (400-599), got {status}")
    server = _StatusServer(status, host, port)
    address, bound = server.server_address[:2]
    with running(server, f"serve_status:{status}"):
        yield f"http://{address!s}:{bound}/"
