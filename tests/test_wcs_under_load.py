"""WCS reads stay as planned when units overlap in time and answers are slow or fail first.

A unit's graph is built, and later optimised, with dask's low-level fusion off (fused, a
chunk's read task disappears into the window that slices it and is sent on its own, one
whole 128-cell chunk per GetCoverage, beside the planned rectangles). Units are built on
several threads at once: the setting must stay off for each of them whatever order they
enter and leave in. MapServer answers behind the latency relay and a gateway that answers
each GetCoverage first with 504.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dask
import numpy as np
import pytest
import requests

import cas_xr as cas
from cas_xr.testing import make_cog
from cas_xr.zonal._fusion import no_fusion
from tests.test_remote_reads import GRID, TILE, _box_in_tile, _sparse, _values, wcs_and_disk

_FUSE = "optimization.fuse.active"


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("load")
    return make_cog(folder / "dem.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)


def _first_leaves_while_second_builds(context: Any) -> Any:
    """The fusion setting seen by a second thread after a first one, inside before it, left."""
    inside, second_inside, left = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first() -> None:
        with context():
            inside.set()
            second_inside.wait()
        left.set()

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with context():
        second_inside.set()
        left.wait()
        seen.append(dask.config.get(_FUSE, None))  # what a window built now would see
    thread.join()
    return seen[0]


def test_fusion_stays_off_until_the_last_thread_leaves():
    before = dask.config.get(_FUSE, None)
    assert _first_leaves_while_second_builds(no_fusion) is False
    assert dask.config.get(_FUSE, None) == before
    # what each unit entering dask.config.set on its own did: the first to leave put
    # back the value it found (fusion on) under the second
    assert _first_leaves_while_second_builds(lambda: dask.config.set({_FUSE: False})) is None


@contextmanager
def _gateway(upstream: str) -> Iterator[tuple[str, Counter[str]]]:
    """A gateway to ``upstream`` (an origin) answering each GetCoverage first with 504.

    As a proxy in front of a slow CGI does when its upstream takes too long. Yields its
    origin and how often each GetCoverage query was asked.
    """
    asked: Counter[str] = Counter()
    lock = threading.Lock()

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            query = urlsplit(self.path).query
            first = False
            if "GetCoverage" in query:
                with lock:
                    asked[query] += 1
                    first = asked[query] == 1
            if first:
                status, kind, body = 504, "text/plain", b"upstream timed out"
            else:
                answer = requests.get(upstream + self.path, timeout=60)
                status, kind = answer.status_code, answer.headers["Content-Type"]
                body = answer.content
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_wcs_reads_stay_as_planned_with_units_in_flight_and_slow_answers(
    mapserv: str, cog: Path, tmp_path: Path
):
    # Several units of a call are built and computed at once on threads, and two calls
    # run at once (as the service's job threads do): they request exactly the rectangles
    # each call requests alone, never chunks beside them (a unit built after another one
    # left dask's fusion setting had fusion back on: its windows' reads were fused into
    # their slices and sent one whole 128-cell chunk each, on top of the plan).
    # Every first GetCoverage is answered 504 by a gateway and asked again as it was.
    quads = _sparse(160, seed=21)
    sets = [quads[:80].reset_index(drop=True), quads[80:].reset_index(drop=True)]
    with (
        wcs_and_disk(cog, tmp_path, round_trip=0.02) as relay,
        _gateway(relay.url.rstrip("/")) as (origin, asked),
    ):
        relayed = (tmp_path / "wcs.yaml").read_text(encoding="utf-8")
        (tmp_path / "gw.yaml").write_text(
            relayed.replace("slug: wcs", "slug: gw").replace(relay.url.rstrip("/"), origin),
            encoding="utf-8",
        )
        cas.configure(
            provider_files=[tmp_path / "gw.yaml", tmp_path / "disk.yaml"], result_cache_ttl_s=0
        )
        cas.extract_table(_box_in_tile(0, 0), ["gw:dem"])  # describes the coverage
        relay.reset()
        alone = [cas.extract_table(g, ["gw:dem"], batch_size=20) for g in sets]
        planned = Counter(r.path for r in relay.records)
        relay.reset()
        asked.clear()
        with ThreadPoolExecutor(2) as pool:
            remote = list(pool.map(lambda g: cas.extract_table(g, ["gw:dem"], batch_size=20), sets))
        paths = [r.path for r in relay.records]
    assert all("REQUEST=GetCoverage" in path for path in paths)
    assert Counter(paths) == planned
    assert set(asked.values()) == {2} and len(asked) == len(set(paths))  # a 504, then again
    for geometries, table, first in zip(sets, remote, alone, strict=True):
        expected = cas.extract_table(geometries, ["disk:dem"])
        assert table["gw:dem_mean"].notna().all()
        np.testing.assert_allclose(table["gw:dem_mean"], expected["disk:dem_mean"], atol=1e-9)
        np.testing.assert_array_equal(first["gw:dem_mean"], table["gw:dem_mean"])
