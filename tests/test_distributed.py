"""cas_xr on a distributed LocalCluster (worker processes): same numbers, same settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import cas_xr as cas
from cas_xr.engine import _scheduler
from cas_xr.errors import ConfigurationError

distributed = pytest.importorskip("distributed")

IDS = ["sample:elevation", "sample:clay_0-5cm", "sample:land_cover", "sample:precipitation"]


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as client:  # the default client while the test runs
        yield client


@pytest.fixture
def catchments() -> Any:
    import geopandas as gpd

    frame = gpd.read_file(Path(cas.__file__).parent / "sample" / "data" / "catchments.geojson")
    return frame[frame["id"] != "K06"].set_index("id")  # K06 is PARTIAL


def _settings_on_workers() -> tuple[float, str | None, Any]:
    """A task's view of the settings: cas_xr's, and GDAL's (env and config)."""
    import os

    from rasterio.env import get_gdal_config

    from cas_xr.config import get_settings

    timeout = get_settings().provider_timeout_s
    return timeout, os.environ.get("GDAL_HTTP_TIMEOUT"), get_gdal_config("GDAL_HTTP_MAX_RETRY")


def test_cluster_gives_the_numbers_of_threads(cluster: Any, catchments: Any):
    cas.configure(progress=False, result_cache_ttl_s=0)
    aggregation = ["mean", "max", "majority"]
    on_threads = cas.extract_table(catchments, IDS, aggregation=aggregation)
    assert on_threads.attrs["cas_xr"]["summary"]["scheduler"] == "threads"
    with distributed.Client(cluster):
        on_cluster = cas.extract_table(catchments, IDS, aggregation=aggregation)
    assert on_cluster.attrs["cas_xr"]["summary"]["scheduler"].startswith("distributed (tcp://")
    on_cluster.attrs = on_threads.attrs = {}
    pd.testing.assert_frame_equal(on_cluster, on_threads, check_exact=False, rtol=1e-12)


def test_batch_extract_on_the_cluster(cluster: Any, catchments: Any):
    cas.configure(progress=False, result_cache_ttl_s=0)
    geometries = [f["geometry"] for f in catchments.geometry.__geo_interface__["features"]]
    request = {"geometries": geometries, "dataset_ids": IDS[:2], "aggregation": "median"}
    on_threads = cas.batch_extract_sync(request)
    with distributed.Client(cluster) as client:
        assert _scheduler.current_scheduler().client is client  # the active client
        cas.configure(dask_scheduler="synchronous")  # the setting comes first (CONTRACT)
        assert _scheduler.current_scheduler().description == "synchronous"
        cas.configure(dask_scheduler=cluster.scheduler_address)  # the active client's own
        assert _scheduler.current_scheduler().client is client
        on_cluster = cas.batch_extract_sync(request)
    values = [
        [[r.value for r in resp.results] for resp in b.responses] for b in (on_threads, on_cluster)
    ]
    threads, cluster = np.asarray(values, dtype=float)
    np.testing.assert_allclose(cluster, threads, rtol=1e-12)


def test_settings_of_the_client_are_in_effect_on_the_workers(client: Any, catchments: Any):
    cas.configure(progress=False, provider_timeout_s=7, gdal_http_max_retry=2)
    cas.extract_table(catchments.iloc[:2], "sample:elevation")
    expected = (7.0, "7", 2)  # rasterio reads GDAL's "2" as a number
    assert set(client.run(_settings_on_workers).values()) == {expected}
    assert client.submit(_settings_on_workers, pure=False).result() == expected
    cas.configure(provider_timeout_s=9)  # a change is shipped with the next computation
    cas.extract_table(catchments.iloc[2:4], "sample:elevation")
    assert set(client.run(_settings_on_workers).values()) == {(9.0, "9", 2)}


def test_a_cluster_in_this_process_leaves_the_settings_alone(
    catchments: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CAS_PROVIDER_TIMEOUT_S", "11")
    cas.configure(progress=False)
    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as local,
        distributed.Client(local),
    ):
        table = cas.extract_table(catchments.iloc[:2], "sample:elevation")
    assert table.attrs["cas_xr"]["summary"]["scheduler"].startswith("distributed")
    monkeypatch.setenv("CAS_PROVIDER_TIMEOUT_S", "12")
    assert cas.configure().provider_timeout_s == 12  # still read from the environment


def test_dask_scheduler_setting_names_a_cluster(cluster: Any, catchments: Any):
    address = cluster.scheduler_address
    cas.configure(progress=False, dask_scheduler=address)
    try:
        table = cas.extract_table(catchments.iloc[:3], "sample:elevation")
        assert table.attrs["cas_xr"]["summary"]["scheduler"] == f"distributed ({address})"
    finally:
        _scheduler._clients.pop(address).close()


def test_dask_scheduler_setting_errors(monkeypatch: pytest.MonkeyPatch):
    cas.configure(dask_scheduler="synchronous")
    assert _scheduler.current_scheduler().description == "synchronous"
    monkeypatch.setattr(_scheduler, "_CONNECT_TIMEOUT_S", 0.5)
    cas.configure(dask_scheduler="tcp://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="no Dask scheduler answers"):
        _scheduler.current_scheduler()


def _secrets_on_worker() -> tuple[int, str]:
    from cas_xr.config import get_settings

    settings = get_settings()
    return len(settings.api_keys), settings.rate_limit_storage_url.get_secret_value()


def test_secrets_are_not_shipped_to_workers(client: Any, catchments: Any):
    key, password = "key-never-shipped", "pw-never-shipped"
    cas.configure(
        progress=False,
        provider_timeout_s=8,
        api_keys=[key],
        rate_limit_storage_url=f"redis://:{password}@127.0.0.1:1/0",
    )
    cas.extract_table(catchments.iloc[:2], "sample:elevation")
    assert set(client.run(_settings_on_workers).values()) == {(8.0, "8", 5)}  # shipped
    assert set(client.run(_secrets_on_worker).values()) == {(0, "memory://")}  # not shipped
    plugins = client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.worker_plugins))
    assert plugins  # the settings plugin, as the scheduler keeps it for new workers
    payload = repr(plugins).encode() + b"".join(
        p if isinstance(p, bytes) else repr(p).encode() for p in plugins.values()
    )
    assert key.encode() not in payload and password.encode() not in payload
