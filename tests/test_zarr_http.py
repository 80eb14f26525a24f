"""Remote Zarr over HTTP: the chunks touched, fetched together, within the host's cap.

The servers are real (a latency server on 127.0.0.1 that counts what it answers, and a
folder server that fails chosen chunks with 503); the chunks a geometry touches come from
shapely on the chunk boxes, and results are compared with the same store on disk.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

import cas_xr as cas
from cas_xr.sources import LocalSource
from cas_xr.sources._zarr_reads import ZarrWindows
from cas_xr.testing import serve_with_latency
from tests.test_remote_reads import TILE, N, _sparse, _touched

# the grid of the remote COG tests (1,024 x 1,024 cells of 0.001 degree from lon 10, lat
# 50 down), its 128-cell tiles as the store's chunks: the same quadrilaterals touch them
CHUNK = TILE
DAYS = pd.date_range("2021-01-01", periods=6, freq="D")


def _values(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:N, 0:N]
    return (np.sin(xx / 40.0) * np.cos(yy / 55.0) * 100.0 + rng.normal(size=(N, N))).astype(
        "float32"
    )


def _store(path: Path, *, days: int = 0) -> Path:
    """A Zarr v2 store of ``dem`` on lat/lon (with ``days`` daily steps, 2 to a chunk)."""
    lat = 50.0 - 0.001 * (np.arange(N) + 0.5)
    lon = 10.0 + 0.001 * (np.arange(N) + 0.5)
    if days:
        cube = np.stack([_values() + 10.0 * d for d in range(days)])
        ds = xr.Dataset(
            {"dem": (("time", "lat", "lon"), cube)},
            coords={"time": DAYS[:days], "lat": lat, "lon": lon},
        )
        chunks: tuple[int, ...] = (2, CHUNK, CHUNK)
    else:
        ds = xr.Dataset({"dem": (("lat", "lon"), _values())}, coords={"lat": lat, "lon": lon})
        chunks = (CHUNK, CHUNK)
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": rasterio.crs.CRS.from_epsg(4326).to_wkt()})
    ds["dem"].attrs["grid_mapping"] = "crs"
    ds.to_zarr(path, zarr_format=2, encoding={"dem": {"chunks": chunks}})
    return path


def _provider(folder: Path, slug: str, path: str, *, temporal: bool = False) -> Path:
    file = folder / f"{slug}.yaml"
    daily = "\n    temporal: {temporal_type: daily}" if temporal else ""
    file.write_text(
        f"""slug: {slug}
protocol: local
endpoint: {folder}
license: CC0-1.0
datasets:
  - name: dem
    array: dem
    path: "{path}"{daily}
    variables:
      - {{name: dem, units: m}}
""",
        encoding="utf-8",
    )
    return file


def _chunk_requests(paths: list[str]) -> list[tuple[int, ...]]:
    """The chunk indices of the requests for ``dem``'s chunks, one per request."""
    return [
        tuple(int(k) for k in p.split("?")[0].rsplit("/", 1)[1].split("."))
        for p in paths
        if p.startswith("/dem.zarr/dem/") and p.split("?")[0][-1].isdigit()
    ]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zarr_http")
    _store(folder / "dem.zarr")
    (folder / "cube").mkdir()
    _store(folder / "cube" / "dem.zarr", days=len(DAYS))
    return folder


@pytest.mark.parametrize("cap", [2, 4])
def test_the_chunks_touched_are_fetched_once_each_several_at_once_within_the_cap(
    stores: Path, tmp_path: Path, cap: int
):
    geometries = _sparse(6, seed=21)
    with serve_with_latency(stores, round_trip=0.05) as server:
        cas.configure(
            provider_files=[
                _provider(tmp_path, "http", server.url + "dem.zarr"),
                _provider(tmp_path, "disk", str(stores / "dem.zarr")),
            ],
            max_concurrent_requests_per_host=cap,
            result_cache_ttl_s=0,
        )
        cas.open_dataset("http:dem")  # the store's metadata: read at the open
        server.reset()
        remote = cas.extract_table(geometries, ["http:dem"])
        chunks = _chunk_requests([r.path for r in server.records])
        peak = server.peak_in_flight
    touched = _touched(geometries)
    assert len(touched) > cap  # enough chunks to fill the cap
    assert sorted(chunks) == sorted(touched)  # each touched chunk once, nothing else
    assert 1 < peak <= cap
    disk = cas.extract_table(geometries, ["disk:dem"])
    np.testing.assert_allclose(remote["http:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-12)
    assert (remote["http:dem_quality"] == "good").all()


def test_a_time_range_reads_the_chunks_of_its_steps_only(stores: Path, tmp_path: Path):
    geometries = _sparse(3, seed=5)
    with serve_with_latency(stores / "cube", round_trip=0.02) as server:
        cas.configure(
            provider_files=[
                _provider(tmp_path, "http", server.url + "dem.zarr", temporal=True),
                _provider(tmp_path, "disk", str(stores / "cube" / "dem.zarr"), temporal=True),
            ],
            max_concurrent_requests_per_host=4,
        )
        when = (dt.datetime(2021, 1, 2), dt.datetime(2021, 1, 3, 12))  # days 1 and 2
        da = cas.open_dataset("http:dem", time_range=when)
        tasks = [t for t in dict(da.data.__dask_graph__()).values() if isinstance(t, tuple)]
        reads = [t for t in tasks if isinstance(t[0], ZarrWindows)]
        assert len({id(t[0]) for t in reads}) == 1  # one reader: chunks of both days at once
        assert {(t[1].start, t[1].stop) for t in reads} == {(1, 2), (2, 3)}  # its steps
        server.reset()
        remote = cas.extract_table(geometries, ["http:dem"], time_range=when)
        chunks = _chunk_requests([r.path for r in server.records])
        peak = server.peak_in_flight
    disk = cas.extract_table(geometries, ["disk:dem"], time_range=when)
    # days 1 and 2 lie in time chunks 0 (days 0-1) and 1 (days 2-3)
    assert sorted(chunks) == sorted((t, i, j) for t in (0, 1) for i, j in _touched(geometries))
    assert 1 < peak <= 4
    assert len(remote) == 2 * len(geometries)
    assert remote.index.equals(disk.index)
    np.testing.assert_allclose(remote["http:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-12)


class _Failing(SimpleHTTPRequestHandler):
    """Serves a folder; answers 503 to the paths of ``fails`` while their count lasts."""

    fails: dict[str, int]
    asked: collections.Counter[str]
    lock: threading.Lock
    url: str

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.lock:
            self.asked[path] += 1
            failing = self.fails.get(path, 0)
            if failing:
                self.fails[path] = failing - 1
        if failing:
            self.send_error(503, "chunk store unavailable")
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _failing_server(folder: Path) -> Iterator[type[_Failing]]:
    handler = type(
        "Handler",
        (_Failing,),
        {"fails": {}, "asked": collections.Counter(), "lock": threading.Lock()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_failing_chunk_is_retried_then_the_result_is_missing_with_the_error(
    stores: Path, tmp_path: Path
):
    geometries = _sparse(1, seed=3)
    (i, j), *_ = sorted(_touched(geometries))
    chunk = f"/dem.zarr/dem/{i}.{j}"
    with _failing_server(stores) as handler:
        url = handler.url + "dem.zarr?sig=s3cr3t"
        cas.configure(
            provider_files=[
                _provider(tmp_path, "http", url),
                _provider(tmp_path, "disk", str(stores / "dem.zarr")),
            ],
            http_retries=1,
            result_cache_ttl_s=0,
        )
        expected = cas.extract_table(geometries, ["disk:dem"])
        handler.fails[chunk] = 1  # once: the retry reads it
        again = cas.extract_table(geometries, ["http:dem"])
        assert handler.asked[chunk] == 2
        assert (again["http:dem_quality"] == "good").all()
        np.testing.assert_allclose(again["http:dem_mean"], expected["disk:dem_mean"], atol=1e-12)
        handler.asked.clear()
        handler.fails[chunk] = 100  # for good
        with pytest.warns(cas.BatchFailureWarning, match="HTTP 503") as caught:
            lost = cas.extract_table(geometries, ["http:dem"])
        assert handler.asked[chunk] == 2  # asked again once (http_retries)
    assert (lost["http:dem_quality"] == "missing").all()
    assert lost["http:dem_mean"].isna().all()
    assert all("s3cr3t" not in str(w.message) for w in caught)  # the token is never shown


def test_the_readers_pickle_for_workers(stores: Path):
    with serve_with_latency(stores, round_trip=0.0) as server:
        da = LocalSource(server.url + "dem.zarr?token=abc", array="dem", crs="EPSG:4326").open(
            bbox=(10.1, 49.7, 10.3, 49.9)
        )
        graph = dict(da.data.__dask_graph__())
        reads = [
            t for t in graph.values() if isinstance(t, tuple) and isinstance(t[0], ZarrWindows)
        ]
        reader = pickle.loads(pickle.dumps(reads[0][0]))
        server.reset()
        cells = reader(reads[0][1], reads[0][2])
        (path,) = [r.path for r in server.records]
    assert path.endswith("?token=abc")  # the query of the store's URL goes with each key
    rows, cols = reads[0][1], reads[0][2]
    np.testing.assert_array_equal(cells, _values()[rows, cols])


def test_a_chunking_of_its_own_reads_through_the_same_client_within_the_cap(stores: Path):
    cas.configure(max_concurrent_requests_per_host=3)
    with serve_with_latency(stores, round_trip=0.02) as server:
        da = LocalSource(server.url + "dem.zarr", array="dem").open(chunks=512)
        server.reset()
        values = da.values
        chunks = _chunk_requests([r.path for r in server.records])
        peak = server.peak_in_flight
    assert sorted(chunks) == sorted(itertools.product(range(N // CHUNK), repeat=2))
    assert 1 < peak <= 3
    np.testing.assert_array_equal(values, _values())


def test_a_chunk_slower_than_the_provider_timeout_is_missing_as_a_timeout(
    stores: Path, tmp_path: Path
):
    geometries = _sparse(1, seed=3)
    with serve_with_latency(stores, round_trip=0.0) as server:
        cas.configure(
            provider_files=[_provider(tmp_path, "http", server.url + "dem.zarr")],
            provider_timeout_s=0.3,
            http_retries=0,
            result_cache_ttl_s=0,
        )
        cas.open_dataset("http:dem")  # the metadata, in time
        server.round_trip = 1.0  # every chunk now answers after the deadline
        with pytest.warns(cas.BatchFailureWarning, match="timeout"):
            lost = cas.extract_table(geometries, ["http:dem"])
        server.round_trip = 0.0
    assert (lost["http:dem_quality"] == "missing").all()


def test_a_sharded_store_reads_each_shard_index_once(tmp_path: Path):
    values = _values()[:512, :512]
    lat, lon = 50.0 - 0.001 * (np.arange(512) + 0.5), 10.0 + 0.001 * (np.arange(512) + 0.5)
    ds = xr.Dataset({"dem": (("lat", "lon"), values)}, coords={"lat": lat, "lon": lon})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": rasterio.crs.CRS.from_epsg(4326).to_wkt()})
    ds["dem"].attrs["grid_mapping"] = "crs"
    encoding = {"dem": {"chunks": (64, 64), "shards": (256, 256)}}
    ds.to_zarr(tmp_path / "s.zarr", zarr_format=3, encoding=encoding)
    with serve_with_latency(tmp_path, round_trip=0.0) as server:
        da = LocalSource(server.url + "s.zarr", array="dem").open(bbox=(10.1, 49.7, 10.3, 49.9))
        server.reset()
        cells = da.values
        shards = collections.Counter(r.path for r in server.records)
    # rows and columns 100..299: inner chunks 1..4 of 64 cells, in shards 0..1 of 256
    assert sorted(shards.values()) == [1 + 1, 3 + 1, 3 + 1, 9 + 1]  # its chunks, its index
    np.testing.assert_array_equal(cells, values[100:300, 100:300])
