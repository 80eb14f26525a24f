"""A remote COG's header (``local`` with a URL path): read ahead while a request is planned.

Every server here is real (a range server on 127.0.0.1 that counts what it is asked);
the values read over HTTP are compared with those read from the file on disk.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

import cas_xr as cas
from cas_xr.config import get_settings
from cas_xr.engine import make_plan
from cas_xr.errors import SourceError
from cas_xr.sources import _cog
from cas_xr.sources._cog import cog_reader, prefetch_header
from cas_xr.testing import make_cog, serve_with_latency
from tests.test_remote_reads import GRID, TILE, _local_provider, _values

ROUND_TRIP = 0.1


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("header")
    return make_cog(folder / "dem.tif", _values(), transform=GRID, crs="EPSG:4326", blocksize=TILE)


def _until(count: int, server) -> int:  # type: ignore[no-untyped-def]
    """The requests answered, once ``count`` of them are (or after 20 s)."""
    deadline = time.monotonic() + 20
    while server.requests < count and time.monotonic() < deadline:
        time.sleep(0.01)
    server.wait_idle(timeout=10)
    return int(server.requests)


def test_a_plan_starts_reading_the_header_and_the_request_reads_it_once(cog: Path, tmp_path: Path):
    x, y = GRID * (5 * TILE + 20, 2 * TILE + 20)  # well inside tile (2, 5)
    inside = gpd.GeoSeries([shapely.box(x, y - 0.05, x + 0.05, y)], crs="EPSG:4326")
    with serve_with_latency(cog.parent, round_trip=ROUND_TRIP) as server:
        cas.configure(
            provider_files=[
                _local_provider(tmp_path, server.url + cog.name, "http"),
                _local_provider(tmp_path, str(cog), "disk"),
            ]
        )
        make_plan(
            inside, ["http:dem"], aggregation="mean", time_range=None, batch_size=10,
            settings=get_settings(),
        )  # fmt: skip
        assert _until(1, server) == 1  # nothing was opened, yet the header comes
        remote = cas.extract_table(inside, ["http:dem"])
        assert server.requests == 2  # the request took the header the plan read, and a tile
    disk = cas.extract_table(inside, ["disk:dem"])
    assert np.isfinite(remote["http:dem_mean"]).all()
    np.testing.assert_allclose(remote["http:dem_mean"], disk["disk:dem_mean"], rtol=0, atol=1e-12)


def test_readers_at_once_share_one_read_of_the_header(cog: Path):
    with serve_with_latency(cog.parent, round_trip=ROUND_TRIP) as server:
        url = server.url + cog.name
        prefetch_header(url, "p")
        got = []
        threads = [
            threading.Thread(target=lambda: got.append(cog_reader(url, 1, "p"))) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.requests == 1
    headers = [g[1] for g in got if g is not None]
    assert len(headers) == 3 and headers[0].shape == (1024, 1024)
    assert headers[0] is headers[1] is headers[2]


def test_a_failed_read_ahead_is_read_again_and_raised(cog: Path):
    with serve_with_latency(cog.parent, round_trip=ROUND_TRIP) as server:
        url = server.url + "missing.tif"
        prefetch_header(url, "p")
        assert _until(1, server) == 1
        # until the read ahead has taken its answer: a reader before then shares its failure
        deadline = time.monotonic() + 20
        while (url,) in _cog._READING and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(SourceError, match="not found"):
            cog_reader(url, 1, "p")
        assert server.requests == 2  # the failure was not kept


def test_nothing_is_read_ahead_without_a_metadata_cache(cog: Path):
    cas.configure(metadata_cache_ttl_s=0)
    with serve_with_latency(cog.parent, round_trip=ROUND_TRIP) as server:
        prefetch_header(server.url + cog.name, "p")
        time.sleep(2 * ROUND_TRIP)
        assert server.requests == 0


def test_a_plan_builds_a_source_only_for_data_behind_a_url(
    cog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """On disk there is no round trip to hide: a request the cache answers opens nothing."""
    from cas_xr.catalog import _connector

    built: list[str] = []
    real = _connector.build_source
    monkeypatch.setattr(_connector, "build_source", lambda p, d: built.append(p.slug) or real(p, d))
    inside = gpd.GeoSeries([shapely.box(0.1, 0.1, 0.2, 0.2)], crs="EPSG:4326")
    with serve_with_latency(cog.parent, round_trip=0) as server:
        cas.configure(
            provider_files=[
                _local_provider(tmp_path, server.url + cog.name, "http"),
                _local_provider(tmp_path, str(cog), "disk"),
            ]
        )
        make_plan(
            inside, ["disk:dem", "http:dem"], aggregation="mean", time_range=None,
            batch_size=10, settings=get_settings(),
        )  # fmt: skip
        assert built == ["http"]
        _until(1, server)
