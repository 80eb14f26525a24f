"""Dismissal reaches a running job whichever service process the DELETE reaches."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from cas_xr.ogc import JobStatus
from cas_xr.service._executor import JobCancelledError, JobContext
from cas_xr.service._jobs import JobStore
from tests.test_service_support import live_service, poll


def test_a_job_stops_at_its_next_report_once_the_store_no_longer_runs_it():
    store = JobStore(":memory:")
    job_id = store.create("sleep_a_while", {}).job_id
    assert store.start(job_id)
    context = JobContext(job_id, store, threading.Event())
    context.report(10, "a tenth")
    assert store.dismiss(job_id)  # as a DELETE in another process: this one's event stays unset
    with pytest.raises(JobCancelledError):
        context.report(20, "a fifth")
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.DISMISSED
    assert record.progress == 10


def test_a_job_dismissed_through_another_process_frees_its_thread(tmp_path: Path):
    # two server processes on one database (threads of one process would take each
    # other's jobs over: they share a pid)
    env = {"CAS_JOBS_DB": str(tmp_path / "jobs.sqlite"), "CAS_JOB_WORKERS": "1"}
    for name in ("here", "there"):
        (tmp_path / name).mkdir()
    with (
        live_service(tmp_path / "here", env) as here,
        live_service(tmp_path / "there", env) as there,
        httpx.Client(base_url=here.url, timeout=30) as client,
    ):
        body = {"inputs": {"duration": 120}}
        job_id = client.post("processes/sleep_a_while/execution", json=body).json()["jobID"]
        assert poll(client, job_id, {"running"})["status"] == "running"
        dismissed = httpx.delete(f"{there.url}jobs/{job_id}")
        assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
        # the job stops at its next report (every 0.1 s): the only job thread is free again
        body = {"inputs": {"max_val": 20}}
        after = client.post("processes/primes_between/execution", json=body).json()["jobID"]
        assert poll(client, after, {"successful"}, timeout=20)["status"] == "successful"
        assert client.get(f"jobs/{job_id}").json()["status"] == "dismissed"
