"""cas_xr's client drives another OGC API - Processes server: wraptile's test service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cas_xr.client import Client, ClientError, ProcessRequest
from tests.test_service_support import cannot_start, free_port, wait_until_up

pytest.importorskip("wraptile")


@pytest.fixture(scope="module")
def wraptile_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("wraptile")) / "wraptile.log"
    command = [
        sys.executable, "-c", "from wraptile.cli import cli; cli()",
        "run", "--host", "127.0.0.1", "--port", str(port),
        "--", "wraptile.services.local.testing:service",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAS_", "EOZILLA_"))}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, alive=lambda: process.poll() is None)
    except RuntimeError as err:
        process.kill()
        cannot_start(f"wraptile: {err}\n{log.read_text(errors='replace')[-2000:]}")
    yield url
    process.terminate()
    process.wait(15)


def test_client_drives_wraptile(wraptile_url: str):
    with Client(api_url=wraptile_url) as client:
        assert client.get_capabilities().links
        assert len(client.get_conformance().conformsTo) >= 6
        assert {"sleep_a_while", "primes_between"} <= {
            p.id for p in client.get_processes().processes
        }
        description = client.get_process("sleep_a_while")
        assert description.inputs["duration"].schema_["type"] == "number"
        sleeping = client.execute_process("sleep_a_while", ProcessRequest(duration=0.3))
        failing = client.execute_process("sleep_a_while", {"fail": True, "duration": 0.2})
        primes = client.execute_process("primes_between", {"max_val": 10})
        assert client.wait_for_job(primes.jobID, timeout=30).status == "successful"
        assert client.get_job_results(primes.jobID)["return_value"] == [2, 3, 5, 7]
        assert client.wait_for_job(sleeping.jobID, timeout=30).status == "successful"
        assert client.wait_for_job(failing.jobID, timeout=30).status == "failed"
        with pytest.raises(ClientError) as info:
            client.get_job_results(failing.jobID)
        assert info.value.status_code is not None and info.value.status_code >= 400
        assert info.value.problem.get("detail")
        listed = {job.jobID for job in client.get_jobs().jobs}
        assert {sleeping.jobID, failing.jobID, primes.jobID} <= listed
        client.dismiss_job(primes.jobID)
        with pytest.raises(ClientError) as info:
            client.get_job(primes.jobID)
        assert info.value.status_code == 404
