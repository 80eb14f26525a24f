"""An HTTP server on 127.0.0.1 that behaves like a distant one: a set round trip and bandwidth.

Object stores answer a range request in tens of milliseconds, loopback in microseconds, so
remote reads measured against a plain local server say nothing about the network.
:class:`LatencyHTTPServer` sleeps a set time before answering each request (the round trip),
paces every response body at a set number of bytes per second (the bandwidth), and counts
what its clients asked for: requests, body bytes, the peak number of requests in flight,
and each request's path and byte ranges (to map onto a TIFF's tiles, see
:func:`~cas_xr.testing.tiff_tiles`). It serves a directory's files (``Range`` requests with
one or several ranges, ``HEAD``, keep-alive) or relays every request to another local HTTP
server (e.g. :func:`~cas_xr.testing.serve_wcs`) with the same delays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import functools
import http.client
import os
import pathlib
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, BinaryIO

from cas_xr.errors import InvalidArgumentError
from cas_xr.testing._server import RangeHTTPServer, RangeRequestHandler, running

__all__ = ["LatencyHTTPServer", "RequestRecord", "serve_with_latency"]

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
_CHUNK = 64 * 1024
_UPSTREAM_TIMEOUT_S = 120
# headers that belong to one connection, not to the message (RFC 9110 section 7.6.1)
_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "date", "server",
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request answered by a :class:`LatencyHTTPServer`.

    Attributes
    ----------
    method
        ``"GET"`` or ``"HEAD"``.
    path
        The request target as sent (path and query string, still percent-encoded).
    status
        HTTP status of the answer.
    ranges
        Inclusive ``(first, last)`` byte positions of the resource sent in the body, in the
        order sent: one per part of a multi-range answer, ``(0, size - 1)`` for a whole
        body, none for ``HEAD``, errors and relayed multi-range answers.
    bytes_sent
        Body bytes sent (multipart framing included).
    started, finished
        :func:`time.monotonic` when the request was read and when its answer was sent.
    client
        The client's address and port: the connection it came on (which process sent
        it can be told from the port, e.g. with ``psutil``).
    """

    method: str
    path: str
    status: int
    ranges: tuple[tuple[int, int], ...]
    bytes_sent: int
    started: float
    finished: float
    client: tuple[str, int] = ("", 0)


class _Unsatisfiable(Exception):
    """A ``Range`` header none of whose ranges selects a byte of the file."""


def _parse_ranges(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Inclusive byte ranges selected by a ``Range`` header, None to send the whole file.

    Ranges are kept as asked (order, overlaps); ranges past the end are dropped. A header
    that is not a valid ``bytes=`` set is ignored, as RFC 9110 allows.

    Raises
    ------
    _Unsatisfiable
        If the header is valid but no range selects a byte of the file.
    """
    unit, _, specs = (header or "").partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    ranges = []
    for spec in specs.split(","):
        match = _SPEC.match(spec)
        if match is None or match.groups() == ("", ""):
            return None
        first_text, last_text = match.groups()
        if not first_text:
            suffix = int(last_text)
            if suffix > 0 and size > 0:
                ranges.append((max(size - suffix, 0), size - 1))
            continue
        first = int(first_text)
        last = int(last_text) if last_text else max(first, size - 1)
        if last < first:
            return None
        if first < size:
            ranges.append((first, min(last, size - 1)))
    if not ranges:
        raise _Unsatisfiable
    return ranges


class _Pacer:
    """Writes a body in chunks at ``bandwidth``; calls ``last`` just before its last chunk."""

    def __init__(self, target: Any, bandwidth: float | None, last: Callable[[], None]) -> None:
        self.target = target
        self.bandwidth = bandwidth
        self.last = last
        self.sent = 0
        self.remaining = 0
        self.started: float | None = None  # when the first byte was due

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self.started is None:
            self.started = time.monotonic()
        for start in range(0, len(view), _CHUNK):
            chunk = view[start : start + _CHUNK]
            if self.bandwidth:
                due = (self.sent + len(chunk)) / self.bandwidth
                wait = due - (time.monotonic() - self.started)
                if wait > 0:
                    time.sleep(wait)
            self.sent += len(chunk)
            self.remaining -= len(chunk)
            if self.remaining <= 0:
                self.last()  # counted before the client can have it all
            self.target.write(chunk)

    def copy(self, source: BinaryIO, first: int, length: int) -> None:
        """Write ``length`` bytes of ``source`` from position ``first``."""
        source.seek(first)
        while length > 0:
            chunk = source.read(min(_CHUNK, length))
            if not chunk:
                break
            self.write(chunk)
            length -= len(chunk)


class _LatencyHandler(RangeRequestHandler):
    """Answers as :class:`RangeRequestHandler` does, after the round trip, at the bandwidth.

    A request is recorded just before the last byte of its answer is sent, so a client that
    has read its answer finds it counted.
    """

    server: LatencyHTTPServer
    _status: int
    _ranges: list[tuple[int, int]]

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD request."""
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        self._status, self._ranges, self._done = 0, [], False
        self._started = self.server._enter()
        self._pacer = _Pacer(self.wfile, self.server.bandwidth, self._finish)
        try:
            time.sleep(self.server.round_trip)
            if self.server.upstream is None:
                self._send_file(with_body=with_body)
            else:
                self._relay(with_body=with_body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            host, port = self.client_address[:2]
            record = RequestRecord(
                self.command, self.path, self._status, tuple(self._ranges), self._pacer.sent,
                self._started, time.monotonic(), (str(host), int(port)),
            )  # fmt: skip
            self.server._leave(record)

    def _head(
        self,
        status: int,
        ranges: list[tuple[int, int]],
        length: int,
        headers: list[tuple[str, str]],
        *,
        with_body: bool,
    ) -> None:
        """Send the status line and headers of an answer whose body has ``length`` bytes."""
        self._status, self._ranges = status, ranges if with_body and length else []
        self._pacer.remaining = length if with_body else 0
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        if not self._pacer.remaining:
            self._finish()  # the headers are the whole answer
        self.end_headers()

    def _send_text(self, status: int, text: str, *, with_body: bool) -> None:
        body = text.encode("utf-8")
        content = [("Content-Type", "text/plain; charset=utf-8")]
        self._head(status, [], len(body), content, with_body=with_body)
        if with_body:
            self._pacer.write(body)

    def _send_file(self, *, with_body: bool) -> None:
        path = self._resolve()
        if path is None:
            self._send_text(HTTPStatus.NOT_FOUND, "file not found", with_body=with_body)
            return
        with path.open("rb") as stream:
            stat = os.fstat(stream.fileno())
            size = stat.st_size
            headers = [
                ("Accept-Ranges", "bytes"),
                ("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True)),
            ]
            try:
                ranges = _parse_ranges(self.headers.get("Range"), size)
            except _Unsatisfiable:
                headers.append(("Content-Range", f"bytes */{size}"))
                self._head(416, [], 0, headers, with_body=with_body)
                return
            kind = self.guess_type(str(path))
            if ranges is None or len(ranges) == 1:
                first, last = ranges[0] if ranges else (0, size - 1)
                if ranges:
                    headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
                status = HTTPStatus.OK if ranges is None else HTTPStatus.PARTIAL_CONTENT
                length = last - first + 1
                headers.append(("Content-Type", kind))
                self._head(status, [(first, last)], length, headers, with_body=with_body)
                if with_body:
                    self._pacer.copy(stream, first, length)
                return
            boundary = secrets.token_hex(12)
            heads = [
                f"--{boundary}\r\nContent-Type: {kind}\r\n"
                f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode("ascii")
                for a, b in ranges
            ]
            tail = f"--{boundary}--\r\n".encode("ascii")
            length = len(tail) + sum(
                len(head) + b - a + 3 for head, (a, b) in zip(heads, ranges, strict=True)
            )
            headers.append(("Content-Type", f"multipart/byteranges; boundary={boundary}"))
            self._head(HTTPStatus.PARTIAL_CONTENT, ranges, length, headers, with_body=with_body)
            if with_body:
                for head, (first, last) in zip(heads, ranges, strict=True):
                    self._pacer.write(head)
                    self._pacer.copy(stream, first, last - first + 1)
                    self._pacer.write(b"\r\n")
                self._pacer.write(tail)

    def _relay(self, *, with_body: bool) -> None:
        host, port = self.server.upstream or ("", 0)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(host, port, timeout=_UPSTREAM_TIMEOUT_S)
        try:
            connection.request(self.command, self.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except OSError as err:
            message = f"upstream {host}:{port} failed: {err}"
            self._send_text(HTTPStatus.BAD_GATEWAY, message, with_body=with_body)
            return
        finally:
            connection.close()
        relayed = [
            (name, value)
            for name, value in response.getheaders()
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
        ]
        length = len(body) if with_body else int(response.getheader("Content-Length") or 0)
        ranges = _relayed_ranges(response, len(body))
        self._head(response.status, ranges, length, relayed, with_body=with_body)
        if with_body:
            self._pacer.write(body)


def _relayed_ranges(response: http.client.HTTPResponse, length: int) -> list[tuple[int, int]]:
    if response.status == HTTPStatus.OK:
        return [(0, length - 1)] if length else []
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/", response.getheader("Content-Range") or "")
    return [(int(match[1]), int(match[2]))] if match else []


def _origin(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in {"", "/"}:
        raise InvalidArgumentError(
            f"upstream must be the origin of a plain HTTP server such as "
            f"'http://127.0.0.1:8080', got {url!r}; its paths are relayed as asked"
        )
    return parts.hostname, parts.port or 80


class LatencyHTTPServer(RangeHTTPServer):
    """Threaded HTTP server that answers like a distant one and counts what was asked.

    Every ``GET`` or ``HEAD`` is answered after sleeping ``round_trip`` seconds, with its
    body paced at ``bandwidth`` bytes per second (per response, as a single connection to
    an object store is); both may be changed while the server runs. With ``directory`` it
    serves that folder's files: one range gives ``206`` with ``Content-Range``, several a
    ``multipart/byteranges`` body. With ``upstream`` it relays each request (path, query,
    headers) to that server and its answer back, with the same delays. Connections are kept
    alive; each is served by its own thread, so many requests can be in flight.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Folder to serve; give it or ``upstream``.
    upstream : str, optional
        Origin of an HTTP server to relay to, e.g. ``"http://127.0.0.1:8080"``.
    round_trip : float, default 0.0
        Seconds slept before answering each request.
    bandwidth : float, optional
        Bytes per second of each response body; unlimited when None.
    host : str, default "127.0.0.1"
        Address to bind.
    port : int, default 0
        Port to bind; 0 picks a free port.

    Raises
    ------
    cas_xr.errors.InvalidArgumentError
        If not exactly one of ``directory`` and ``upstream`` is given, ``directory`` is not
        a folder, ``upstream`` is not an HTTP origin, ``round_trip`` is negative or
        ``bandwidth`` not positive. Also a :class:`ValueError`.

    See Also
    --------
    serve_with_latency : run one in a background thread.
    """

    request_queue_size = 512  # a burst of new connections must not overflow the backlog

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        upstream: str | None = None,
        round_trip: float = 0.0,
        bandwidth: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if (directory is None) == (upstream is None):
            raise InvalidArgumentError("give either a directory to serve or an upstream origin")
        self.upstream = None if upstream is None else _origin(upstream)
        self.round_trip = _check_round_trip(round_trip)
        self.bandwidth = _check_bandwidth(bandwidth)
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._in_flight = self._peak = 0
        folder = pathlib.Path(directory if directory is not None else os.curdir)
        try:
            super().__init__(folder, host=host, port=port)
        except ValueError as err:
            raise InvalidArgumentError(str(err)) from None
        self.RequestHandlerClass = functools.partial(_LatencyHandler, directory=folder)

    def _enter(self) -> float:
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        return time.monotonic()

    def _leave(self, record: RequestRecord) -> None:
        with self._lock:
            self._in_flight -= 1
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        """Requests answered since the last :meth:`reset`, in the order they finished.

        Returns
        -------
        list of RequestRecord
            A copy.
        """
        with self._lock:
            return list(self._records)

    @property
    def requests(self) -> int:
        """Number of requests answered since the last :meth:`reset`.

        Returns
        -------
        int
        """
        with self._lock:
            return len(self._records)

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent since the last :meth:`reset`.

        Returns
        -------
        int
        """
        with self._lock:
            return sum(r.bytes_sent for r in self._records)

    @property
    def in_flight(self) -> int:
        """Requests being answered now (round trip included).

        Returns
        -------
        int
        """
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """Most requests in flight at once since the last :meth:`reset`.

        Returns
        -------
        int
        """
        with self._lock:
            return self._peak

    def reset(self) -> None:
        """Forget the requests answered so far; the peak restarts from those in flight now."""
        with self._lock:
            self._records.clear()
            self._peak = self._in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is in flight (e.g. those of a client that was killed).

        Parameters
        ----------
        timeout : float, default 10.0
            Seconds to wait at most.

        Returns
        -------
        bool
            Whether the server became idle in time.
        """
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.in_flight

    def proxied(self, url: str) -> str:
        """The URL that reaches ``url`` of the upstream server through this one.

        Parameters
        ----------
        url : str
            A URL of the upstream server, e.g. ``"http://127.0.0.1:8080/wcs?SERVICE=WCS"``.

        Returns
        -------
        str
            The same path and query on this server.

        Raises
        ------
        cas_xr.errors.InvalidArgumentError
            If the server has no upstream or ``url`` is not on it.
        """
        parts = urllib.parse.urlsplit(url)
        if self.upstream is None or (parts.hostname, parts.port or 80) != self.upstream:
            raise InvalidArgumentError(f"{url!r} is not on this server's upstream")
        return urllib.parse.urlunsplit(
            parts._replace(netloc=urllib.parse.urlsplit(self.url).netloc)
        )


def _check_round_trip(value: float) -> float:
    if not value >= 0:
        raise InvalidArgumentError(f"round_trip must be >= 0 seconds, got {value!r}")
    return float(value)


def _check_bandwidth(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise InvalidArgumentError(f"bandwidth must be > 0 bytes/s or None, got {value!r}")
    return None if value is None else float(value)


@contextlib.contextmanager
def serve_with_latency(
    directory: str | os.PathLike[str] | None = None,
    *,
    upstream: str | None = None,
    round_trip: float = 0.05,
    bandwidth: float | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[LatencyHTTPServer]:
    """Serve a folder, or relay to another server, with a set round trip, in the background.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Folder to serve; give it or ``upstream``.
    upstream : str, optional
        Origin of an HTTP server to put behind the latency, e.g. the origin of
        :func:`~cas_xr.testing.serve_wcs`'s URL; reach it through
        :meth:`LatencyHTTPServer.proxied`.
    round_trip : float, default 0.05
        Seconds slept before answering each request.
    bandwidth : float, optional
        Bytes per second of each response body; unlimited when None.
    host : str, default "127.0.0.1"
        Address to bind.
    port : int, default 0
        Port to bind; 0 picks a free port.

    Yields
    ------
    LatencyHTTPServer
        ``url`` is its base URL; ``requests``, ``bytes_sent``, ``peak_in_flight`` and
        ``records`` count what was asked since ``reset()``; ``round_trip`` and
        ``bandwidth`` can be changed.

    Raises
    ------
    cas_xr.errors.InvalidArgumentError
        As :class:`LatencyHTTPServer`.

    Examples
    --------
    >>> with serve_with_latency("data", round_trip=0.15) as server:  # doctest: +SKIP
    ...     rasterio.open(f"/vsicurl/{server.url}dem.tif").read(1, window=((0, 512), (0, 512)))
    ...     print(server.requests, server.bytes_sent, server.peak_in_flight)
    """
    server = LatencyHTTPServer(
        directory, upstream=upstream, round_trip=round_trip, bandwidth=bandwidth, host=host,
        port=port,
    )  # fmt: skip
    with running(server, f"serve_with_latency:{server.url}"):
        yield server
