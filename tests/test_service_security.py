"""Authentication, rate limiting, body-size limit and sync-execute, on live servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cas_xr as cas
from cas_xr.service import create_app
from tests.test_service_support import LiveService, live_service, poll, threaded_service

KEYS = ["key-auth", "key-rate", "key-client"]
KEY = {"X-Key": "k"}  # the header and key of the in-process service below


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    env = {
        "CAS_AUTH_ENABLED": "true",
        "CAS_API_KEYS": json.dumps(KEYS),
        "CAS_RATE_LIMIT_ENABLED": "true",
        "CAS_RATE_LIMIT_PER_MINUTE": "8",
    }
    with live_service(tmp_path_factory.mktemp("secured"), env) as live:
        yield live


def test_auth_on(secured: LiveService):
    with httpx.Client(base_url=secured.url) as http:
        assert http.get("").status_code == 200  # the landing page is public
        refused = http.get("processes")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert "X-API-Key" in refused.json()["detail"]
        assert "www-authenticate" in refused.headers
        assert http.get("jobs", headers={"X-API-Key": "wrong"}).status_code == 401
        assert http.get("processes", headers={"X-API-Key": "key-auth"}).status_code == 200
        bearer = {"Authorization": "Bearer key-auth"}
        assert http.get("jobs", headers=bearer).status_code == 200
        doc = http.get("openapi.json").json()
        assert {"APIKeyHeader", "HTTPBearer"} <= set(doc["components"]["securitySchemes"])


def test_auth_off(tmp_path: Path):
    with live_service(tmp_path) as live:
        assert httpx.get(live.url + "processes").status_code == 200


def test_rate_limit(secured: LiveService):
    headers = {"X-API-Key": "key-rate"}
    with httpx.Client(base_url=secured.url, headers=headers) as http:
        codes = [http.get("jobs").status_code for _ in range(8)]
        assert codes == [200] * 8
        refused = http.get("jobs")
        assert refused.status_code == 429
        assert refused.json()["type"].endswith("rate-limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # another client (key) has its own budget
        assert http.get("jobs", headers={"X-API-Key": "key-client"}).status_code == 200


class _ServiceSettings(cas.Settings):
    """Settings with the service settings cas.Settings does not declare yet."""

    sync_execute: bool = True
    request_timeout_s: float = 2.0
    max_request_bytes: int = 2_000
    api_key_header: str = "X-Key"


@pytest.fixture
def sync_service(tmp_path: Path) -> Iterator[str]:
    settings = _ServiceSettings(
        jobs_db=str(tmp_path / "jobs.sqlite"), auth_enabled=True, api_keys=["k"]
    )
    with threaded_service(create_app(settings, testing=True)) as url:
        yield url


def test_configurable_api_key_header(sync_service: str):
    assert httpx.get(sync_service + "jobs", headers={"X-API-Key": "k"}).status_code == 401
    refused = httpx.get(sync_service + "jobs")
    assert refused.status_code == 401 and "X-Key" in refused.json()["detail"]
    assert httpx.get(sync_service + "jobs", headers={"X-Key": "k"}).status_code == 200


def test_sync_execute_and_prefer(sync_service: str):
    with httpx.Client(base_url=sync_service, timeout=30, headers=KEY) as http:
        description = http.get("processes/primes_between").json()
        assert description["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
        raw = http.post("processes/primes_between/execution", json={"inputs": {"max_val": 10}})
        assert raw.status_code == 200 and raw.json() == [2, 3, 5, 7]
        document = http.post(
            "processes/primes_between/execution",
            json={"inputs": {"max_val": 10}, "response": "document"},
        )
        assert document.json() == {"return_value": [2, 3, 5, 7]}
        job = http.post(
            "processes/sleep_a_while/execution",
            json={"inputs": {"duration": 0.1}},
            headers={"Prefer": "respond-async"},
        )
        assert job.status_code == 201 and job.headers["preference-applied"] == "respond-async"
        assert poll(http, job.json()["jobID"], {"successful"})["status"] == "successful"
        failed = http.post(
            "processes/sleep_a_while/execution", json={"inputs": {"fail": True, "duration": 0.1}}
        )
        assert failed.status_code == 500 and "on purpose" in failed.json()["detail"]
        slow = http.post("processes/sleep_a_while/execution", json={"inputs": {"duration": 30}})
        assert slow.status_code == 504 and "respond-async" in slow.json()["detail"]


def test_body_size_limit(sync_service: str):
    with httpx.Client(base_url=sync_service, headers=KEY) as http:
        big = {"inputs": {"max_val": 10, "padding": "x" * 3000}}
        response = http.post("processes/primes_between/execution", json=big)
        assert response.status_code == 413
        assert "max_request_bytes" in response.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: a chunked body
            yield b'{"inputs": {"max_val": 10, "padding": "'
            yield b"x" * 3000
            yield b'"}}'

        chunked = http.post(
            "processes/primes_between/execution",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413
        small = http.post(
            "processes/primes_between/execution",
            content=iter([b'{"inputs": ', b'{"max_val": 5}}']),
            headers={"content-type": "application/json"},
        )
        assert small.status_code == 200 and small.json() == [2, 3, 5]
