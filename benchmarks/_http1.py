"""One HTTP/1.1 keep-alive connection of a load generator, timed where the bytes move.

A load generator written in Python measures itself when a request's clock is read in the
coroutine that waits for it: a burst of answers that arrive together is read by one event
loop, and the coroutine of the last waits for the others to run (each sending its next
request) before it reads the time. Load testers such as wrk read the clock where the bytes
move, and so does :class:`Connection`: a request's send time just before its bytes are
handed to the socket, its answer's when the event loop hands the last bytes of it to the
connection (``data_received``, parsed there by httptools, the parser uvicorn uses),
before any coroutine runs. One request at a time per connection; the answer is kept
whole (status, headers, body).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httptools


@dataclass
class Answer:
    """An HTTP response, and when its request was sent and it was received."""

    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    sent: float = float("nan")  # time.perf_counter() just before the request was written
    received: float = float("nan")  # ... when its last byte was read


class Connection(asyncio.Protocol):
    """A keep-alive connection that sends one request at a time (see the module)."""

    def __init__(self) -> None:
        self._transport: Any = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer = Answer()
        self._chunks: list[bytes] = []
        self._waiting: asyncio.Future[Answer] | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """A connection to ``host:port``."""
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(cls, host, port)
        return connection

    def connection_made(self, transport: Any) -> None:  # uvloop's is not an asyncio.Transport
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(ConnectionError(f"the server closed the connection: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            if self._waiting is not None and not self._waiting.done():
                self._waiting.set_exception(err)

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._answer.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        answer, self._answer = self._answer, Answer()
        answer.received = time.perf_counter()
        answer.status = self._parser.get_status_code()
        answer.body, self._chunks = b"".join(self._chunks), []
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(answer)

    async def send(self, request: bytes) -> Answer:
        """Send ``request`` (its bytes, whole) and wait for the answer."""
        if self._transport is None:
            raise ConnectionError("the connection is closed")
        self._waiting = asyncio.get_running_loop().create_future()
        sent = time.perf_counter()
        self._transport.write(request)
        answer = await self._waiting
        answer.sent = sent
        return answer

    def close(self) -> None:
        """Close the connection."""
        if self._transport is not None:
            self._transport.close()


def request(method: str, target: str, host: str, body: bytes = b"", **headers: str) -> bytes:
    """The bytes of an HTTP/1.1 request (``Content-Length`` added when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
