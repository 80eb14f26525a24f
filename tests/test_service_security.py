"""Authentication, rate limiting, body-size limit and sync-execute, on live servers."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cas_xr as cas
from cas_xr.service import create_app
from cas_xr.service._options import ServiceOptions
from tests.test_service_support import (
    LiveService,
    live_service,
    poll,
    redis_server,
    threaded_service,
)

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


def _rotating(kind: str) -> dict[str, str]:
    """A new value, never sent before, of a header a client is free to choose."""
    value = secrets.token_hex(8)
    return {
        "key": {"X-API-Key": value},
        "bearer": {"Authorization": f"Bearer {value}"},
        "forwarded": {"X-Forwarded-For": f"10.{secrets.randbelow(250)}.0.1"},
    }[kind]


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_rotating_headers_do_not_beat_the_limit(tmp_path: Path, auth: bool):
    env = {"CAS_RATE_LIMIT_ENABLED": "true", "CAS_RATE_LIMIT_PER_MINUTE": "6"}
    if auth:
        env |= {"CAS_AUTH_ENABLED": "true", "CAS_API_KEYS": json.dumps(["good-key"])}
    kinds = ["key", "bearer", "forwarded"] * 4
    with live_service(tmp_path, env) as live, httpx.Client(base_url=live.url) as http:
        codes = [http.get("jobs", headers=_rotating(kind)).status_code for kind in kinds]
        # unverified keys, tokens and forwarded-for values all count against the peer (whose
        # first request was the start-up check's GET /conformance)
        assert codes == [401 if auth else 200] * 5 + [429] * 7
        if auth:  # a valid key is its own client, whatever else the request says
            good = {"X-API-Key": "good-key"}
            answers = [http.get("jobs", headers=good | _rotating("forwarded")) for _ in range(6)]
            assert [a.status_code for a in answers] == [200] * 6
            bearer = {"Authorization": "Bearer good-key"}  # the same key, sent as a token
            assert http.get("jobs", headers=bearer).status_code == 429


def test_forwarded_for_counts_from_trusted_proxies_only():
    settings = cas.Settings(
        jobs_db=":memory:",
        rate_limit_enabled=True,
        rate_limit_per_minute=2,
        trusted_proxies=["127.0.0.0/8"],
    )
    with threaded_service(create_app(settings)) as url, httpx.Client(base_url=url) as http:

        def codes(forwarded: str, n: int = 3) -> list[int]:
            headers = {"X-Forwarded-For": forwarded}
            return [http.get("jobs", headers=headers).status_code for _ in range(n)]

        # the proxy (this test, on 127.0.0.1) names each client: one budget per client
        assert codes("203.0.113.1") == [200, 200, 429]
        assert codes("203.0.113.2") == [200, 200, 429]
        # what a client put before the proxy's entry does not count: the last entry an
        # untrusted host added names the client
        assert codes("198.51.100.7, 203.0.113.1", 1) == [429]
        assert codes("127.0.0.5, 203.0.113.3, 127.0.0.9") == [200, 200, 429]
    with pytest.raises(cas.errors.ConfigurationError, match="is not an IP address or network"):
        cas.configure(trusted_proxies=["proxy.example.com"])


def test_rate_limit_storage_down_is_refused_not_let_by(caplog: pytest.LogCaptureFixture):
    from tests.test_service_support import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = cas.Settings(jobs_db=":memory:", rate_limit_enabled=True, rate_limit_storage_url=url)
    transport = httpx.ASGITransport(app=create_app(settings))

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://cas") as http:
            return await http.get("/jobs")

    with caplog.at_level(logging.ERROR, "cas_xr.service"):
        refused = asyncio.run(get())
    assert refused.status_code == 503
    assert refused.json()["type"] == "urn:cas-xr:problem:rate-limit-unavailable"
    assert refused.headers["retry-after"] == "5"
    assert "rate-limit storage error: Error 111 connecting to 127.0.0.1" in caplog.text
    with pytest.raises(cas.errors.ConfigurationError, match="rate_limit_storage_url"):
        create_app(cas.Settings(rate_limit_enabled=True, rate_limit_storage_url="nosuch://x"))


def _workers_serving(live: LiveService) -> set[int]:
    """The worker processes of ``live`` that hold a connection from a client."""
    import psutil

    assert live.process is not None
    serving = set()
    for child in psutil.Process(live.process.pid).children():
        connections = child.net_connections("tcp")
        if any(c.laddr.port == live.port and c.status == "ESTABLISHED" for c in connections):
            serving.add(child.pid)
    return serving


def test_workers_share_one_budget_in_redis(tmp_path: Path):
    limit = 20
    with redis_server(tmp_path, password="redis-secret-pw") as redis_url:
        env = {
            "CAS_RATE_LIMIT_ENABLED": "true",
            "CAS_RATE_LIMIT_PER_MINUTE": str(limit),
            "CAS_RATE_LIMIT_STORAGE_URL": redis_url,
        }
        with live_service(tmp_path, env, "info", ["--workers", "2"]) as live:
            clients: list[httpx.Client] = []
            codes = []
            # one connection per client, kept open, until both workers hold some: the
            # second worker may still be starting (uvicorn answers once the first is up),
            # so more clients come for up to 60 s, every request counted in ``codes``
            deadline = time.monotonic() + 60
            try:
                while len(_workers_serving(live)) < 2 and time.monotonic() < deadline:
                    clients.append(httpx.Client(base_url=live.url))
                    codes.append(clients[-1].get("jobs").status_code)
                    time.sleep(0.05 * (len(clients) > limit))
                assert len(_workers_serving(live)) == 2, "one worker got every connection"
                while len(codes) < limit + 10:  # then in turns over the connections
                    codes += [http.get("jobs").status_code for http in clients]
            finally:
                for http in clients:
                    http.close()
        log = live.log.read_text()
    # one budget (less the start-up check's request); two in memory would let more by
    assert codes.count(200) == limit - 1
    assert codes.count(429) == len(codes) - limit + 1
    assert "redis-secret-pw" not in log


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


def test_secrets_stay_out_of_reprs_and_logs(tmp_path: Path):
    key, password = "key-" + secrets.token_hex(8), "pw-" + secrets.token_hex(8)
    storage = f"redis://:{password}@127.0.0.1:1/0"
    settings = cas.configure(api_keys=[key], rate_limit_storage_url=storage)
    options = ServiceOptions.from_settings(settings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(options)]
    shown.append(repr(create_app(cas.Settings(jobs_db=":memory:")).state.cas))
    assert not [text for text in shown if key in text or password in text]
    assert settings.api_keys[0].get_secret_value() == key  # kept, only not shown
    env = {"CAS_AUTH_ENABLED": "true", "CAS_API_KEYS": json.dumps([key])}
    with live_service(tmp_path, env, "debug") as live, httpx.Client(base_url=live.url) as http:
        assert http.get("jobs", headers={"X-API-Key": key}).status_code == 200
        assert http.get("jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert http.get("jobs", headers={"X-API-Key": key + "x"}).status_code == 401
    log = live.log.read_text()
    assert "GET /jobs" in log  # the debug log has the requests, not the key
    assert key not in log
