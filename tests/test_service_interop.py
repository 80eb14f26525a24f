"""OWSLib's OGC API - Processes client drives the cas_xr service."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.test_service_support import LiveService, live_service, poll

processes_module = pytest.importorskip("owslib.ogcapi.processes")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("owslib")) as live:
        yield live


def test_owslib_drives_the_service(service: LiveService):
    api = processes_module.Processes(service.url)
    assert api.api()["openapi"].startswith("3.0")  # found through the service-desc link
    assert len(api.conformance()["conformsTo"]) == 6
    assert {"extract", "sleep_a_while", "primes_between"} <= {p["id"] for p in api.processes()}
    description = api.process("extract")
    assert description["inputs"]["geometry"]["minOccurs"] == 1
    status = api.execute("primes_between", inputs={"max_val": 12}, async_=True)
    assert status["status"] in ("accepted", "running", "successful")
    inputs = {"geometry": {"type": "Point", "coordinates": [-96.5, 39.0]},
              "dataset_ids": ["sample:elevation"]}  # fmt: skip
    extract = api.execute("extract", inputs=inputs)  # asks for sync; this service answers 201
    with httpx.Client(base_url=service.url) as http:
        assert poll(http, status["jobID"], {"successful"})["status"] == "successful"
        assert http.get(f"jobs/{status['jobID']}/results").json() == {
            "return_value": [2, 3, 5, 7, 11]
        }
        assert poll(http, extract["jobID"], {"successful", "failed"})["status"] == "successful"
        response = http.get(f"jobs/{extract['jobID']}/results").json()["response"]
    assert response["results"][0]["units"] == "m"
