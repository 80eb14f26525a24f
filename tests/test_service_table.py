"""The extract-table process: many geometries in, GeoParquet out, by value or by reference."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import cas_xr as cas
from cas_xr.service import create_app
from cas_xr.service._executor import JobCancelledError, JobContext
from cas_xr.service._jobs import JobStore
from cas_xr.service._options import ServiceOptions
from cas_xr.service._table import PARQUET, extract_table_process
from tests.test_service_support import poll, threaded_service

KEY = {"X-API-Key": "table-key"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = cas.Settings(
        jobs_db=str(tmp_path_factory.mktemp("table") / "jobs.sqlite"),
        auth_enabled=True,
        api_keys=["table-key"],
        max_table_geometries=20_000,
    )
    with threaded_service(create_app(settings)) as served:
        yield served


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    cas.configure(progress=False, result_cache_ttl_s=0)  # the service computes on its own
    with httpx.Client(base_url=url, headers=KEY, timeout=60) as client:
        yield client


def _squares(n: int, seed: int = 0) -> Any:
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)  # over the sample's Utah tiles (a few cross the edge)
    x, y = rng.uniform(-112.1, -111.9, n), rng.uniform(41.9, 42.1, n)
    return gpd.GeoDataFrame(
        {"name": [f"g{i}" for i in range(n)]}, geometry=shapely.box(x, y, x + 0.005, y + 0.005),
        crs="EPSG:4326",
    )  # fmt: skip


def _geoparquet(frame: Any) -> dict[str, str]:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return {"value": base64.b64encode(buffer.getvalue()).decode(), "mediaType": PARQUET}


def _run(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = http.post("processes/extract-table/execution", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["jobID"]
    status = poll(http, job_id, {"successful", "failed"}, timeout=240)
    assert status["status"] == "successful", status
    results = http.get(f"jobs/{job_id}/results")
    assert results.status_code == 200
    return {"job_id": job_id, **results.json()}


def _progress(http: httpx.Client, job_id: str, until: Any) -> list[tuple[int, str]]:
    """(progress, message) of the job as seen until ``until(status)`` holds (60 s at most)."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = http.get(f"jobs/{job_id}").json()
        seen.append((status.get("progress", 0), status.get("message") or ""))
        if until(status):
            break
        time.sleep(0.02)
    return seen


def test_20000_geometries_by_reference_equal_extract_table(http: httpx.Client, url: str):
    import geopandas as gpd

    frame = _squares(20_000)
    inputs = {"features": _geoparquet(frame), "dataset_ids": ["sample:elevation"]}
    body = {"inputs": inputs, "outputs": {"table": {"transmissionMode": "reference"}}}
    results = _run(http, body)
    link = results["table"]
    assert link["type"] == PARQUET and "value" not in link
    assert link["href"] == f"{url}jobs/{results['job_id']}/results/table"
    assert httpx.get(link["href"]).status_code == 401  # the same authentication
    download = http.get(link["href"])
    assert download.status_code == 200 and download.headers["content-type"] == PARQUET
    served = gpd.read_parquet(io.BytesIO(download.content))
    with pytest.warns(cas.errors.QualityWarning):
        expected = cas.extract_table(frame.rename_axis("feature"), "sample:elevation")
    expected = expected.reset_index()
    assert len(served) == 20_000
    assert (served["sample:elevation_quality"] == "good").mean() > 0.9  # numbers, not gaps
    pd.testing.assert_frame_equal(
        pd.DataFrame(served.drop(columns="geometry")),
        pd.DataFrame(expected.drop(columns="geometry")),
    )
    assert served.geometry.geom_equals_exact(expected.geometry, 1e-12).all()
    metadata = served.attrs["cas_xr"]
    assert metadata["datasets"]["sample:elevation"]["units"] == "m"
    endpoint = metadata["datasets"]["sample:elevation"]["provenance"]["endpoint"]
    assert endpoint == "file://…/catalog.json"  # no folder of the server's disk


def test_feature_collection_by_value_with_several_statistics(http: httpx.Client):
    import geopandas as gpd

    frame = _squares(30, seed=1)
    collection = json.loads(frame.to_json())
    inputs = {
        "features": collection,
        "dataset_ids": ["sample:elevation", "sample:precipitation"],
        "aggregation": ["mean", "max"],
        "time_range": {"start": "2022-06-01", "end": "2022-07-31"},
    }
    table = _run(http, {"inputs": inputs})["table"]
    assert (table["mediaType"], table["encoding"]) == (PARQUET, "base64")
    served = gpd.read_parquet(io.BytesIO(base64.b64decode(table["value"])))
    assert len(served) == 30 * 2  # two time steps of precipitation
    assert list(served["name"][::2]) == list(frame["name"])  # the properties are kept
    assert {"sample:elevation_max", "sample:precipitation_mean"} <= set(served.columns)
    with pytest.warns(cas.errors.QualityWarning):
        expected = cas.extract_table(
            frame.rename_axis("feature"), inputs["dataset_ids"], aggregation=["mean", "max"],
            time_range=("2022-06-01", "2022-07-31"),
        ).reset_index()  # fmt: skip
    values = served["sample:precipitation_mean"]
    assert values.notna().mean() > 0.9
    np.testing.assert_array_equal(values, expected["sample:precipitation_mean"])


def _problem(response: httpx.Response, status: int, type_end: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(type_end)
    return str(response.json()["detail"])


@pytest.mark.parametrize(
    ("features", "words"),
    [
        ({"href": "https://example.com/catchments.parquet"}, "never fetches an href"),
        ({"value": "bm90IHBhcnF1ZXQ=", "mediaType": PARQUET}, "features cannot be read"),
        ({"value": "***", "mediaType": PARQUET}, "features cannot be read"),
        ({"value": "", "mediaType": "text/csv"}, "must be a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "holds no feature"),
    ],
)
def test_bad_features(http: httpx.Client, features: dict[str, Any], words: str):
    inputs = {"features": features, "dataset_ids": ["sample:elevation"]}
    response = http.post("processes/extract-table/execution", json={"inputs": inputs})
    assert words in _problem(response, 400, "invalid-input")


def test_limits_and_outputs(http: httpx.Client):
    features = json.loads(_squares(20_001).to_json())
    inputs = {"features": features, "dataset_ids": ["sample:elevation"]}
    many = http.post("processes/extract-table/execution", json={"inputs": inputs})
    assert "max_table_geometries (20000)" in _problem(many, 400, "limit-exceeded")
    inputs = {"features": _geoparquet(_squares(2)), "dataset_ids": ["sample:elevation"]}
    unknown = {"inputs": inputs, "outputs": {"nope": {"transmissionMode": "reference"}}}
    response = http.post("processes/extract-table/execution", json=unknown)
    assert "no output 'nope'" in _problem(response, 400, "invalid-input")
    batch = {"geometries": [{"type": "Point", "coordinates": [-96.5, 39.0]}],
             "dataset_ids": ["sample:elevation"]}  # fmt: skip
    by_reference = {"inputs": batch, "outputs": {"response": {"transmissionMode": "reference"}}}
    response = http.post("processes/batch-extract/execution", json=by_reference)
    assert "transmissionMode 'reference' is not offered" in _problem(response, 400, "invalid-input")
    description = http.get("processes/extract-table").json()
    assert description["outputTransmission"] == ["value", "reference"]
    assert description["outputs"]["table"]["schema"]["contentMediaType"] == PARQUET


def test_file_outputs_go_with_their_job(http: httpx.Client):
    inputs = {"features": _geoparquet(_squares(3)), "dataset_ids": ["sample:elevation"]}
    body = {"inputs": inputs, "outputs": {"table": {"transmissionMode": "reference"}}}
    job_id = _run(http, body)["job_id"]
    assert http.get(f"jobs/{job_id}/results/table").status_code == 200
    assert "no file output 'nope'" in _problem(
        http.get(f"jobs/{job_id}/results/nope"), 404, "no-such-output"
    )
    assert http.delete(f"jobs/{job_id}").status_code == 200  # removed with its results
    _problem(http.get(f"jobs/{job_id}/results/table"), 404, "no-such-job")


def test_a_table_job_reports_progress_and_stops_when_dismissed(http: httpx.Client):
    frame = _squares(6_000, seed=1)  # ten batches of 600
    inputs = {"features": _geoparquet(frame), "dataset_ids": ["sample:elevation"]}
    created = http.post("processes/extract-table/execution", json={"inputs": inputs})
    job_id = created.json()["jobID"]
    seen = _progress(http, job_id, lambda status: status.get("progress", 0) > 0)
    progress, message = seen[-1]
    assert 0 < progress < 100 and re.fullmatch(r"\d+ of 6000 results done", message), seen
    assert http.delete(f"jobs/{job_id}").status_code == 200
    seen = _progress(http, job_id, lambda status: status["status"] != "running")
    status = http.get(f"jobs/{job_id}").json()
    assert status["status"] == "dismissed", seen  # stopped at the next batch, not finished
    _problem(http.get(f"jobs/{job_id}/results"), 410, "job-dismissed")


def test_a_table_job_dismissed_through_another_process_stops_between_batches(tmp_path: Path):
    cas.configure(progress=False, result_cache_ttl_s=0)  # every batch is computed
    path = str(tmp_path / "jobs.sqlite")
    options = ServiceOptions.from_settings(cas.Settings(jobs_db=path))
    process = extract_table_process()
    inputs = {"features": _geoparquet(_squares(6_000, seed=2)), "dataset_ids": ["sample:elevation"]}
    parsed = process.validate(inputs, options)
    here, there = JobStore(path), JobStore(path)  # the stores of two service processes
    job_id = here.create(process.id, inputs).job_id
    assert here.start(job_id)
    context = JobContext(job_id, here, threading.Event())
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(process.function, parsed, context, options)
        deadline = time.monotonic() + 120
        while not getattr(here.get(job_id), "progress", 0):  # the first batch is done
            assert not running.done() and time.monotonic() < deadline, "no progress reported"
            time.sleep(0.02)
        assert there.dismiss(job_id)  # a DELETE that reached the other process
        with pytest.raises(JobCancelledError):  # stopped at its next batch: no table
            running.result(timeout=120)
    record = here.get(job_id)
    assert record is not None and record.status.value == "dismissed"
    assert record.progress is not None and 0 < record.progress < 100
