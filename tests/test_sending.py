"""Garbage collection held back while counted requests are sent, on a real server.

The answers take a second (the server's round trip), so each check that collection is
back on happens while the requests it counted are still waiting for their answers.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import cas_xr as cas
from cas_xr.errors import SourceError
from cas_xr.sources import _sending
from cas_xr.sources._http import fetch
from cas_xr.sources._sending import hold, owing
from cas_xr.testing import LatencyHTTPServer, serve_with_latency

ROUND_TRIP = 1.0


def _until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` seconds (polled)."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LatencyHTTPServer]:
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    assert gc.isenabled()
    try:
        with serve_with_latency(tmp_path, round_trip=ROUND_TRIP) as running:
            yield running
    finally:
        gc.enable()


def test_collection_is_held_until_the_counted_requests_are_sent(server: LatencyHTTPServer):
    token = hold(2)
    assert not gc.isenabled()

    def request() -> bytes:
        with owing(token):
            return bytes(fetch(server.url + "a.bin").content)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(request)
        assert _until(lambda: server.peak_in_flight == 1)
        time.sleep(0.05)  # the first is sent, its answer a round trip away
        assert not gc.isenabled()  # one counted request is still to send
        second = pool.submit(request)
        assert _until(gc.isenabled)  # both sent...
        assert not first.done() and not second.done()  # ...and no answer is back yet
        assert first.result() == second.result() == b"x" * 1000


def test_a_request_waiting_for_a_slot_of_its_host_holds_nothing(server: LatencyHTTPServer):
    cas.configure(max_concurrent_requests_per_host=1)
    token = hold(2)

    def request() -> None:
        with owing(token):
            fetch(server.url + "a.bin")

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(request) for _ in range(2)]
        assert _until(gc.isenabled)  # one sent, the other waiting for the slot
        assert _until(lambda: server.peak_in_flight == 1)
        assert not any(f.done() for f in futures)
        for future in futures:
            future.result()
    assert server.requests == 2


def test_a_request_that_fails_before_it_is_sent_releases_its_share():
    cas.configure(http_retries=0)
    token = hold(1)
    with pytest.raises(SourceError), owing(token):
        fetch("http://127.0.0.1:1/nothing-listens-here")
    assert gc.isenabled()


def test_collection_off_before_the_first_hold_stays_off():
    gc.disable()
    try:
        with owing(hold(1)):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_no_hold_outlasts_its_limit(monkeypatch: pytest.MonkeyPatch):
    stuck = hold(1)  # a request that never runs
    monkeypatch.setattr(_sending, "MAX_HOLD_S", 0.0)
    time.sleep(0.01)
    token = hold(1)  # the stuck hold expires; this one begins
    monkeypatch.setattr(_sending, "MAX_HOLD_S", 60.0)
    assert not gc.isenabled()
    with owing(stuck):  # a late release of the expired hold changes nothing
        pass
    assert not gc.isenabled()
    with owing(token):
        pass
    assert gc.isenabled()
