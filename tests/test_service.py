"""The OGC API - Processes service under uvicorn on 127.0.0.1: processes, jobs, problems."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

import cas_xr as cas
from cas_xr.service import create_app
from tests.test_service_support import POINT, LiveService, live_service, poll, square

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("service")) as live:
        yield live


@pytest.fixture
def http(service: LiveService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


def execute(http: httpx.Client, process: str, **inputs: object) -> httpx.Response:
    return http.post(f"processes/{process}/execution", json={"inputs": inputs})


def assert_problem(response: httpx.Response, status: int, type_end: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"].endswith(type_end), body
    assert "Traceback" not in response.text and "/site-packages/" not in response.text
    return body


def test_landing_page_and_conformance(http: httpx.Client, service: LiveService):
    links = {(link["rel"], link["href"]) for link in http.get("").json()["links"]}
    for rel, path in [
        ("self", ""),
        ("service-desc", "openapi.json"),
        ("service-doc", "docs"),
        ("http://www.opengis.net/def/rel/ogc/1.0/conformance", "conformance"),
        ("http://www.opengis.net/def/rel/ogc/1.0/processes", "processes"),
        ("http://www.opengis.net/def/rel/ogc/1.0/job-list", "jobs"),
    ]:
        assert (rel, service.url + path) in links
    conformance = http.get("conformance").json()["conformsTo"]
    for name in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss"):
        assert CONF + name in conformance
    assert http.get("openapi.json").json()["openapi"].startswith("3.0")
    for page in ("docs", "redoc"):
        response = http.get(page)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]


def test_process_descriptions_are_openapi_30(http: httpx.Client):
    listed = http.get("processes").json()["processes"]
    ids = {p["id"] for p in listed}
    assert {"extract", "batch-extract", "list-datasets", "sleep_a_while", "primes_between"} <= ids
    assert all(p["jobControlOptions"] == ["async-execute", "dismiss"] for p in listed)
    extract = http.get("processes/extract").json()
    assert {"geometry", "dataset_ids", "aggregation", "time_range", "output"} <= set(
        extract["inputs"]
    )
    assert not {"bbox", "target_resolution", "resampling"} & set(extract["inputs"])
    assert extract["inputs"]["geometry"]["minOccurs"] == 1
    assert extract["inputs"]["time_range"]["schema"]["nullable"] is True
    text = http.get("processes/batch-extract").text
    assert "$defs" not in text and "$ref" not in text and '"null"' not in text
    assert '"anyOf":[{"type":"null"}' not in text.replace(" ", "")
    sleep = http.get("processes/sleep_a_while").json()
    assert sleep["inputs"]["duration"]["schema"]["default"] == 10
    assert sleep["inputs"]["fail"]["schema"] == {"default": False, "type": "boolean"}
    assert sleep["outputs"]["return_value"]["schema"] == {"type": "number"}


def test_job_life_cycle(http: httpx.Client, service: LiveService):
    response = execute(http, "sleep_a_while", duration=1.0)
    assert response.status_code == 201
    info = response.json()
    job_id = info["jobID"]
    assert response.headers["location"] == f"{service.url}jobs/{job_id}"
    assert job_id.startswith("job_") and info["processID"] == "sleep_a_while"
    assert info["type"] == "process" and info["status"] in ("accepted", "running")
    assert datetime.fromisoformat(info["created"]).tzinfo is not None
    assert_problem(http.get(f"jobs/{job_id}/results"), 404, "result-not-ready")
    running = poll(http, job_id, {"running"})
    assert isinstance(running["progress"], int) and 0 <= running["progress"] < 100
    done = poll(http, job_id, {"successful", "failed"})
    assert done["status"] == "successful" and done["progress"] == 100 and done["message"]
    for key in ("created", "started", "updated", "finished"):
        assert datetime.fromisoformat(done[key]).tzinfo is not None
    assert datetime.fromisoformat(done["finished"]) >= datetime.fromisoformat(done["started"])
    assert 1.0 <= http.get(f"jobs/{job_id}/results").json()["return_value"] < 3
    jobs = [j["jobID"] for j in http.get("jobs").json()["jobs"]]
    assert job_id in jobs


def test_status_request_may_wait_for_the_job(http: httpx.Client):
    """``Prefer: wait=N`` (RFC 7240) holds a status request until the job settles, or N s."""
    job_id = execute(http, "sleep_a_while", duration=1.0).json()["jobID"]
    started = time.monotonic()
    info = http.get(f"jobs/{job_id}", headers={"Prefer": "wait=8"})
    assert info.json()["status"] == "successful" and time.monotonic() - started < 5
    assert info.headers["preference-applied"] == "wait=8"
    assert "preference-applied" not in http.get(f"jobs/{job_id}").headers  # no waiting asked

    job_id = execute(http, "sleep_a_while", duration=30).json()["jobID"]
    started = time.monotonic()
    assert http.get(f"jobs/{job_id}", headers={"Prefer": "wait=1"}).json()["status"] in (
        "accepted",
        "running",
    )
    assert 0.9 < time.monotonic() - started < 5
    with ThreadPoolExecutor(1) as pool:  # a dismissal ends the wait at once
        waiting = pool.submit(http.get, f"jobs/{job_id}", headers={"Prefer": "wait=10"})
        time.sleep(0.5)
        http.delete(f"jobs/{job_id}")
        assert waiting.result(timeout=5).json()["status"] == "dismissed"
    assert time.monotonic() - started < 8


def test_failing_job_has_a_message_and_no_results(http: httpx.Client):
    job_id = execute(http, "sleep_a_while", duration=0.4, fail=True).json()["jobID"]
    done = poll(http, job_id, {"successful", "failed"})
    assert done["status"] == "failed" and "on purpose" in done["message"]
    assert 0 < done["progress"] < 100
    body = assert_problem(http.get(f"jobs/{job_id}/results"), 500, "job-failed")
    assert "on purpose" in body["detail"]


def test_primes(http: httpx.Client):
    job_id = execute(http, "primes_between", min_val=10, max_val=30).json()["jobID"]
    assert poll(http, job_id, {"successful"})["status"] == "successful"
    assert http.get(f"jobs/{job_id}/results").json() == {"return_value": [11, 13, 17, 19, 23, 29]}
    job_id = http.post("processes/primes_between/execution", json={}).json()["jobID"]
    poll(http, job_id, {"successful"})
    assert http.get(f"jobs/{job_id}/results").json()["return_value"][-1] == 97


def test_job_list_filters(http: httpx.Client):
    first = execute(http, "primes_between", max_val=5).json()["jobID"]
    second = execute(http, "sleep_a_while", duration=0.05).json()["jobID"]
    poll(http, first, {"successful"})
    poll(http, second, {"successful"})
    jobs = http.get("jobs", params={"processID": "primes_between"}).json()["jobs"]
    assert first in {j["jobID"] for j in jobs} and {j["processID"] for j in jobs} == {
        "primes_between"
    }
    statuses = http.get("jobs", params={"status": ["successful", "failed"]}).json()["jobs"]
    assert {j["status"] for j in statuses} <= {"successful", "failed"}
    assert len(http.get("jobs", params={"limit": 1}).json()["jobs"]) == 1
    numbers = [int(j["jobID"].removeprefix("job_")) for j in http.get("jobs").json()["jobs"]]
    assert numbers == sorted(numbers)
    assert_problem(http.get("jobs", params={"limit": 0}), 400, "invalid-request")
    assert_problem(http.get("jobs", params={"status": "sleeping"}), 400, "invalid-request")


def test_dismiss_running_job(http: httpx.Client):
    job_id = execute(http, "sleep_a_while", duration=30).json()["jobID"]
    poll(http, job_id, {"running"})
    response = http.delete(f"jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    assert http.get(f"jobs/{job_id}").json()["status"] == "dismissed"
    assert_problem(http.get(f"jobs/{job_id}/results"), 410, "job-dismissed")
    assert http.delete(f"jobs/{job_id}").status_code == 200  # now removed
    assert_problem(http.get(f"jobs/{job_id}"), 404, "no-such-job")


def test_dismiss_finished_job_removes_it_with_its_results(http: httpx.Client):
    job_id = execute(http, "primes_between", max_val=10).json()["jobID"]
    poll(http, job_id, {"successful"})
    response = http.delete(f"jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    assert_problem(http.get(f"jobs/{job_id}"), 404, "no-such-job")
    assert_problem(http.get(f"jobs/{job_id}/results"), 404, "no-such-job")
    assert_problem(http.delete(f"jobs/{job_id}"), 404, "no-such-job")


def test_batch_extract_progress_rises_through_intermediate_values(http: httpx.Client):
    # 400 geometries: 10 groups of 40 per dataset, enough work between reports to see them
    # however loaded the machine
    geometries = [
        square(-96.65 + 0.003 * (i % 100), 38.85 + 0.01 * (i % 7) + 0.002 * (i // 100))
        for i in range(400)
    ]
    inputs = {"geometries": geometries, "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}
    warm_up = {**inputs, "geometries": [square(-96.6, 38.8)]}  # numba compiles on first use
    job_id = execute(http, "batch-extract", **warm_up).json()["jobID"]
    poll(http, job_id, {"successful"})
    job_id = http.post("processes/batch-extract/execution", json={"inputs": inputs}).json()["jobID"]
    seen = []
    while (info := http.get(f"jobs/{job_id}").json())["status"] in ("accepted", "running"):
        if info.get("progress") is not None:
            seen.append(info["progress"])
    assert info["status"] == "successful", info
    seen.append(info["progress"])
    assert seen == sorted(seen), seen
    assert any(0 < p < 100 for p in seen), seen
    assert seen[-1] == 100
    response = http.get(f"jobs/{job_id}/results").json()["response"]
    assert response["total_geometries"] == 400 and response["total_results"] == 800


def test_list_datasets(http: httpx.Client):
    job_id = execute(http, "list-datasets", provider="sample").json()["jobID"]
    poll(http, job_id, {"successful"})
    ids = {d["id"] for d in http.get(f"jobs/{job_id}/results").json()["datasets"]}
    assert {"sample:elevation", "sample:land_cover"} <= ids
    assert_problem(execute(http, "list-datasets", provider="nope"), 400, "unknown-dataset")


@pytest.mark.parametrize(
    ("inputs", "type_end", "words"),
    [
        ({"geometry": POINT, "dataset_ids": ["sample:elevation"], "colour": 1},
         "invalid-input", "'colour'"),
        ({"geometry": POINT, "dataset_ids": "sample:elevation"}, "invalid-input", "dataset_ids"),
        ({"dataset_ids": ["sample:elevation"]}, "invalid-input", "geometry"),
        ({"geometry": POINT, "dataset_ids": ["sample:curvature"]}, "unknown-dataset", "curvature"),
        ({"geometry": POINT, "dataset_ids": ["nope:x"]}, "unknown-dataset", "nope"),
        ({"geometry": POINT, "dataset_ids": ["Bad Id"]}, "invalid-input", "Bad Id"),
        ({"geometry": POINT, "dataset_ids": ["sample:elevation"], "output": "raster"},
         "raster-not-served", "extract_raster"),
        ({"geometry": POINT, "dataset_ids": ["sample:elevation"], "bbox": [0, 0, 1, 1]},
         "raster-not-served", "bbox"),
    ],
)  # fmt: skip
def test_bad_inputs_are_400_problems_naming_them(
    http: httpx.Client, inputs: dict, type_end: str, words: str
):
    before = http.get("jobs").json()["jobs"]
    body = assert_problem(execute(http, "extract", **inputs), 400, type_end)
    assert words in body["detail"]
    assert http.get("jobs").json()["jobs"] == before  # no job was created


def test_problems_everywhere(http: httpx.Client):
    assert_problem(http.get("no/such/route"), 404, "not-found")
    assert_problem(http.get("processes/nope"), 404, "no-such-process")
    assert_problem(execute(http, "nope"), 404, "no-such-process")
    assert_problem(http.get("jobs/job_999999"), 404, "no-such-job")
    assert_problem(http.put("jobs"), 405, "method-not-allowed")
    assert http.put("jobs/job_0").headers["allow"] == "DELETE, GET"
    bad_json = http.post(
        "processes/extract/execution",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert_problem(bad_json, 400, "invalid-request")
    mixed = {"inputs": {"fail": False}, "duration": 1}  # an input beside 'inputs'
    wrapped = http.post("processes/sleep_a_while/execution", json=mixed)
    assert "duration" in assert_problem(wrapped, 400, "invalid-request")["detail"]
    misspelt = http.post("processes/sleep_a_while/execution", json={"duraton": 1})
    assert "duraton" in assert_problem(misspelt, 400, "invalid-input")["detail"]
    for headers in (
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
    ):
        text = http.post("processes/extract/execution", content=b'{"inputs": {}}', headers=headers)
        detail = assert_problem(text, 415, "unsupported-media-type")["detail"]
        assert "Content-Type: application/json" in detail
    assert http.post("processes/nope/execution").status_code == 404  # no body: no 415


def test_cors(http: httpx.Client):
    response = http.options(
        "processes",
        headers={"Origin": "http://example.org", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "http://example.org")


def test_limits(tmp_path: Path):
    env = {
        "CAS_MAX_DATASETS_PER_REQUEST": "1",
        "CAS_MAX_POLYGON_VERTICES": "5",
        "CAS_MAX_GEOMETRIES_PER_REQUEST": "2",
    }
    with live_service(tmp_path, env) as live, httpx.Client(base_url=live.url) as http:
        two = {"geometry": POINT, "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}
        body = assert_problem(execute(http, "extract", **two), 400, "limit-exceeded")
        assert "max_datasets_per_request" in body["detail"]
        ring = [[-96.5, 39.0], [-96.49, 39.0], [-96.49, 39.01], [-96.495, 39.015],
                [-96.5, 39.01], [-96.5, 39.0]]  # fmt: skip
        polygon = {"type": "Polygon", "coordinates": [ring]}
        many = {"geometries": [POINT, polygon], "dataset_ids": ["sample:elevation"]}
        response = http.post("processes/batch-extract/execution", json={"inputs": many})
        assert "max_polygon_vertices" in assert_problem(response, 400, "limit-exceeded")["detail"]
        three = [POINT] * 3
        response = execute(http, "batch-extract", geometries=three, dataset_ids=["sample:x"])
        detail = assert_problem(response, 400, "limit-exceeded")["detail"]
        assert "3 geometries" in detail and "max_geometries_per_request" in detail
        assert http.get("jobs").json()["jobs"] == []
    (tmp_path / "default").mkdir()
    with live_service(tmp_path / "default") as live, httpx.Client(base_url=live.url) as http:
        many = [POINT] * 1001  # CAS's model holds 1000 at most: a limit, not a malformed input
        response = execute(http, "batch-extract", geometries=many, dataset_ids=["sample:x"])
        assert "1001 geometries" in assert_problem(response, 400, "limit-exceeded")["detail"]


def test_jobs_db_defaults_to_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cas_xr.service._options import ServiceOptions

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # platformdirs on Linux
    monkeypatch.chdir(tmp_path)
    options = ServiceOptions.from_settings(cas.Settings())
    assert options.jobs_db == str(tmp_path / "data" / "cas_xr" / "jobs.sqlite")
    create_app(cas.Settings(), testing=True)
    assert (tmp_path / "data" / "cas_xr" / "jobs.sqlite").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing in the working folder
