"""Remote COG reads by tile: a slow host's backlog, and tiles a server keeps refusing.

Every server is real (range servers on 127.0.0.1); what they served is counted there.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

import cas_xr as cas
from cas_xr.errors import BatchFailureWarning, QualityWarning
from cas_xr.sources._cog import cog_reader
from cas_xr.testing import (
    RangeHTTPServer,
    RangeRequestHandler,
    make_cog,
    serve_with_latency,
    tiff_tiles,
)
from cas_xr.testing._server import running
from tests.test_remote_reads import GRID, TILE, _local_provider, _values


def test_a_slow_hosts_backlog_leaves_the_io_threads_to_another_host(tmp_path: Path):
    (tmp_path / "slow").mkdir()
    (tmp_path / "fast").mkdir()
    noise = np.random.default_rng(3).normal(size=(2048, 2048)).astype("float32")
    big = make_cog(tmp_path / "slow" / "big.tif", noise, transform=GRID, crs="EPSG:4326",
                   blocksize=128)  # fmt: skip
    small = make_cog(tmp_path / "fast" / "small.tif", noise[:256, :256], transform=GRID,
                     crs="EPSG:4326", blocksize=128)  # fmt: skip
    cas.configure(max_concurrent_requests_per_host=4)
    # 64 tiles three tiles apart (~60 KB each): 64 ranges, more than the 32 I/O threads
    windows = [
        (slice(i * 128, i * 128 + 10), slice(j * 128, j * 128 + 10))
        for i in range(16)
        for j in range(0, 16, 4)
    ]
    with (
        serve_with_latency(tmp_path / "slow", round_trip=0.2) as slow,
        serve_with_latency(tmp_path / "fast", round_trip=0.0) as fast,
    ):
        slow_cog = cog_reader(slow.url + big.name, 1, "")  # the headers are read
        fast_cog = cog_reader(fast.url + small.name, 1, "")
        assert slow_cog is not None and fast_cog is not None
        backlog, quick = slow_cog[0], fast_cog[0]
        slow.reset()
        futures = backlog.submit(windows)
        cells = quick.read_many([(slice(100, 110), slice(0, 10))])
        served = slow.requests  # when the fast host's read was done
        out = backlog.collect(windows, futures)
        backlog_ranges = slow.requests
    np.testing.assert_array_equal(cells[0], noise[100:110, :10])
    for window, got in zip(windows, out, strict=True):
        np.testing.assert_array_equal(got, noise[window])
    assert backlog_ranges == 64
    # 4 at a time for 0.2 s each: the fast read did not wait for the slow host's ranges
    # (with every range handed to the 32 threads at once it waited for 33 of them)
    assert served <= 8


class _Refusing(RangeRequestHandler):
    """Answers 500 to every range that overlaps one of the server's ``refused`` spans.

    Only in the files whose path ends with the server's ``refused_file``.
    """

    server: _RefusingServer

    def do_GET(self) -> None:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if match is not None:
            first, last = int(match[1]), int(match[2])
            hit = [s for s in self.server.refused if s[0] <= last and first < s[0] + s[1]]
            hit = hit if self.path.endswith(self.server.refused_file) else []
            with self.server.lock:
                self.server.asked[(first, last)] += 1
            if hit:
                body = b"tile store unavailable"
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        super().do_GET()


class _RefusingServer(RangeHTTPServer):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.RequestHandlerClass = functools.partial(_Refusing, directory=folder)
        self.refused: list[tuple[int, int]] = []  # (offset, length) of the spans refused
        self.refused_file = ""  # ... in the files whose path ends so (all by default)
        self.asked: Counter[tuple[int, int]] = Counter()
        self.lock = threading.Lock()


@contextmanager
def _refusing(folder: Path) -> Iterator[_RefusingServer]:
    server = _RefusingServer(folder)
    with running(server, "refusing"):
        yield server


def _box(r0: int, r1: int, c0: int, c1: int) -> dict[str, object]:
    """A GeoJSON box on the cell edges of rows ``r0:r1`` and columns ``c0:c1``."""
    x0, y0 = GRID * (c0, r1)
    x1, y1 = GRID * (c1, r0)
    return shapely.geometry.mapping(shapely.box(x0, y0, x1, y1))


def test_a_tile_refused_after_the_retries_makes_the_result_degraded(tmp_path: Path):
    values = _values()
    cog = make_cog(tmp_path / "dem.tif", values, transform=GRID, crs="EPSG:4326", blocksize=TILE)
    tiles = tiff_tiles(cog)
    r0, r1, c0, c1 = 2 * TILE + 64, 3 * TILE + 64, 3 * TILE + 64, 4 * TILE + 64  # 4 tiles
    request = {"geometry": _box(r0, r1, c0, c1), "dataset_ids": ["r:dem"]}
    with _refusing(tmp_path) as server:
        cas.configure(
            provider_files=[_local_provider(tmp_path, server.url + cog.name, "r")],
            http_retries=1,
        )
        server.refused = [tiles[(2, 4)]]  # the ranges of one of the four: 500 forever
        with pytest.warns(QualityWarning, match="degraded"):
            response = cas.extract_sync(request)
        asked = dict(server.asked)
        server.refused = []  # the server recovers: the degraded result was not cached
        again = cas.extract_sync(request).results[0]
    kept = as_nodata(values, lost_tiles(cog, asked, (2, 4)))[r0:r1, c0:c1]
    degraded_then_good(response, again, kept, values[r0:r1, c0:c1])


def lost_tiles(cog: Path, asked: dict[tuple[int, int], int], tile: tuple[int, int]) -> list[Any]:
    """The tiles of ``cog`` whose bytes lie in the range the server refused (``tile``'s).

    The refused range was asked twice (``http_retries=1``); a range of another file
    that overlaps the same bytes, once.
    """
    tiles = tiff_tiles(cog)
    offset, length = tiles[tile]
    refused = [(a, b) for a, b in asked if a < offset + length and offset <= b and asked[a, b] == 2]
    assert len(refused) == 1  # one range, asked again once: the tile and merged neighbours
    first, last = refused[0]
    lost = [t for t, (o, n) in tiles.items() if n and o <= last and first < o + n]
    assert tile in lost and len(lost) < 4  # its range's tiles, not the others
    return lost


def as_nodata(values: np.ndarray, tiles: list[tuple[int, int]]) -> np.ndarray:
    """``values`` as floats, the cells of ``tiles`` NaN."""
    kept = values.astype(np.float64)
    for i, j in tiles:
        kept[i * TILE : (i + 1) * TILE, j * TILE : (j + 1) * TILE] = np.nan
    return kept


def degraded_then_good(
    response: cas.AttributeResponse, again: cas.AttributeResult, kept: np.ndarray, whole: Any
) -> None:
    """DEGRADED with the mean of ``kept`` (NaN lost), then GOOD with all of ``whole``."""
    result = response.results[0]
    assert result.quality is cas.QualityFlag.DEGRADED and result.error is None
    assert "could not be read and were treated as nodata" in response.warnings[0]
    assert result.value == pytest.approx(np.nanmean(kept), rel=1e-6)
    assert again.quality is cas.QualityFlag.GOOD
    assert again.value == pytest.approx(np.mean(whole, dtype=np.float64), rel=1e-6)


def test_every_tile_refused_is_missing_with_the_error(tmp_path: Path):
    cog = make_cog(tmp_path / "dem.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)
    with _refusing(tmp_path) as server:
        cas.configure(
            provider_files=[_local_provider(tmp_path, server.url + cog.name, "r")],
            http_retries=1,
        )
        server.refused = [tiff_tiles(cog)[(2, 4)]]
        request = {"geometry": _box(2 * TILE + 10, 2 * TILE + 50, 4 * TILE + 10, 4 * TILE + 50),
                   "dataset_ids": ["r:dem"]}  # fmt: skip
        with pytest.warns(BatchFailureWarning, match="HTTP 500"):
            result = cas.extract_sync(request).results[0]
    assert result.quality is cas.QualityFlag.MISSING and result.value is None
    assert result.error is not None and result.error.kind == "http"
    assert "tile store unavailable" in result.error.message
