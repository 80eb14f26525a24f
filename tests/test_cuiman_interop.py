"""Code written for cuiman (eozilla's OGC API - Processes client) runs against the service.

``notebooks/client_001_processes_and_jobs.ipynb`` and ``notebooks/client_002_statistics.ipynb``
run, unchanged, on a Jupyter kernel of the Python 3.12 interpreter ``.ci/run`` prepares
with cuiman and ipykernel (``CUIMAN_PYTHON``: cuiman needs Python 3.12), where they use
cuiman's ``Client`` and gavicore's models; ``tests/test_notebooks.py`` runs them on
cas_xr's client. A script of the same steps with stricter checks (``status.value``
included) runs with cuiman and with ``cas_xr.client``. Under CI=true a missing interpreter
fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_notebooks import ROOT, run_notebook, write_kernelspec
from tests.test_service_support import LiveService, live_service

SCRIPT = """\
import importlib
import json
import sys
import time

url, client_module, models_module = sys.argv[1:4]
Client = importlib.import_module(client_module).Client
ClientError = importlib.import_module(client_module).ClientError
ProcessRequest = importlib.import_module(models_module).ProcessRequest

client = Client(api_url=url)
seen = {"client": type(client).__module__}
seen["conformance"] = len(client.get_conformance().conformsTo)
seen["landing_links"] = len(client.get_capabilities().links) > 0
seen["processes"] = sorted(p.id for p in client.get_processes().processes)
seen["sleep_inputs"] = sorted(client.get_process(process_id="sleep_a_while").inputs)
seen["extract_inputs"] = "geometry" in client.get_process(process_id="extract").inputs
seen["jobs_before"] = len(client.get_jobs().jobs)


def execute(process_id, **inputs):
    return client.execute_process(process_id=process_id, request=ProcessRequest(inputs=inputs))


def wait(job_id):
    for _ in range(600):
        info = client.get_job(job_id)
        if info.status.value not in ("accepted", "running"):
            return info
        time.sleep(0.05)
    raise TimeoutError(job_id)


sleeping = execute("sleep_a_while", duration=0.5)
failing = execute("sleep_a_while", fail=True, duration=0.1)
primes = execute("primes_between", max_val=20)
seen["first_status"] = sleeping.status.value
seen["statuses"] = {
    name: wait(job.jobID).status.value
    for name, job in (("sleep", sleeping), ("fail", failing), ("primes", primes))
}
seen["primes"] = client.get_job_results(primes.jobID).root["return_value"]
try:
    client.get_job_results(failing.jobID)
except ClientError as err:
    seen["failed_results"] = str(err)[:200]
point = {"type": "Point", "coordinates": [-96.5, 39.0]}
one = execute("extract", geometry=point, dataset_ids=["sample:elevation", "sample:clay_0-5cm"])
seen["extract_status"] = wait(one.jobID).status.value
response = client.get_job_results(one.jobID).root["response"]
seen["extract"] = [(r["dataset_id"], r["units"], r["quality"]) for r in response["results"]]
square = [[-96.6, 38.9], [-96.55, 38.9], [-96.55, 38.95], [-96.6, 38.95], [-96.6, 38.9]]
batch = execute("batch-extract", geometries=[point, {"type": "Polygon", "coordinates": [square]}],
                dataset_ids=["sample:land_cover"], aggregation="majority")
seen["batch_status"] = wait(batch.jobID).status.value
responses = client.get_job_results(batch.jobID).root["response"]["responses"]
seen["batch"] = [r["results"][0]["value"] for r in responses]
try:
    execute("extract", geometry=point, dataset_ids=["sample:elevation"], output="raster")
except ClientError as err:
    seen["raster"] = str(err)[:200]
for job in client.get_jobs().jobs:
    client.dismiss_job(job.jobID)
seen["jobs_after"] = len(client.get_jobs().jobs)
print(json.dumps(seen))
"""


def _cuiman_python() -> str:
    python = os.environ.get("CUIMAN_PYTHON")
    if python and Path(python).exists():
        return python
    message = "CUIMAN_PYTHON names no Python with cuiman (.ci/run creates one)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    with live_service(tmp_path) as live:
        yield live


def _run(python: str, service: LiveService, client: str, models: str) -> dict:
    script = service.folder / "cuiman_steps.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
    done = subprocess.run(
        [python, str(script), service.url, client, models],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _check(seen: dict) -> None:
    assert seen["conformance"] == 6 and seen["landing_links"]
    expected = {"extract", "batch-extract", "extract-table", "list-datasets", "sleep_a_while"}
    assert expected <= set(seen["processes"])
    assert seen["sleep_inputs"] == ["duration", "fail"] and seen["extract_inputs"]
    assert seen["first_status"] in ("accepted", "running")
    assert seen["statuses"] == {"sleep": "successful", "fail": "failed", "primes": "successful"}
    assert seen["primes"] == [2, 3, 5, 7, 11, 13, 17, 19]
    assert "500" in seen["failed_results"]
    assert seen["extract_status"] == seen["batch_status"] == "successful"
    assert seen["extract"] == [
        ["sample:elevation", "m", "good"],
        ["sample:clay_0-5cm", "g/kg", "good"],
    ]
    assert len(seen["batch"]) == 2 and all(isinstance(v, float) for v in seen["batch"])
    assert "400" in seen["raster"]
    assert seen["jobs_after"] == 0


def test_cuiman_drives_the_service(service: LiveService):
    seen = _run(_cuiman_python(), service, "cuiman", "gavicore.models")
    assert seen["client"].startswith("cuiman")
    _check(seen)


def test_cuiman_style_code_runs_unchanged_with_cas_xr_client(service: LiveService):
    seen = _run(sys.executable, service, "cas_xr.client", "cas_xr.client")
    assert seen["client"].startswith("cas_xr.client")
    _check(seen)


NOTEBOOK_OUTPUTS = {
    "client_001_processes_and_jobs.ipynb": [
        "['successful', 'failed', 'successful']",
        "[2, 3, 5, 7, 11, 13, 17, 19, 23, 29,",
    ],
    "client_002_statistics.ipynb": [
        "('sample:elevation',",
        "'m', 'good')",
        "('sample:clay_0-5cm',",
        "'g/kg', 'good')",
    ],
}


@pytest.mark.parametrize("name", sorted(NOTEBOOK_OUTPUTS))
def test_client_notebooks_run_unchanged_with_cuiman(
    name: str, service: LiveService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = write_kernelspec(_cuiman_python(), tmp_path, monkeypatch)
    monkeypatch.setenv("CAS_CLIENT_API_URL", service.url)
    notebook = run_notebook(ROOT / "notebooks" / name, kernel, tmp_path)
    shown = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "client: cuiman" in shown
    for expected in NOTEBOOK_OUTPUTS[name]:
        assert expected in shown
