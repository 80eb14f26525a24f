"""Remote COGs read on a LocalCluster of worker processes: the numbers of the file, capped hosts.

The workers unpickle the opened data and read the tiles themselves; the settings (the
per-host cap among them) reach them from the client. The range server records which
connection sent each request, and each worker's connections (``psutil``) tell which
process that was.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cas_xr as cas
from cas_xr.testing import RequestRecord, serve_with_latency, tiff_tiles
from tests.test_remote_reads import _checkerboard, _local_provider, _tiles_of

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")


def _process_of_ports(pids: Iterable[int], port: int) -> dict[int, int]:
    """The process of each local port connected to the server's ``port``."""
    found = {}
    for pid in pids:
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == port:
                found[connection.laddr.port] = pid
    return found


def _peak_by_process(records: list[RequestRecord], process: dict[int, int]) -> dict[int, int]:
    """The most requests in flight at once from each process, counted at the server."""
    events = sorted(
        (time, step, process[record.client[1]])
        for record in records
        for time, step in ((record.started, 1), (record.finished, -1))
    )  # at one instant, an answer sent (-1) comes before a request read (+1)
    now: Counter[int] = Counter()
    peak: Counter[int] = Counter()
    for _, step, pid in events:
        now[pid] += step
        peak[pid] = max(peak[pid], now[pid])
    return dict(peak)


def test_remote_cog_on_worker_processes_reads_the_file_within_the_host_cap(
    cluster: Any, tmp_path: Path
):
    cog, boxes = _checkerboard(tmp_path)
    with serve_with_latency(tmp_path, round_trip=0.05) as server:
        cas.configure(
            provider_files=[
                _local_provider(tmp_path, server.url + cog.name, "remote"),
                _local_provider(tmp_path, str(cog), "disk"),
            ],
            progress=False,
            result_cache_ttl_s=0,
            max_concurrent_requests_per_host=2,  # the workers get it with the settings
        )
        with distributed.Client(cluster) as client:
            # each alone: a worker that has read one may have imported what the other needs
            remote = cas.extract_table(boxes, "remote:dem", aggregation=["mean", "max"])
            disk = cas.extract_table(boxes, "disk:dem", aggregation=["mean", "max"])
            workers = set(client.run(os.getpid).values())
            records = [r for r in server.records if r.path.endswith(cog.name)]
            process = _process_of_ports({*workers, os.getpid()}, server.server_address[1])
    assert remote.attrs["cas_xr"]["summary"]["scheduler"].startswith("distributed")
    assert (remote["remote:dem_quality"] == "good").all()
    assert (disk["disk:dem_quality"] == "good").all()
    for stat in ("mean", "max"):
        np.testing.assert_allclose(
            remote[f"remote:dem_{stat}"], disk[f"disk:dem_{stat}"], rtol=0, atol=1e-12
        )
    assert {r.client[1] for r in records} <= process.keys()  # every request has its process
    first_tile = min(offset for offset, _ in tiff_tiles(cog).values())
    readers = {process[r.client[1]] for r in records if r.ranges and r.ranges[0][0] >= first_tile}
    assert readers and readers <= workers  # the workers read the tiles
    assert len(_tiles_of(server, cog)) == 8
    peaks = _peak_by_process(records, process)
    assert max(peaks.values()) == 2  # concurrent, never past the cap in any process
