"""Jobs survive restarts: killed mid-job, the service comes back with every job accounted for."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.test_service_support import LiveService, poll


def test_kill_mid_job_then_restart(tmp_path: Path):
    live = LiveService(tmp_path, {}).start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            done = http.post(
                "processes/primes_between/execution", json={"inputs": {"max_val": 20}}
            ).json()["jobID"]
            poll(http, done, {"successful"})
            # four workers: four long jobs run, the fifth waits in the queue
            long = [
                http.post(
                    "processes/sleep_a_while/execution", json={"inputs": {"duration": 60}}
                ).json()["jobID"]
                for _ in range(4)
            ]
            queued = http.post(
                "processes/sleep_a_while/execution", json={"inputs": {"duration": 0.2}}
            ).json()["jobID"]
            for job_id in long:
                poll(http, job_id, {"running"})
            assert http.get(f"jobs/{queued}").json()["status"] == "accepted"
        live.kill()  # SIGKILL: no shutdown hook runs
        live.start()
        with httpx.Client(base_url=live.url, timeout=30) as http:
            for job_id in long:
                info = http.get(f"jobs/{job_id}").json()
                assert info["status"] == "failed", info
                assert "cut off" in info["message"] and info["finished"]
            assert poll(http, queued, {"successful", "failed"})["status"] == "successful"
            assert http.get(f"jobs/{done}").json()["status"] == "successful"
            assert http.get(f"jobs/{done}/results").json() == {
                "return_value": [2, 3, 5, 7, 11, 13, 17, 19]
            }
            http.delete(f"jobs/{queued}")  # removed: its id must still never come back
            new = http.post("processes/primes_between/execution", json={}).json()["jobID"]
            old = {done, queued, *long}
            assert new not in old
            assert int(new.removeprefix("job_")) > max(int(j.removeprefix("job_")) for j in old)
    finally:
        live.stop()


def test_graceful_stop_fails_running_jobs_with_a_message(tmp_path: Path):
    live = LiveService(tmp_path, {}).start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            job_id = http.post(
                "processes/sleep_a_while/execution", json={"inputs": {"duration": 60}}
            ).json()["jobID"]
            poll(http, job_id, {"running"})
        live.stop()
        with sqlite3.connect(tmp_path / "jobs.sqlite") as db:  # before any restart
            query = "SELECT status, message FROM jobs WHERE job_id = ?"
            status, message = db.execute(query, (job_id,)).fetchone()
        assert status == "failed" and "cut off" in message
        live.start()
        with httpx.Client(base_url=live.url, timeout=30) as http:
            info = http.get(f"jobs/{job_id}").json()
            assert info["status"] == "failed" and "cut off" in info["message"]
    finally:
        live.stop()


def _post(url: str, inputs: dict[str, Any]) -> str:
    response = httpx.post(f"{url}processes/sleep_a_while/execution", json={"inputs": inputs})
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def test_services_sharing_a_database_take_over_only_the_jobs_of_the_gone(tmp_path: Path):
    first = LiveService(tmp_path, {}).start()
    second = LiveService(tmp_path, {})  # the same folder: the same jobs database
    try:
        short = _post(first.url, {"duration": 12})  # outlasts the second one's start
        with httpx.Client(base_url=first.url, timeout=30) as http:
            poll(http, short, {"running"})
            second.start()  # its start-up must not take the first one's running job
            # both create jobs at once: every id given once
            urls = [first.url, second.url] * 20
            with ThreadPoolExecutor(8) as pool:
                ids = list(pool.map(_post, urls, [{"duration": 0.01}] * len(urls)))
            assert len(set(ids)) == len(ids)
            assert http.get(f"jobs/{short}").json()["status"] == "running"
            assert poll(http, short, {"successful", "failed"})["status"] == "successful"
        long = [_post(first.url, {"duration": 60}) for _ in range(4)]  # four job threads
        queued = _post(first.url, {"duration": 0.2})  # waits in the first one's queue
        with httpx.Client(base_url=second.url, timeout=30) as http:
            for job_id in long:
                poll(http, job_id, {"running"})
            assert http.get(f"jobs/{queued}").json()["status"] == "accepted"
            first.kill()  # gone without a word: the second takes over within seconds
            assert poll(http, queued, {"successful", "failed"})["status"] == "successful"
            for job_id in long:
                info = poll(http, job_id, {"failed", "successful"})
                assert info["status"] == "failed" and "cut off" in info["message"], info
            for job_id in ids:
                assert poll(http, job_id, {"successful", "failed"})["status"] == "successful"
    finally:
        first.stop()
        second.stop()
