"""Small jobs queued together run as one computation, each with the outcome it has alone."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import cas_xr as cas
from cas_xr.client import AsyncClient
from cas_xr.errors import InvalidArgumentError, QualityWarning
from cas_xr.frontends import extract_together, run_sync
from cas_xr.models import AttributeRequest
from cas_xr.ogc import JobStatus
from cas_xr.service._executor import Batch, JobContext, JobRunner
from cas_xr.service._jobs import JobStore
from tests.test_service_support import LiveService, live_service


def _square(lon: float, lat: float, side: float = 0.01) -> dict[str, Any]:
    ring = [[lon, lat], [lon + side, lat], [lon + side, lat + side], [lon, lat + side], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _requests(n: int, **common: Any) -> list[AttributeRequest]:
    return [
        AttributeRequest.model_validate(
            {"geometry": _square(-96.66 + 0.013 * i, 38.85 + 0.007 * i), **common}
        )
        for i in range(n)
    ]


def _busy_runner(store: JobStore) -> tuple[JobRunner, threading.Event]:
    """A one-worker runner kept busy until the returned event is set."""
    runner = JobRunner(store, workers=1)
    release = threading.Event()
    blocker = store.create("block", {})
    runner.submit(blocker.job_id, lambda context: {"waited": release.wait(30)})
    return runner, release


def test_jobs_queued_together_run_as_one_call():
    store = JobStore(":memory:")
    runner, release = _busy_runner(store)
    calls: list[list[int]] = []

    def run_many(items: Sequence[Any]) -> list[dict[str, Any]]:
        calls.append(list(items))
        return [{"double": 2 * i} for i in items]

    def alone(context: JobContext) -> dict[str, Any]:
        raise AssertionError("run together, never alone")

    ids = [store.create("double", {"i": i}).job_id for i in range(5)]
    done = [runner.submit(j, alone, batch=Batch("double", i, run_many)) for i, j in enumerate(ids)]
    other = store.create("double", {"i": 9}).job_id  # another key: a call of its own
    done.append(runner.submit(other, alone, batch=Batch("other", 9, run_many)))
    release.set()
    for future in done:
        future.result(30)
    assert sorted(calls) == [[0, 1, 2, 3, 4], [9]]
    for i, job_id in enumerate(ids):
        assert store.get(job_id).status is JobStatus.SUCCESSFUL  # type: ignore[union-attr]
        assert store.results(job_id) == {"double": 2 * i}
    runner.shutdown()


def test_a_failing_call_runs_each_job_alone_and_a_dismissed_job_is_left_out():
    store = JobStore(":memory:")
    runner, release = _busy_runner(store)

    def run_many(items: Sequence[Any]) -> list[dict[str, Any]]:
        if 0 in items:
            raise ZeroDivisionError("one of them divides by zero")
        return [{"inverse": 1 / i} for i in items]

    def alone(i: int) -> Any:
        return lambda context: {"inverse": 1 / i}

    ids = [store.create("inverse", {"i": i}).job_id for i in range(4)]
    done = [
        runner.submit(j, alone(i), batch=Batch("inverse", i, run_many)) for i, j in enumerate(ids)
    ]
    assert store.dismiss(ids[3])
    runner.cancel(ids[3])
    release.set()
    for future in done:
        future.result(30)
    statuses = [store.get(j).status for j in ids]  # type: ignore[union-attr]
    assert statuses == [JobStatus.FAILED, JobStatus.SUCCESSFUL, JobStatus.SUCCESSFUL,
                        JobStatus.DISMISSED]  # fmt: skip
    assert "internal error (ZeroDivisionError)" in store.get(ids[0]).message  # type: ignore[union-attr]
    assert store.results(ids[2]) == {"inverse": 0.5}
    runner.shutdown()


@pytest.mark.parametrize("stat", ["mean", "majority"])
def test_extract_together_gives_what_extract_gives(stat: str):
    datasets = ["sample:elevation", "sample:land_cover"]
    requests = _requests(6, dataset_ids=datasets, aggregation=stat)
    requests.append(AttributeRequest.model_validate(
        {"geometry": {"type": "Point", "coordinates": [-96.5, 39.0]}, "dataset_ids": datasets,
         "aggregation": stat}
    ))  # fmt: skip
    with pytest.warns(QualityWarning):
        together = run_sync(extract_together(requests), awaitable="extract_together")
    warnings.simplefilter("ignore", QualityWarning)
    cas.configure(result_cache_ttl_s=0)  # each alone is computed again, not read back
    for request, response in zip(requests, together, strict=True):
        alone = cas.extract_sync(request)
        assert response.geometry_hash == alone.geometry_hash
        assert response.warnings == alone.warnings
        for a, b in zip(response.results, alone.results, strict=True):
            assert not a.cached and not b.cached
            # provenance names what the geometry touched, whatever else the call read
            numbers = {"value", "coverage_fraction"}
            same = {"elapsed_ms", *numbers}
            assert a.model_dump(exclude=same) == b.model_dump(exclude=same)
            for name in numbers:  # the windows of a call of many start elsewhere
                assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12, abs=1e-12)


def test_extract_together_refuses_requests_that_differ_beyond_the_geometry():
    first, second = _requests(2, dataset_ids=["sample:elevation"])
    other = second.model_copy(update={"aggregation": "max"})
    with pytest.raises(InvalidArgumentError, match="differ only in their geometry"):
        run_sync(extract_together([first, other]), awaitable="extract_together")


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
@pytest.mark.parametrize("job_processes", [0, 1], ids=["job threads", "a worker process"])
def test_concurrent_extract_jobs_agree_with_extract_sync(tmp_path: Path, job_processes: int):
    requests = _requests(12, dataset_ids=["sample:elevation", "sample:clay_0-5cm"])

    async def send(url: str) -> list[Any]:
        async with AsyncClient(api_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.extract(r) for r in requests))

    with live_service(tmp_path, env={"CAS_JOB_PROCESSES": str(job_processes)}) as live:
        responses = asyncio.run(send(live.url))
    cas.configure(result_cache_ttl_s=0)
    for request, response in zip(requests, responses, strict=True):
        alone = cas.extract_sync(request)
        assert [r.value for r in response.results] == pytest.approx(
            [r.value for r in alone.results], rel=1e-12
        )
        assert [r.quality for r in response.results] == [r.quality for r in alone.results]


def test_jobs_queued_while_their_key_computes_run_together_next():
    store = JobStore(":memory:")
    runner = JobRunner(store, workers=3)
    computing, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def run_many(items: Sequence[Any]) -> list[dict[str, Any]]:
        calls.append(list(items))
        if items == [0]:
            computing.set()
            release.wait(30)
        return [{"i": i} for i in items]

    def alone(context: JobContext) -> dict[str, Any]:
        raise AssertionError("run together, never alone")

    def submit(i: int) -> Any:
        job_id = store.create("key", {"i": i}).job_id
        return runner.submit(job_id, alone, batch=Batch("key", i, run_many))

    done = [submit(0)]
    assert computing.wait(30)
    done += [submit(i) for i in range(1, 6)]  # the other workers are free, yet wait
    release.set()
    for future in done:
        future.result(30)
    assert calls == [[0], [1, 2, 3, 4, 5]]
    runner.shutdown()


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
def test_a_worker_process_computes_what_the_server_would_and_a_dead_one_is_replaced():
    import os
    import signal
    from concurrent.futures.process import BrokenProcessPool

    from cas_xr.service._options import ServiceOptions
    from cas_xr.service._processes import cas_processes
    from cas_xr.service._workers import WorkerProcesses

    options = ServiceOptions.from_settings(cas.Settings(jobs_db=":memory:"))
    requests = _requests(3, dataset_ids=["sample:elevation", "sample:land_cover"])
    cas.configure(result_cache_ttl_s=0)
    (extract,) = [p for p in cas_processes() if p.id == "extract"]
    assert extract.batch_function is not None
    here = extract.batch_function(requests, options)
    workers = WorkerProcesses(1)

    def values(outputs: list[dict[str, Any]]) -> list[list[Any]]:
        return [[r["value"] for r in out["response"]["results"]] for out in outputs]

    try:
        there = workers.run("extract", requests, options)
        assert values(there) == values(here)
        (pid,) = workers._current()._processes  # type: ignore[union-attr]
        assert os.getpriority(os.PRIO_PROCESS, pid) > os.getpriority(os.PRIO_PROCESS, 0)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            workers.run("extract", requests[:1], options)
        (again,) = values(workers.run("extract", requests[:1], options))
        assert again == pytest.approx(values(here)[0], rel=1e-12)  # a call of one geometry
    finally:
        workers.shutdown()


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")
@pytest.mark.parametrize("end", ["stop", "kill"])
def test_no_worker_process_outlives_its_server(tmp_path: Path, end: str):
    import psutil

    requests = _requests(4, dataset_ids=["sample:elevation"])

    async def send(url: str) -> list[Any]:
        async with AsyncClient(api_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.extract(r) for r in requests))

    live = LiveService(tmp_path, {"CAS_JOB_PROCESSES": "1"}).start()
    try:
        assert len(asyncio.run(send(live.url))) == 4  # computed in the worker process
        assert live.process is not None
        family = psutil.Process(live.process.pid).children(recursive=True)
        assert family  # the worker process, the forkserver it came from...
        getattr(live, end)()  # SIGTERM, or SIGKILL: no shutdown hook runs
        _, alive = psutil.wait_procs(family, timeout=15)
        assert alive == []
    finally:
        live.stop()


def test_the_jobs_of_a_failed_call_run_alone_at_the_same_time():
    """After a failed call (a timeout, say) its jobs do not wait for each other in turn."""
    store = JobStore(":memory:")
    runner = JobRunner(store, workers=3)
    release = threading.Event()
    blocker = store.create("block", {})
    runner.submit(blocker.job_id, lambda context: {"waited": release.wait(30)})
    inside = threading.Barrier(3, timeout=20)  # the three jobs alone, all at once

    def run_many(items: Sequence[Any]) -> list[dict[str, Any]]:
        raise TimeoutError("the call took too long")

    def alone(i: int) -> Any:
        return lambda context: {"waited": inside.wait() >= 0, "i": i}

    ids = [store.create("slow", {"i": i}).job_id for i in range(3)]
    done = [runner.submit(j, alone(i), batch=Batch("slow", i, run_many)) for i, j in enumerate(ids)]
    release.set()
    for future in done:
        future.result(30)
    for i, job_id in enumerate(ids):
        assert store.get(job_id).status is JobStatus.SUCCESSFUL  # type: ignore[union-attr]
        assert store.results(job_id) == {"waited": True, "i": i}
    runner.shutdown()
