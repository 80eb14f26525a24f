"""With ``dask_scheduler`` naming a cluster, the service's jobs compute there (under uvicorn).

A ``distributed.LocalCluster`` of worker processes runs in the test process; `cas-xr serve`
runs in its own process with ``CAS_DASK_SCHEDULER`` set to the cluster's address. The
scheduler's cumulative count of finished zonal tasks shows where the work ran: a job
computed in the service's own threads never reaches the scheduler.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import cas_xr as cas
from cas_xr.engine import _scheduler
from tests.test_service_support import POINT, LiveService, live_service, poll, square

distributed = pytest.importorskip("distributed")

IDS = ["sample:elevation", "sample:clay_0-5cm", "sample:land_cover"]
_ZONAL_TASKS = ("window_task", "point_task", "compute_unit")  # zonal kernels; units


@pytest.fixture(scope="module")
def scheduler(cluster: Any) -> Iterator[Any]:
    """A client to look at the scheduler with; never the default client of this process."""
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def service(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    env = {"CAS_DASK_SCHEDULER": cluster.scheduler_address}
    with live_service(tmp_path_factory.mktemp("service"), env, log_level="info") as live:
        yield live


@pytest.fixture
def http(service: LiveService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


def zonal_tasks_done(scheduler: Any) -> int:
    """How many zonal kernel tasks the cluster has finished so far."""

    def count(dask_scheduler: Any) -> int:
        prefixes = dask_scheduler.task_prefixes
        return sum(prefixes[p].state_counts["memory"] for p in _ZONAL_TASKS if p in prefixes)

    return int(scheduler.run_on_scheduler(count))


def run_job(http: httpx.Client, process: str, inputs: dict[str, Any]) -> dict[str, Any]:
    job_id = http.post(f"processes/{process}/execution", json={"inputs": inputs}).json()["jobID"]
    info = poll(http, job_id, {"successful", "failed", "dismissed"}, timeout=120)
    assert info["status"] == "successful", info
    return dict(http.get(f"jobs/{job_id}/results").json()["response"])


def numbers(response: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The statistics of a response (JSON), without ids, timings and provenance."""
    return [
        (r["dataset_id"], r["value"], r["quality"], r["coverage_fraction"], r["pixel_count"])
        for r in response["results"]
    ]


def on_threads(function: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The facade's answer computed on this process's threads."""
    assert _scheduler.current_scheduler().description == "threads"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quality warnings are in the responses too
        return dict(function(request).model_dump(mode="json"))


def test_the_log_says_where_jobs_compute(service: LiveService, cluster: Any):
    text = service.log.read_text(errors="replace")
    assert f"computing on distributed ({cluster.scheduler_address})" in text, text[-2000:]


def test_extract_and_batch_extract_compute_on_the_cluster(http: httpx.Client, scheduler: Any):
    request = {"geometry": square(-96.56, 38.95, 0.03), "dataset_ids": IDS}
    before = zonal_tasks_done(scheduler)
    got = run_job(http, "extract", request)
    after_extract = zonal_tasks_done(scheduler)
    assert after_extract > before
    assert numbers(got) == numbers(on_threads(cas.extract_sync, request))

    geometries = [POINT] + [square(-96.65 + 0.005 * i, 38.85 + 0.01 * (i % 7)) for i in range(59)]
    batch = {
        "geometries": geometries,
        "dataset_ids": ["sample:clay_0-5cm", "sample:land_cover"],
        "aggregation": "majority",  # clay: its classes are its distinct values, found there too
    }
    got = run_job(http, "batch-extract", batch)
    assert zonal_tasks_done(scheduler) > after_extract
    expected = on_threads(cas.batch_extract_sync, batch)
    assert got["total_results"] == expected["total_results"] == 120
    assert [numbers(r) for r in got["responses"]] == [numbers(r) for r in expected["responses"]]


def test_progress_dismissal_and_restart_on_the_cluster(service: LiveService, scheduler: Any):
    many = [square(-96.69 + 0.0011 * (i % 300), 38.82 + 0.012 * (i // 300)) for i in range(1000)]
    big = {"inputs": {"geometries": many, "dataset_ids": IDS}}
    with httpx.Client(base_url=service.url, timeout=30) as http:
        # progress rises through intermediate values, computed on the cluster
        before = zonal_tasks_done(scheduler)
        small = {"inputs": {"geometries": many[:300], "dataset_ids": IDS[:1]}}
        job_id = http.post("processes/batch-extract/execution", json=small).json()["jobID"]
        seen = []
        while (info := http.get(f"jobs/{job_id}").json())["status"] in ("accepted", "running"):
            seen.append(info.get("progress") or 0)
        assert info["status"] == "successful", info
        seen.append(info["progress"])
        assert seen == sorted(seen) and seen[-1] == 100 and any(0 < p < 100 for p in seen), seen
        assert zonal_tasks_done(scheduler) > before

        # a running job is dismissed promptly; the service goes on
        job_id = http.post("processes/batch-extract/execution", json=big).json()["jobID"]
        poll(http, job_id, {"running"})
        dismissed = http.delete(f"jobs/{job_id}").json()
        assert dismissed["status"] == "dismissed" and dismissed["message"] == "dismissed by request"
        assert http.get(f"jobs/{job_id}/results").status_code == 410

        # killed mid-job: after a restart the job failed with a message, the rest is there
        cut = http.post("processes/batch-extract/execution", json=big).json()["jobID"]
        poll(http, cut, {"running"})
    service.kill()
    service.start()
    with httpx.Client(base_url=service.url, timeout=30) as http:
        info = http.get(f"jobs/{cut}").json()
        assert info["status"] == "failed" and "cut off" in info["message"], info
        assert http.get(f"jobs/{job_id}").json()["status"] == "dismissed"
        before = zonal_tasks_done(scheduler)
        response = run_job(http, "extract", {"geometry": square(-96.4, 39.1), "dataset_ids": IDS})
        assert zonal_tasks_done(scheduler) > before and len(response["results"]) == 3
        assert int(http.get("jobs").json()["jobs"][-1]["jobID"].removeprefix("job_")) > int(
            cut.removeprefix("job_")
        )
