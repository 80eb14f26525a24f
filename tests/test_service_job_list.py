"""The job list: paging by `next` links, and the datetime / minDuration / maxDuration filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

import cas_xr as cas
from cas_xr.service import create_app
from tests.test_service_support import poll, threaded_service


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    jobs_db = str(tmp_path_factory.mktemp("job-list") / "jobs.sqlite")
    app = create_app(cas.Settings(jobs_db=jobs_db, job_workers=2), testing=True)
    with threaded_service(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def _execute(http: httpx.Client, process: str, **inputs: object) -> str:
    response = http.post(f"processes/{process}/execution", json={"inputs": inputs})
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def _pages(http: httpx.Client, url: str) -> Iterator[dict]:
    while url:
        page = http.get(url)
        assert page.status_code == 200, page.text
        document = page.json()
        yield document
        url = next((link["href"] for link in document["links"] if link["rel"] == "next"), "")


def test_paging_through_250_jobs_by_next_links(http: httpx.Client):
    before = [job["jobID"] for page in _pages(http, "jobs?limit=10000") for job in page["jobs"]]
    created = [_execute(http, "primes_between", max_val=2) for _ in range(250)]
    pages = list(_pages(http, "jobs?limit=100"))
    ids = [job["jobID"] for page in pages for job in page["jobs"]]
    assert ids == before + created  # each job once, oldest first
    assert [len(p["jobs"]) for p in pages][:2] == [100, 100]
    assert all(any(link["rel"] == "self" for link in p["links"]) for p in pages)
    assert not any(link["rel"] == "next" for link in pages[-1]["links"])
    # a next link keeps the filters
    filtered = list(_pages(http, "jobs?limit=40&processID=primes_between"))
    assert [job["jobID"] for page in filtered for job in page["jobs"]][-250:] == created
    assert all("processID=primes_between" in link["href"] for p in filtered[:-1]
               for link in p["links"] if link["rel"] == "next")  # fmt: skip
    assert http.get("jobs", params={"after": "nope"}).status_code == 400


def test_datetime_filter(http: httpx.Client):
    ids = [_execute(http, "primes_between", max_val=2) for _ in range(3)]
    jobs = {job["jobID"]: job for job in http.get("jobs", params={"limit": 10000}).json()["jobs"]}
    created = [jobs[job_id]["created"] for job_id in ids]
    assert datetime.fromisoformat(created[0]) < datetime.fromisoformat(created[2])

    def listed(value: str) -> list[str]:
        answer = http.get("jobs", params={"datetime": value, "limit": 10000})
        assert answer.status_code == 200, answer.text
        return [job["jobID"] for job in answer.json()["jobs"]]

    assert listed(f"{created[1]}/..")[:2] == ids[1:]
    assert listed(f"{created[1]}/")[:2] == ids[1:]
    assert listed(f"../{created[1]}")[-2:] == ids[:2]
    assert listed(f"{created[0]}/{created[1]}") == ids[:2]
    assert listed(created[2]) == [ids[2]]  # an instant: jobs created then
    assert listed("2000-01-01T00:00:00Z/2000-12-31T00:00:00Z") == []
    for bad, words in (
        ("yesterday", "is not an RFC 3339 date-time"),
        ("2024-02-01/2024-01-01", "start is after its end"),
        ("..", "give a date-time or an interval"),
    ):
        problem = http.get("jobs", params={"datetime": bad})
        assert problem.status_code == 400 and problem.json()["type"].endswith("invalid-request")
        assert words in problem.json()["detail"]


def test_duration_filters(http: httpx.Client):
    slow = _execute(http, "sleep_a_while", duration=1.5)
    quick = _execute(http, "primes_between", max_val=2)
    for job_id in (slow, quick):
        assert poll(http, job_id, {"successful"})["status"] == "successful"

    def listed(**params: object) -> set[str]:
        answer = http.get("jobs", params={**params, "limit": 10000})
        assert answer.status_code == 200, answer.text
        return {job["jobID"] for job in answer.json()["jobs"]}

    assert slow in listed(minDuration=1) and quick not in listed(minDuration=1)
    assert quick in listed(maxDuration=1) and slow not in listed(maxDuration=1)
    assert slow not in listed(minDuration=2)
    assert http.get("jobs", params={"minDuration": -1}).status_code == 400


def test_the_openapi_document_lists_the_filters(http: httpx.Client):
    operation = http.get("openapi.json").json()["paths"]["/jobs"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"limit", "status", "processID", "datetime", "minDuration", "maxDuration"} <= names


def test_store_find_by_number(tmp_path: Path):
    from cas_xr.service._jobs import JobStore

    store = JobStore(str(tmp_path / "jobs.sqlite"))
    ids = [store.create("p", {}).job_id for _ in range(5)]
    assert [r.job_id for r in store.find(limit=2, after=1)] == ids[2:4]


def test_every_problem_type_is_documented():
    from cas_xr.service._problems import PROBLEM_TABLE

    page = (Path(__file__).parents[1] / "docs" / "service.md").read_text(encoding="utf-8")
    table = page.split("| Problem type | Status | When |")[1].split("\n\n")[0]
    types = {type_ for _, _, type_, _ in PROBLEM_TABLE}
    # the problems of unknown routes, methods and unreadable bodies (HTTP errors)
    types |= {f"urn:cas-xr:problem:{name}" for name in ("not-found", "method-not-allowed")}
    types.add("urn:cas-xr:problem:bad-request")
    missing = [t for t in types if t.rpartition(":")[2].rpartition("/")[2] not in table]
    assert not missing, f"problem types not in docs/service.md: {missing}"
