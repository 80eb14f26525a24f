"""The client: models and configuration; on a live service, the same answers as the facade."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import cas_xr as cas
from cas_xr.client import (
    AsyncClient,
    Client,
    ClientConfig,
    ClientError,
    JobStatus,
    ProcessRequest,
    StatusInfo,
)
from cas_xr.service._redact import redact
from tests.test_service_support import POINT, LiveService, free_port, live_service, square

# -- without a service ----------------------------------------------------------------------


def test_process_request_takes_extra_arguments_as_inputs():
    assert ProcessRequest(duration=2).body() == {"inputs": {"duration": 2}}
    assert ProcessRequest.model_validate({"fail": True}).inputs == {"fail": True}
    assert ProcessRequest.model_validate({}).body() == {}
    explicit = ProcessRequest(inputs={"a": 1}, response="document")
    assert explicit.body() == {"inputs": {"a": 1}, "response": "document"}
    assert ProcessRequest(inputs={"a": 1}, b=2).inputs == {"a": 1, "b": 2}
    assert json.loads(repr(ProcessRequest(duration=2))) == {"inputs": {"duration": 2}}


def test_config_defaults_environment_and_masked_secrets(monkeypatch: pytest.MonkeyPatch):
    client = Client()
    assert client.config.api_url == "http://127.0.0.1:8008/"
    shown = json.loads(repr(client))
    assert shown["auth_type"] == "none" and shown["api_key_header"] == "X-API-Key"
    assert shown["token_header"] == "X-Auth-Token" and shown["use_bearer"] is False
    with pytest.raises(ValueError, match="needs api_key"):
        ClientConfig(auth_type="api-key")
    monkeypatch.setenv("CAS_CLIENT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("CAS_CLIENT_API_KEY", "s3cret")
    monkeypatch.setenv("CAS_CLIENT_AUTH_TYPE", "api-key")
    config = ClientConfig()
    assert config.api_url == "http://127.0.0.1:9/api/"
    assert config.headers() == {"X-API-Key": "s3cret"}
    assert "s3cret" not in repr(config) and "s3cret" not in repr(Client())
    token = ClientConfig(auth_type="token", token="t", use_bearer=True)
    assert token.headers() == {"Authorization": "Bearer t"}
    assert ClientConfig(auth_type="token", token="t").headers() == {"X-Auth-Token": "t"}
    assert ClientConfig(auth_type="basic", username="u", password="p").auth() is not None


def test_idempotent_calls_retry_on_connection_errors():
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"jobID": "job_1", "status": "running"})

    with Client(transport=httpx.MockTransport(handler), retries=3) as client:
        assert client.get_job("job_1").status == JobStatus.RUNNING
    assert calls == ["GET"] * 3
    calls.clear()
    client = Client(transport=httpx.MockTransport(handler), retries=3)
    with client, pytest.raises(ClientError, match="cannot reach"):
        client.execute_process("x", {})
    assert calls == ["POST"]  # a POST is never sent twice


def test_waiting_asks_the_service_to_hold_polls_and_paces_the_rest(
    monkeypatch: pytest.MonkeyPatch,
):
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("Prefer"))
        status = "successful" if len(sent) == 4 else "running"
        return httpx.Response(200, json={"jobID": "job_1", "status": status})

    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    with Client(transport=httpx.MockTransport(handler), timeout=3.5) as client:
        assert client.wait_for_job("job_1").status == JobStatus.SUCCESSFUL
    assert sent == ["wait=2"] * 4  # held for less than the client's HTTP timeout
    # a service that answers at once (ignoring the preference) is polled ever less often
    assert len(sleeps) == 3 and sleeps == sorted(sleeps) and 0 < sleeps[0] <= 0.05
    sent.clear()
    with (
        Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(ClientError, match="did not finish within 0.0001 s"),
    ):
        client.wait_for_job("job_1", timeout=0.0001)
    assert sent == ["wait=1"]


def test_errors_carry_the_problem_details():
    problem = {"type": "urn:x", "title": "No such job", "status": 404, "detail": "no job 'x'"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json=problem)

    client = Client(transport=httpx.MockTransport(handler))
    with client, pytest.raises(ClientError, match="404 No such job: no job 'x'") as info:
        client.get_job("x")
    assert info.value.status_code == 404 and info.value.problem == problem
    assert info.value.type == "urn:x" and info.value.detail == "no job 'x'"
    assert isinstance(info.value, cas.errors.CasError)


def test_unreachable_service_is_a_client_error():
    client = Client(api_url=f"http://127.0.0.1:{free_port()}/", retries=1)
    with client, pytest.raises(ClientError, match="cannot reach") as info:
        client.get_conformance()
    assert info.value.status_code is None


HEAVY = ["rasterio", "odc", "numba", "fastapi", "uvicorn", "exactextract", "distributed"]


def _imported_after(statement: str, modules: list[str]) -> list[str]:
    code = (
        f"import sys\n{statement}\n"
        f"print([m for m in {modules!r} if m in sys.modules or any("
        "k.startswith(m + '.') for k in sys.modules)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().replace("'", '"')))


def test_client_import_pulls_in_no_gdal_based_package():
    assert _imported_after("import cas_xr.client", HEAVY) == []


# -- against a live service -----------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("client")) as live:
        yield live


@pytest.fixture
def client(service: LiveService) -> Iterator[Client]:
    with Client(api_url=service.url) as client:
        yield client


def test_the_seed_notebook_calls(client: Client):
    assert client.get_capabilities().links
    assert len(client.get_conformance().conformsTo) == 6
    assert "sleep_a_while" in {p.id for p in client.get_processes().processes}
    description = client.get_process(process_id="sleep_a_while")
    assert description.inputs["duration"].schema_["default"] == 10
    sleeping = client.execute_process(
        process_id="sleep_a_while", request=ProcessRequest(duration=2)
    )
    failing = client.execute_process(process_id="sleep_a_while", request={"fail": True})
    primes = client.execute_process(process_id="primes_between", request={})
    assert isinstance(sleeping, StatusInfo) and sleeping.type == "process"
    assert client.wait_for_job(primes.jobID, timeout=30).status == "successful"
    assert client.get_job_result(primes.jobID)["return_value"][:3] == [2, 3, 5]
    assert client.get_job(primes.jobID).jobID == primes.jobID
    for job in client.get_jobs().jobs:
        client.dismiss_job(job.jobID)
    left = {job.jobID: job.status for job in client.get_jobs().jobs}
    assert left == {sleeping.jobID: "dismissed", failing.jobID: "dismissed"}
    with pytest.raises(ClientError) as info:
        client.get_job_results(sleeping.jobID)
    assert info.value.status_code == 410 and info.value.type.endswith("job-dismissed")


def _comparable(response: Any) -> Any:
    """The response as JSON without ids and timings, with local paths as the service has them."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("request_id", "elapsed_ms")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(redact(response.model_dump(mode="json")))


def _facade(function: Any, request: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quality warnings are in the responses too
        return function(request)


@pytest.mark.parametrize(
    "request_",
    [
        {"geometry": POINT, "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]},
        {"geometry": square(-96.52, 38.98), "dataset_ids": ["sample:land_cover"],
         "aggregation": "distribution"},
        {"geometry": square(-96.55, 39.02, 0.05), "dataset_ids": ["sample:precipitation"],
         "time_range": ["2022-03-01T00:00:00Z", "2022-08-31T00:00:00Z"]},
    ],
)  # fmt: skip
def test_client_extract_equals_the_facade(client: Client, request_: dict):
    expected = _facade(cas.extract_sync, request_)
    got = client.extract(request_, timeout=60)
    assert isinstance(got, cas.AttributeResponse)
    assert _comparable(got) == _comparable(expected)


def test_client_batch_extract_equals_the_facade(client: Client):
    request_ = {
        "geometries": [POINT, square(-96.6, 38.9), square(-96.45, 39.1, 0.03)],
        "dataset_ids": ["sample:elevation", "sample:land_cover"],
        "aggregation": "majority",
    }
    expected = _facade(cas.batch_extract_sync, request_)
    got = client.batch_extract(request_, timeout=60)
    assert isinstance(got, cas.BatchAttributeResponse)
    assert _comparable(got) == _comparable(expected)


def test_batch_extract_of_many_geometries_equals_the_facade(client: Client):
    """The service computes in groups, over the facade's window: same values and provenance."""
    cas.configure(result_cache_ttl_s=0)  # provenance as this very batch gives it
    geometries = [square(-96.69 + 0.0037 * i, 38.9, 0.01) for i in range(60)]  # across tiles
    request_ = {
        "geometries": geometries,
        "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"],
        "aggregation": "majority",
    }
    expected = _facade(cas.batch_extract_sync, request_)
    got = client.batch_extract(request_, timeout=120)
    assert _comparable(got) == _comparable(expected)


def test_waiting_for_a_job_takes_few_polls(service: LiveService):
    gets: list[str] = []

    def count(request: httpx.Request) -> None:
        if request.method == "GET":
            gets.append(request.url.path)

    with Client(api_url=service.url) as client:
        client._http.event_hooks["request"].append(count)
        job = client.execute_process("sleep_a_while", ProcessRequest(duration=2))
        started = time.monotonic()
        assert client.wait_for_job(job.jobID, timeout=30).status == "successful"
    assert time.monotonic() - started < 3.5
    assert len(gets) <= 2, gets  # held by the service, not ~15 quick polls


def test_client_extract_errors(client: Client):
    raster = {"geometry": POINT, "dataset_ids": ["sample:elevation"], "output": "raster"}
    with pytest.raises(ClientError, match="extract_raster") as info:
        client.extract(raster)
    assert info.value.status_code == 400
    with pytest.raises(ClientError, match="curvature"):
        client.extract({"geometry": POINT, "dataset_ids": ["sample:curvature"]})


def test_async_client(service: LiveService):
    async def run() -> tuple[Any, Any]:
        async with AsyncClient(api_url=service.url) as client:
            conformance = await client.get_conformance()
            request_ = {"geometry": square(-96.4, 39.05), "dataset_ids": ["sample:elevation"]}
            response = await client.extract(request_, timeout=60)
            status = await client.execute_process("sleep_a_while", ProcessRequest(duration=30))
            dismissed = await client.dismiss_job(status.jobID)
            assert dismissed.status == "dismissed"
            return conformance, response

    conformance, response = asyncio.run(run())
    assert len(conformance.conformsTo) == 6
    request_ = {"geometry": square(-96.4, 39.05), "dataset_ids": ["sample:elevation"]}
    assert _comparable(response) == _comparable(_facade(cas.extract_sync, request_))


def test_client_authentication(tmp_path: Path):
    env = {"CAS_AUTH_ENABLED": "true", "CAS_API_KEYS": '["k1"]'}
    with live_service(tmp_path, env) as live:
        with Client(api_url=live.url) as anonymous, pytest.raises(ClientError) as info:
            anonymous.get_processes()
        assert info.value.status_code == 401
        with Client(api_url=live.url, auth_type="api-key", api_key="k1") as keyed:
            assert keyed.get_processes().processes
        with Client(api_url=live.url, auth_type="token", token="k1", use_bearer=True) as bearer:
            assert bearer.get_jobs().jobs == []


def test_client_command_line(service: LiveService, capsys: pytest.CaptureFixture[str]):
    from cas_xr.cli import main

    base = ["client", "--url", service.url]
    assert main([*base, "execute", "primes_between", "-i", "max_val=10", "--wait"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "successful"
    assert main([*base, "results", status["jobID"]]) == 0
    assert json.loads(capsys.readouterr().out) == {"return_value": [2, 3, 5, 7]}
    assert main([*base, "jobs", "--process", "primes_between", "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)["jobs"]) == 1
    assert main([*base, "conformance"]) == 0
    assert len(json.loads(capsys.readouterr().out)["conformsTo"]) == 6
    assert main([*base, "job", "job_999999"]) == 1
    assert "404 No such job" in capsys.readouterr().err
    assert main([*base, "execute", "primes_between", "--inputs", "[1]"]) == 2
    assert "JSON object" in capsys.readouterr().err
