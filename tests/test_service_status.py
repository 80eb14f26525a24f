"""The status and results routes' fast paths answer as the routes do; gathered reads."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

import cas_xr as cas
from cas_xr.ogc import JobStatus
from cas_xr.service import create_app
from cas_xr.service._fast import Gathered
from cas_xr.service._jobs import JobStore
from cas_xr.service._poll import FastResults, FastStatus
from tests.test_service_support import POINT, poll, square, threaded_service

_JSON = {"content-type": "application/json"}
_TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


class _Routed:
    """ASGI middleware under the fast paths: records the status requests reaching the routes."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/jobs/"):
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def _app(settings: cas.Settings, *, fast: bool, seen: list[str]) -> FastAPI:
    """The testing app, with or without the job fast paths, recording what reaches routes."""
    app = create_app(settings, testing=True)
    if not fast:
        fast_paths = (FastStatus, FastResults)
        app.user_middleware = [m for m in app.user_middleware if m.cls not in fast_paths]
    app.user_middleware.append(Middleware(_Routed, seen=seen))  # innermost
    return app


def _answer(response: httpx.Response) -> dict[str, Any]:
    """What a client sees of an answer, without the times and the port (they differ)."""
    port = str(response.request.url.port)
    kept = ("content-type", "preference-applied", "www-authenticate", "retry-after", "vary")
    headers = {k: (response.headers.get(k) or "").replace(port, "PORT") for k in kept}
    text = _TIMES.sub("TIME", response.text.replace(port, "PORT"))
    body = json.loads(text) if "json" in headers["content-type"] else text
    return {"status": response.status_code, "headers": headers, "body": body}


_Pair = tuple[httpx.Client, httpx.Client, list[str]]


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Pair]:
    """Clients of the app served with its job fast paths and without (each its own job
    database, the same jobs created in both); the status requests that reached the routes."""
    overrides = getattr(request, "param", {})
    seen: list[str] = []
    apps = []
    for fast in (True, False):
        db = tmp_path / f"{'fast' if fast else 'routed'}.sqlite"
        _another_servers_job(db)
        settings = cas.Settings(jobs_db=str(db), **overrides)
        apps.append(_app(settings, fast=fast, seen=seen if fast else []))
    with (
        threaded_service(apps[0]) as fast_url,
        threaded_service(apps[1]) as routed_url,
        httpx.Client(base_url=fast_url, timeout=30) as fast_client,
        httpx.Client(base_url=routed_url, timeout=30) as routed_client,
    ):
        yield fast_client, routed_client, seen


def _another_servers_job(db: Path) -> None:
    """job_0: a job another server process created and finished (another store's owner)."""
    store = JobStore(str(db))
    (record,) = store.create_many([("sleep_a_while", {"duration": 0}, None)])
    store.start(record.job_id)
    store.succeed(record.job_id, {"slept_s": 0.0})


def _both(
    pair: _Pair, path: str, *, same_body: bool = True, **headers: str
) -> tuple[dict[str, Any], bool]:
    """The answer of both apps to GET ``path`` (asserted equal), and whether it was fast.

    ``same_body=False``: the bodies differ (a computation's own times), their keys do not.
    """
    fast, routed, seen = pair
    before = len(seen)
    answers = [_answer(client.get(path, headers=headers)) for client in (fast, routed)]
    if not same_body:
        for answer in answers:
            answer["body"] = sorted(answer["body"]) if isinstance(answer["body"], dict) else None
    assert answers[0] == answers[1]
    return answers[0], len(seen) == before


def _execute(pair: _Pair, process: str, inputs: dict[str, Any], **headers: str) -> str:
    """Create the same job in both apps; its id."""
    ids = set()
    for client in pair[:2]:
        created = client.post(
            f"processes/{process}/execution",
            json={"inputs": inputs},
            headers={**_JSON, **headers},
        )
        assert created.status_code == 201, created.text
        ids.add(created.json()["jobID"])
    (job_id,) = ids
    return job_id


def _settle(pair: _Pair, job_id: str, until: set[str]) -> None:
    for client in pair[:2]:
        assert poll(client, job_id, until)["status"] in until


def test_status_requests_are_answered_by_the_fast_path_as_by_the_route(pair):
    done = _execute(pair, "sleep_a_while", {"duration": 0})
    failed = _execute(pair, "sleep_a_while", {"duration": 0.2, "fail": True})
    primes = _execute(pair, "primes_between", {"max_val": 10})
    dismissed = _execute(pair, "sleep_a_while", {"duration": 60})
    for client in pair[:2]:
        assert client.delete(f"jobs/{dismissed}").json()["status"] == "dismissed"
    _settle(pair, done, {"successful"})
    _settle(pair, failed, {"failed"})
    _settle(pair, primes, {"successful"})
    for job_id, status in [
        ("job_0", "successful"),  # another server's job
        (done, "successful"),
        (failed, "failed"),
        (primes, "successful"),
        (dismissed, "dismissed"),
    ]:
        for headers in [
            {},
            {"prefer": "wait=1"},
            {"prefer": "respond-async, wait=30"},  # at most 10 s: said so
            {"prefer": "wait=soon"},
            {"accept": "application/json"},
        ]:
            answer, fast = _both(pair, f"jobs/{job_id}", **headers)
            assert (answer["status"], answer["body"]["status"], fast) == (200, status, True)
            assert answer["body"]["jobID"] == job_id
        assert "Accept" in answer["headers"]["vary"]  # the HTML face's, as for the route
    assert _both(pair, f"jobs/{done}", prefer="wait=30")[0]["headers"]["preference-applied"] == (
        "wait=10"
    )


def test_unusual_status_requests_get_the_routes_answers(pair):
    job_id = _execute(pair, "sleep_a_while", {"duration": 0})
    _settle(pair, job_id, {"successful"})
    for path, headers, status in [
        ("jobs/job_999", {}, 404),  # no such job
        ("jobs/job_999", {"prefer": "wait=1"}, 404),
        ("jobs/nope", {}, 404),
        (f"jobs/{job_id}?f=json", {}, 200),  # a query string
        (f"jobs/{job_id}?x=1", {}, 200),
    ]:
        answer, fast = _both(pair, path, **headers)
        assert (answer["status"], fast) == (status, False), (path, answer)
    # two Prefer headers: the route's reading of them
    fast, routed, seen = pair
    before = len(seen)
    answers = [
        _answer(c.get(f"jobs/{job_id}", headers=[("prefer", "wait=1"), ("prefer", "wait=2")]))
        for c in (fast, routed)
    ]
    assert answers[0] == answers[1] and len(seen) == before + 1


def test_a_long_poll_waits_for_the_job_on_the_fast_path(pair):
    job_id = _execute(pair, "sleep_a_while", {"duration": 1})
    fast, routed, seen = pair
    at_once = fast.get(f"jobs/{job_id}").json()["status"]
    assert at_once in ("accepted", "running")
    answered = fast.get(f"jobs/{job_id}", headers={"prefer": "wait=10"})
    assert answered.json()["status"] == "successful" and not seen
    assert answered.headers["preference-applied"] == "wait=10"
    assert poll(routed, job_id, {"successful"})["status"] == "successful"


def test_html_pages_of_a_job_are_the_same(pair):
    job_id = _execute(pair, "sleep_a_while", {"duration": 0})
    _settle(pair, job_id, {"successful"})
    browser = "text/html,application/xhtml+xml,*/*;q=0.8"
    answer, fast = _both(pair, f"jobs/{job_id}", accept=browser)
    assert answer["status"] == 200 and fast
    assert answer["headers"]["content-type"].startswith("text/html") and job_id in answer["body"]
    answer, fast = _both(pair, f"jobs/{job_id}?f=html")
    assert answer["status"] == 200 and fast  # the face asks without its f
    answer, fast = _both(pair, "jobs/job_999", accept=browser)
    assert answer["status"] == 404 and not fast
    assert answer["headers"]["content-type"].startswith("text/html")


@pytest.mark.parametrize("pair", [{"auth_enabled": True, "api_keys": ["a", "b"]}], indirect=True)
def test_only_a_valid_api_key_takes_the_fast_path(pair):
    job_id = _execute(pair, "sleep_a_while", {"duration": 0}, **{"x-api-key": "a"})
    for client in pair[:2]:
        client.headers["x-api-key"] = "a"
        poll(client, job_id, {"successful"})
        del client.headers["x-api-key"]
    for headers, status, fast in [
        ({"x-api-key": "a"}, 200, True),
        ({"x-api-key": "b"}, 200, True),  # jobs are not owned by keys: any valid key reads
        ({"authorization": "Bearer b"}, 200, True),
        ({"x-api-key": "a", "authorization": "Bearer wrong"}, 200, True),
        ({"x-api-key": "wrong"}, 401, False),
        ({"x-api-key": ""}, 401, False),
        ({"authorization": "Bearer wrong"}, 401, False),
        ({"authorization": "Basic a"}, 401, False),
        ({"cookie": "cas_session=forged"}, 401, False),
        ({}, 401, False),
    ]:
        answer, took_fast = _both(pair, f"jobs/{job_id}", **headers)
        assert (answer["status"], took_fast) == (status, fast), (headers, answer)
    answer, took_fast = _both(pair, "jobs/job_999", **{"x-api-key": "b"})
    assert (answer["status"], took_fast) == (404, False)
    answer, took_fast = _both(pair, f"jobs/{job_id}", accept="text/html")
    assert (answer["status"], took_fast) == (303, False)  # to the login page


_LIMITED = {"rate_limit_enabled": True, "rate_limit_per_minute": 3}


@pytest.mark.parametrize(
    "pair", [{**_LIMITED, "auth_enabled": True, "api_keys": ["a", "b"]}], indirect=True
)
def test_rate_limit_counts_each_status_request_once(pair):
    job_id = _execute(pair, "sleep_a_while", {"duration": 0}, **{"x-api-key": "a"})
    for client in pair[:2]:  # one long poll until it has finished: a's second request
        waited = client.get(f"jobs/{job_id}", headers={"x-api-key": "a", "prefer": "wait=10"})
        assert waited.json()["status"] == "successful"
    codes = []
    for path in ("jobs/job_999", f"jobs/{job_id}", f"jobs/{job_id}", f"jobs/{job_id}"):
        answer, _ = _both(pair, path, **{"x-api-key": "b"})  # a key is a budget of its own
        codes.append(answer["status"])
    assert codes == [404, 200, 200, 429]  # the unknown job, passed on, was counted once
    answer, fast = _both(pair, f"jobs/{job_id}", **{"x-api-key": "b"})
    assert answer["status"] == 429 and answer["headers"]["retry-after"] and not fast


def test_results_requests_are_answered_by_the_fast_path_as_by_the_route(pair):
    done = _execute(pair, "sleep_a_while", {"duration": 0})
    primes = _execute(pair, "primes_between", {"max_val": 30})
    extract = _execute(pair, "extract", {"geometry": POINT, "dataset_ids": ["sample:elevation"]})
    for job_id in (done, primes, extract):
        _settle(pair, job_id, {"successful"})
    for job_id, same in [("job_0", True), (done, False), (primes, True), (extract, False)]:
        answer, fast = _both(pair, f"jobs/{job_id}/results", same_body=same)  # job_0: see pair
        assert (answer["status"], fast) == (200, True), answer
        assert answer["headers"]["content-type"] == "application/json"
    assert _both(pair, f"jobs/{extract}/results", same_body=False)[0]["body"] == ["response"]
    assert _both(pair, f"jobs/{primes}/results")[0]["body"] == {
        "return_value": [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    }
    browser = "text/html,application/xhtml+xml,*/*;q=0.8"
    for path, headers in [
        (f"jobs/{extract}/results", {"accept": browser}),  # the face asks for JSON inside
        (f"jobs/{extract}/results?f=html", {}),
        (f"jobs/{extract}/results?f=csv", {}),
    ]:
        answer, fast = _both(pair, path, same_body=False, **headers)
        assert (answer["status"], fast) == (200, True), (path, answer)
    assert answer["headers"]["content-type"].startswith("text/csv")


def test_unusual_results_requests_get_the_routes_answers(pair):
    failed = _execute(pair, "sleep_a_while", {"duration": 0.2, "fail": True})
    running = _execute(pair, "sleep_a_while", {"duration": 60})
    dismissed = _execute(pair, "sleep_a_while", {"duration": 60})
    features = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": square(-96.6, 38.9), "properties": {}}]}  # fmt: skip
    table = _execute(
        pair, "extract-table", {"features": features, "dataset_ids": ["sample:elevation"]}
    )
    for client in pair[:2]:
        client.delete(f"jobs/{dismissed}")
    _settle(pair, failed, {"failed"})
    _settle(pair, table, {"successful"})
    for path, status in [
        (f"jobs/{failed}/results", 500),
        (f"jobs/{running}/results", 404),  # not ready
        (f"jobs/{dismissed}/results", 410),
        ("jobs/job_999/results", 404),
        (f"jobs/{table}/results", 200),  # a file output: the route's link or base64
        (f"jobs/{table}/results?x=1", 200),
        (f"jobs/{table}/results/nope", 404),
    ]:
        # the table's metadata says whether it was computed or taken from the result
        # cache the two apps share (whichever finished first computed it): keys only
        same_body = status != 200 or table not in path
        answer, fast = _both(pair, path, same_body=same_body)
        assert (answer["status"], fast) == (status, False), (path, answer)
    for client in pair[:2]:
        client.delete(f"jobs/{running}")


def test_get_many_reads_jobs_in_the_order_asked():
    store = JobStore(":memory:")
    records = store.create_many([("p", {"i": i}, None) for i in range(1200)])
    asked = ["job_3", "nope", "job_1", "job_3", *(r.job_id for r in reversed(records))]
    got = store.get_many(asked)
    assert got[:4] == [store.get("job_3"), None, store.get("job_1"), store.get("job_3")]
    assert [r.job_id for r in got[4:] if r] == asked[4:] and None not in got[4:]
    store.start("job_1")
    (running,) = store.get_many(["job_1"])
    assert running is not None and running.status is JobStatus.RUNNING
    assert store.get_many([]) == []
    store.succeed("job_1", {"out": 1})
    (first, missing, second) = store.outputs_many(["job_1", "nope", "job_2"])
    assert first == (store.get("job_1"), {"out": 1}, False) and missing is None
    assert second == (store.get("job_2"), None, False)


def test_gathered_calls_share_one_worker_thread_call():
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(items)
        time.sleep(0.05)
        return [2 * i for i in items]

    def refuse(items: list[int]) -> list[int]:
        raise ValueError(f"no to {len(items)}")

    async def burst() -> tuple[list[int], list[BaseException | int]]:
        gathered = Gathered(double)
        doubled = await asyncio.gather(*(gathered(i) for i in range(50)))
        refused = Gathered(refuse)
        errors = await asyncio.gather(*(refused(i) for i in range(3)), return_exceptions=True)
        return list(doubled), list(errors)

    doubled, errors = asyncio.run(burst())
    assert doubled == [2 * i for i in range(50)]
    assert len(calls) < 50 and sorted(i for call in calls for i in call) == list(range(50))
    assert all(isinstance(e, ValueError) for e in errors) and len(errors) == 3
