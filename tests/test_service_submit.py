"""The execute route's fast path answers as the route does, and loses no accepted job."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

import cas_xr as cas
from cas_xr.service import create_app
from cas_xr.service._jobs import JobStore
from cas_xr.service._submit import FastSubmit
from tests.test_service_support import POINT, LiveService, poll, square, threaded_service

_JSON = {"content-type": "application/json"}
_EXECUTE = "processes/{}/execution"


class _Routed:
    """ASGI middleware under the fast path: records the requests that reach the routes."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def _app(settings: cas.Settings, *, fast: bool, seen: list[str]) -> FastAPI:
    """The testing app, with or without its fast path, recording what reaches the routes."""
    app = create_app(settings, testing=True)
    if not fast:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not FastSubmit]
    app.user_middleware.append(Middleware(_Routed, seen=seen))  # innermost
    return app


def _answer(response: httpx.Response) -> dict[str, Any]:
    """What a client sees of an answer, without the times and the port (they differ)."""
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("created", "updated")}
        body = json.loads(json.dumps(body).replace(str(response.request.url.port), "PORT"))
    kept = ("content-type", "location", "preference-applied", "www-authenticate", "retry-after")
    headers = {k: response.headers.get(k) for k in kept}
    if headers["location"]:
        headers["location"] = headers["location"].replace(str(response.request.url.port), "PORT")
    return {"status": response.status_code, "headers": headers, "body": body}


_Pair = tuple[httpx.Client, httpx.Client, list[str]]


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[_Pair]:
    """Clients of the app served with its fast path and without; what reached the routes."""
    overrides = getattr(request, "param", {})
    seen: list[str] = []
    settings = cas.Settings(jobs_db=":memory:", **overrides)
    with (
        threaded_service(_app(settings, fast=True, seen=seen)) as fast_url,
        threaded_service(_app(settings, fast=False, seen=[])) as routed_url,
        httpx.Client(base_url=fast_url, timeout=30) as fast,
        httpx.Client(base_url=routed_url, timeout=30) as routed,
    ):
        yield fast, routed, seen


def _both(pair: _Pair, process: str, content: bytes, **headers: str) -> tuple[dict[str, Any], bool]:
    """The answer of both apps (asserted equal), and whether the fast path answered it."""
    fast, routed, seen = pair
    before = len(seen)
    answers = [
        _answer(client.post(_EXECUTE.format(process), content=content, headers=headers))
        for client in (fast, routed)
    ]
    assert answers[0] == answers[1]
    return answers[0], len(seen) == before


def _body(inputs: Any, **members: Any) -> bytes:
    return json.dumps({"inputs": inputs, **members}).encode()


GOOD = [
    ("sleep_a_while", _body({"duration": 0}), _JSON),
    ("primes_between", _body({"max_val": 10}, outputs={"return_value": {}}), _JSON),
    ("extract", _body({"geometry": square(-96.6, 38.9), "dataset_ids": ["sample:elevation"]}),
     {"content-type": "application/json; charset=utf-8"}),
    ("extract", _body({"geometry": POINT, "dataset_ids": ["sample:elevation"]}),
     {"content-type": "application/geo+json", "prefer": "respond-async"}),
    ("list-datasets", b"{}", _JSON),
    ("sleep_a_while", b'{"response": "raw", "duration": 0}', _JSON),  # cuiman's, unwrapped
]  # fmt: skip
BAD = [
    ("extract", b"{not json", _JSON),
    ("extract", b"[" * 100_000, _JSON),  # deeper than the JSON parser goes
    ("extract", b"null", _JSON),
    ("extract", b"[1, 2]", _JSON),
    ("extract", _body({"geometry": POINT}), {"content-type": "text/plain"}),
    ("extract", _body({"geometry": POINT}), {"content-type": "text/x+json"}),
    ("extract", _body({"geometry": POINT}), {}),
    ("nope", _body({}), _JSON),
    ("sleep_a_while", _body({}, duration=1), _JSON),  # an input beside "inputs"
    ("sleep_a_while", b'{"duraton": 1}', _JSON),  # unwrapped (as cuiman sends), misspelt
    ("sleep_a_while", _body({"nope": 1}), _JSON),
    ("sleep_a_while", _body({"duration": "long"}), _JSON),
    ("sleep_a_while", _body({}, outputs={"nope": {}}), _JSON),
    ("extract", _body({"geometry": POINT, "dataset_ids": ["sample:elevation"]},
                      outputs={"response": {"transmissionMode": "reference"}}), _JSON),
    ("extract", _body({"geometry": POINT, "dataset_ids": ["sample:curvature"]}), _JSON),
    ("extract", _body({"geometry": POINT, "dataset_ids": ["Bad Id"]}), _JSON),
    ("extract", _body({"geometry": {"type": "Point", "coordinates": [500, 0]},
                       "dataset_ids": ["sample:elevation"]}), _JSON),
    ("extract", _body({"geometry": POINT, "dataset_ids": ["sample:elevation"],
                       "output": "raster"}), _JSON),
    ("batch-extract", _body({"geometries": [POINT] * 1001, "dataset_ids": ["sample:x"]}), _JSON),
]  # fmt: skip


def test_good_requests_are_answered_by_the_fast_path_as_by_the_route(pair):
    for process, content, headers in GOOD:
        answer, fast = _both(pair, process, content, **headers)
        assert answer["status"] == 201 and fast, answer
        job_id = answer["body"]["jobID"]
        assert answer["headers"]["location"] == f"http://127.0.0.1:PORT/jobs/{job_id}"
        assert answer["body"]["status"] == "accepted"
    for client in pair[:2]:
        jobs = client.get("jobs").json()["jobs"]
        assert [j["processID"] for j in jobs] == [p for p, *_ in GOOD]
        for job in jobs:  # finished before the service stops
            assert poll(client, job["jobID"], {"successful"})["status"] == "successful"


def test_bad_requests_get_the_routes_own_problems(pair):
    for process, content, headers in BAD:
        answer, fast = _both(pair, process, content, **headers)
        assert answer["status"] >= 400 and not fast, (process, content, answer)
        assert answer["headers"]["content-type"] == "application/problem+json"
    for client in pair[:2]:
        assert client.get("jobs").json()["jobs"] == []  # no job was created
    # no body at all: the route's (a request without inputs); no 415
    answer, fast = _both(pair, "sleep_a_while", b"", **_JSON)
    assert answer["status"] == 201 and not fast


@pytest.mark.parametrize("pair", [{"auth_enabled": True, "api_keys": ["k"]}], indirect=True)
def test_only_a_valid_api_key_takes_the_fast_path(pair):
    content = _body({"duration": 0})
    for headers, status, fast in [
        ({"x-api-key": "k"}, 201, True),
        ({"authorization": "Bearer k"}, 201, True),
        ({"authorization": "bearer  k"}, 201, True),
        ({"x-api-key": "wrong"}, 401, False),
        ({"authorization": "Bearer wrong"}, 401, False),
        ({"authorization": "Basic k"}, 401, False),
        ({"cookie": "cas_session=forged"}, 401, False),
        ({}, 401, False),
    ]:
        answer, took_fast = _both(pair, "sleep_a_while", content, **_JSON, **headers)
        assert (answer["status"], took_fast) == (status, fast), (headers, answer)


_LIMITED = {"rate_limit_enabled": True, "rate_limit_per_minute": 3}


@pytest.mark.parametrize(
    "pair", [{**_LIMITED, "auth_enabled": True, "api_keys": ["k"]}], indirect=True
)
def test_rate_limit_counts_each_request_once(pair):
    good, bad = _body({"duration": 0}), _body({"duration": "long"})
    codes = []
    for content in (bad, good, good, good):  # a key is a budget of its own
        answer, _ = _both(pair, "sleep_a_while", content, **_JSON, **{"x-api-key": "k"})
        codes.append(answer["status"])
    assert codes == [400, 201, 201, 429]  # the bad one, passed on, was counted once


@pytest.mark.parametrize("pair", [{"sync_execute": True}], indirect=True)
def test_synchronous_execution_is_the_routes(pair):
    content = _body({"max_val": 10})
    answer, fast = _both(pair, "primes_between", content, **_JSON)
    assert (answer["status"], answer["body"], fast) == (200, [2, 3, 5, 7], False)
    answer, fast = _both(pair, "primes_between", content, **_JSON, prefer="respond-async")
    assert (answer["status"], fast) == (201, True)
    assert answer["headers"]["preference-applied"] == "respond-async"


def test_the_api_document_still_lists_the_execute_route():
    document = create_app(cas.Settings(jobs_db=":memory:")).openapi()
    operation = document["paths"]["/processes/{processID}/execution"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["allOf"] == [{"$ref": "#/components/schemas/ProcessRequest"}]
    assert {"201", "400", "415"} <= set(operation["responses"])


def test_create_many_stores_jobs_in_order_under_new_ids():
    store = JobStore(":memory:")
    first = store.create("a", {})
    many = store.create_many(
        [("b", {"i": i}, {"out": "reference"} if i else None) for i in range(3)]
    )
    assert [r.job_id for r in many] == ["job_1", "job_2", "job_3"] and first.job_id == "job_0"
    assert [store.inputs(r.job_id) for r in many] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert (
        store.transmissions("job_2") == {"out": "reference"} and store.transmissions("job_1") == {}
    )
    assert store.create("c", {}).job_id == "job_4" and store.create_many([]) == []


def test_a_burst_of_requests_gets_distinct_jobs():
    settings = cas.Settings(jobs_db=":memory:")
    with (
        threaded_service(create_app(settings, testing=True)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
        ThreadPoolExecutor(16) as pool,
    ):
        content = _body({"max_val": 20})
        answers = list(
            pool.map(
                lambda _: http.post(
                    _EXECUTE.format("primes_between"), content=content, headers=_JSON
                ),
                range(64),
            )
        )
        assert [a.status_code for a in answers] == [201] * 64
        ids = {a.json()["jobID"] for a in answers}
        assert len(ids) == 64 and {a.headers["location"].rsplit("/", 1)[1] for a in answers} == ids
        for job_id in ids:
            assert poll(http, job_id, {"successful"})["status"] == "successful"


def test_every_accepted_job_survives_a_kill(tmp_path: Path):
    live = LiveService(tmp_path, {"CAS_JOB_WORKERS": "2"}).start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http, ThreadPoolExecutor(16) as pool:
            content = _body({"duration": 60})
            answers = list(
                pool.map(
                    lambda _: http.post(
                        _EXECUTE.format("sleep_a_while"), content=content, headers=_JSON
                    ),
                    range(40),
                )
            )
        assert [a.status_code for a in answers] == [201] * 40
        accepted = {a.json()["jobID"] for a in answers}
        live.kill()  # SIGKILL, at once after the last 201
        live.start()
        with httpx.Client(base_url=live.url, timeout=30) as http:
            jobs = {j["jobID"]: j for j in http.get("jobs", params={"limit": 100}).json()["jobs"]}
            assert accepted <= set(jobs)
            states = {jobs[j]["status"] for j in accepted}
            assert states <= {"accepted", "running", "failed"}, states
            for job_id in accepted:  # cut off while running, or queued again
                if jobs[job_id]["status"] == "failed":
                    assert "cut off" in jobs[job_id]["message"]
                http.delete(f"jobs/{job_id}")
    finally:
        live.stop()


def test_submit_cpu_benchmark_smoke(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    row = importlib.import_module("submit_cpu").main(["--requests", "5", "--rounds", "1"])
    assert set(row) == {"one_by_one_cpu_ms", "one_by_one_wall_ms", "burst_cpu_ms", "burst_wall_ms"}
    assert all(value > 0 for value in row.values())
