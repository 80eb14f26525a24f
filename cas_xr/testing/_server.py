"""A local static-file HTTP server with byte-range support (enough for GDAL's /vsicurl/)."""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import os
import pathlib
import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

__all__ = ["RangeHTTPServer", "RangeRequestHandler", "running", "serve_folder"]

_LOG = logging.getLogger(__name__)
_RANGE = re.compile(r"^bytes=\s*(\d*)\s*-\s*(\d*)\s*$")
_CHUNK = 64 * 1024


class _Unsatisfiable(Exception):
    """A syntactically valid Range header that selects no byte of the file."""


def _parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Interpret an HTTP ``Range`` header for a file of ``size`` bytes.

    Only single ranges (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``) are honoured; as
    RFC 9110 allows, anything else is ignored and the whole file is served.

    Parameters
    ----------
    header : str or None
        Value of the ``Range`` header.
    size : int
        Size of the file in bytes.

    Returns
    -------
    tuple of int or None
        Inclusive ``(first, last)`` byte positions, or None to serve the whole file.

    Raises
    ------
    _Unsatisfiable
        If the range is valid but selects no byte of the file.
    """
    match = _RANGE.match(header or "")
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last < first:
        return None
    if first >= size:
        raise _Unsatisfiable
    return first, min(last, size - 1)


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Serve the files of a directory over HTTP/1.1 with single byte-range support.

    ``GET`` and ``HEAD`` are answered with ``Accept-Ranges: bytes``; a satisfiable
    ``Range: bytes=a-b`` gives ``206 Partial Content`` with ``Content-Range``, an
    unsatisfiable one ``416``. Directories, missing files and paths that resolve
    outside the served directory (``..``, symbolic links) give ``404``. Requests are
    logged to the ``cas_xr.testing._server`` logger at DEBUG level.

    Parameters
    ----------
    *args : Any
        Passed to :class:`http.server.SimpleHTTPRequestHandler`.
    directory : str or os.PathLike, optional
        Directory to serve; the current directory by default.
    **kwargs : Any
        Passed to :class:`http.server.SimpleHTTPRequestHandler`.
    """

    protocol_version = "HTTP/1.1"
    # the headers and the body are written apart: with Nagle's algorithm on, a kept-alive
    # connection's answer waits for the client's delayed ACK (40 ms on Linux), which no
    # real server (nginx, object stores) makes its clients wait
    disable_nagle_algorithm = True

    def __init__(
        self, *args: Any, directory: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, directory=os.fspath(directory or os.getcwd()), **kwargs)

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD request."""
        self._serve(with_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Log a request at DEBUG level instead of writing to stderr.

        Parameters
        ----------
        format : str
            ``%``-style format string.
        *args : Any
            Values for ``format``.
        """
        _LOG.debug("%s - " + format, self.address_string(), *args)

    def _resolve(self) -> pathlib.Path | None:
        root = pathlib.Path(self.directory).resolve()
        try:
            path = pathlib.Path(self.translate_path(self.path)).resolve()
        except (OSError, ValueError):
            return None
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def _serve(self, *, with_body: bool) -> None:
        path = self._resolve()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return
        with path.open("rb") as stream:
            stat = os.fstat(stream.fileno())
            size = stat.st_size
            try:
                byte_range = _parse_byte_range(self.headers.get("Range"), size)
            except _Unsatisfiable:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = byte_range if byte_range is not None else (0, size - 1)
            length = last - first + 1
            if byte_range is None:
                self.send_response(HTTPStatus.OK)
            else:
                self.send_response(HTTPStatus.PARTIAL_CONTENT)
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            self.end_headers()
            if with_body and length > 0:
                stream.seek(first)
                _copy_bytes(stream, self.wfile, length)


def _copy_bytes(source: BinaryIO, target: Any, length: int) -> None:
    remaining = length
    try:
        while remaining > 0:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                break
            target.write(chunk)
            remaining -= len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        _LOG.debug("client closed the connection before the end of the body")


class RangeHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server of a directory's files with byte-range support.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory to serve.
    host : str, default "127.0.0.1"
        Address to bind; an IPv6 address (containing ``:``) binds an IPv6 socket.
    port : int, default 0
        Port to bind; 0 picks a free port.

    Examples
    --------
    >>> import threading
    >>> server = RangeHTTPServer(".")  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()  # doctest: +SKIP
    >>> server.url  # doctest: +SKIP
    'http://127.0.0.1:40123/'
    """

    daemon_threads = True

    def __init__(
        self, directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        folder = pathlib.Path(directory)
        if not folder.is_dir():
            raise ValueError(f"not a directory: {folder}")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        handler = functools.partial(RangeRequestHandler, directory=folder)
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        """Bind the socket without the reverse DNS lookup of :class:`http.server.HTTPServer`."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def url(self) -> str:
        """Base URL of the served directory, ending with ``/``.

        Returns
        -------
        str
            For example ``"http://127.0.0.1:40123/"``.
        """
        host = self.server_name
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.server_port}/"


@contextlib.contextmanager
def running(server: socketserver.BaseServer, name: str) -> Iterator[None]:
    """Serve ``server`` on a daemon thread named ``name``; shut it down and close it after.

    Parameters
    ----------
    server
        A bound server (e.g. an ``http.server.ThreadingHTTPServer``).
    name
        The thread's name (shows which server a thread dump's thread serves).
    """
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_folder(
    path: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve a directory over HTTP, with byte ranges, in a background thread.

    The server is shut down and its socket closed when the context exits.

    Parameters
    ----------
    path : str or os.PathLike
        Directory to serve.
    host : str, default "127.0.0.1"
        Address to bind.
    port : int, default 0
        Port to bind; 0 picks a free port.

    Yields
    ------
    str
        Base URL of the directory, ending with ``/`` (e.g. ``"http://127.0.0.1:40123/"``).

    Raises
    ------
    ValueError
        If ``path`` is not a directory.

    Examples
    --------
    >>> with serve_folder("data") as url:  # doctest: +SKIP
    ...     rasterio.open("/vsicurl/" + url + "dem.tif")
    """
    server = RangeHTTPServer(path, host=host, port=port)
    with running(server, f"serve_folder:{server.url}"):
        yield server.url
