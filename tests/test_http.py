"""The shared HTTP layer: retries with backoff, deadlines and clear errors, on a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cas_xr as cas
from cas_xr.errors import SourceError
from cas_xr.sources._http import fetch


class _Scripted(BaseHTTPRequestHandler):
    """Answers each path from a script: a list of (status, delay_s, body) per request.

    A body ending in ``...`` is cut short: the answer announces more bytes than it sends.
    """

    script: dict[str, list[tuple[int, float, str]]] = {}
    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        n = self.hits.get(path, 0)
        self.hits[path] = n + 1
        steps = self.script.get(path, [(404, 0.0, "no such thing")])
        status, delay, body = steps[min(n, len(steps) - 1)]
        time.sleep(delay)
        payload = body.encode()
        try:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            cut = 100 if body.endswith("...") else 0
            self.send_header("Content-Length", str(len(payload) + cut))
            self.end_headers()
            self.wfile.write(payload)
            if cut:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Scripted.hits = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_retries_5xx_and_429_then_succeeds(server: str):
    _Scripted.script = {"/flaky": [(500, 0, "oops"), (429, 0, "slow down"), (200, 0, "ok")]}
    assert fetch(f"{server}/flaky").text == "ok"
    assert _Scripted.hits["/flaky"] == 3


def test_client_errors_are_not_retried_and_quote_the_server(server: str):
    _Scripted.script = {"/bad": [(400, 0, "InvalidParameterValue: coverage")]}
    with pytest.raises(SourceError, match="HTTP 400: InvalidParameterValue") as info:
        fetch(f"{server}/bad", provider="soil")
    assert info.value.kind == "http" and info.value.provider == "soil"
    assert _Scripted.hits["/bad"] == 1


def test_retries_are_bounded_by_provider_timeout(server: str):
    cas.configure(provider_timeout_s=1.0, http_retries=50)
    _Scripted.script = {"/slow": [(200, 3.0, "late")]}
    started = time.monotonic()
    with pytest.raises(SourceError, match="provider_timeout_s") as info:
        fetch(f"{server}/slow")
    assert time.monotonic() - started < 2.0
    assert info.value.kind == "timeout"


def test_gives_up_after_http_retries(server: str):
    cas.configure(http_retries=2)
    _Scripted.script = {"/down": [(503, 0, "maintenance")]}
    with pytest.raises(SourceError, match="HTTP 503: maintenance"):
        fetch(f"{server}/down")
    assert _Scripted.hits["/down"] == 3


def test_unreachable_server_is_a_connection_error():
    cas.configure(http_retries=1, provider_timeout_s=2)
    with pytest.raises(SourceError) as info:
        fetch("http://127.0.0.1:9/nothing-listens-here")
    assert info.value.kind == "connection"


def test_an_answer_cut_short_is_retried_then_a_connection_error(server: str):
    _Scripted.script = {"/cut": [(200, 0, "II*..."), (200, 0, "whole")]}
    assert fetch(f"{server}/cut").text == "whole"
    cas.configure(http_retries=1)
    _Scripted.hits, _Scripted.script = {}, {"/cut": [(200, 0, "II*...")]}
    with pytest.raises(SourceError, match="cut short") as info:
        fetch(f"{server}/cut", provider="soil")
    assert info.value.kind == "connection" and _Scripted.hits["/cut"] == 2
