"""Remote COG reads by tile: a slow host's backlog.

Every server is real (range servers on 127.0.0.1); what they served is counted there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import cas_xr as cas
from cas_xr.sources._cog import cog_reader
from cas_xr.testing import make_cog, serve_with_latency
from tests.test_remote_reads import GRID


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
