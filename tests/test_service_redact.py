"""The service's answers name no folder of its disk: local paths become ``file://…/<name>``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import cas_xr as cas
from cas_xr.service._redact import redact, redact_text
from cas_xr.testing import make_cog
from tests._catalogs import GRID, VALUES
from tests.test_service_support import LiveService, live_service, poll, square


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/srv/cas/sample/data/catalog.json", "file://…/catalog.json"),
        ("/tmp/pytest-7/my data/height 2.tif", "file://…/height 2.tif"),  # one path, spaces too
        ("file:///srv/data/dem.tif", "file://…/dem.tif"),
        (r"C:\data\dem.tif", "file://…/dem.tif"),
        ("not found (provider 'mine' /srv/data/gone.tif)",
         "not found (provider 'mine' file://…/gone.tif)"),
        ("'/root/.cache/x.json' not recognized", "'file://…/x.json' not recognized"),
        ("https://example.org/stac/catalog.json", "https://example.org/stac/catalog.json"),
        ("s3://bucket/dem/tile.tif", "s3://bucket/dem/tile.tif"),
        ("/vsicurl/https://example.org/dem.tif", "/vsicurl/https://example.org/dem.tif"),
        ("clay in g/kg, 3/4 covered", "clay in g/kg, 3/4 covered"),
        ("sample:elevation", "sample:elevation"),
    ],
)  # fmt: skip
def test_redact_text(text: str, expected: str):
    assert redact_text(text) == expected


def test_redact_walks_json():
    value = {"provenance": {"path": "/a/b.tif", "files": ["/a/c.tif"]}, "n": 1, "ok": None}
    assert redact(value) == {
        "provenance": {"path": "file://…/b.tif", "files": ["file://…/c.tif"]},
        "n": 1,
        "ok": None,
    }


PROVIDER = """\
slug: mine
protocol: local
endpoint: {endpoint}
license: CC0-1.0
datasets:
  - name: height
    path: height.tif
    variables: [{{name: height, units: m, nodata_value: -9999}}]
  - name: gone
    path: gone.tif
    variables: [{{name: gone, units: m}}]
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("server-disk")
    make_cog(folder / "height.tif", VALUES, transform=GRID, crs="EPSG:4326", nodata=-9999.0)
    return folder


@pytest.fixture(scope="module")
def service(data: Path) -> Iterator[LiveService]:
    provider = data / "mine.yaml"
    provider.write_text(PROVIDER.format(endpoint=data), encoding="utf-8")
    env = {"CAS_PROVIDER_FILES": json.dumps([str(provider)])}
    (data / "service").mkdir()
    with live_service(data / "service", env) as live:
        yield live


def _secrets(data: Path) -> list[str]:
    """What no answer may contain: the server's install, data and temporary folders."""
    install = Path(cas.__file__).resolve().parent.parent
    return [str(install), str(data), tempfile.gettempdir() + "/"]


def _run(http: httpx.Client, process: str, inputs: dict[str, Any], texts: list[str]) -> Any:
    created = http.post(f"processes/{process}/execution", json={"inputs": inputs})
    texts.append(created.text)
    job_id = created.json()["jobID"]
    assert poll(http, job_id, {"successful", "failed"})["status"] == "successful"
    status = http.get(f"jobs/{job_id}")
    results = http.get(f"jobs/{job_id}/results")
    texts += [status.text, results.text]
    return results.json()


def test_no_answer_names_a_server_folder(service: LiveService, data: Path):
    texts: list[str] = []
    with httpx.Client(base_url=service.url, timeout=30) as http:
        local = square(10.05, 50.05, 0.05)
        ids = ["sample:elevation", "sample:precipitation", "mine:height", "mine:gone"]
        one = _run(http, "extract", {"geometry": local, "dataset_ids": ids[2:]}, texts)
        geometries = [square(-96.6, 38.9), local]
        batch = _run(http, "batch-extract", {"geometries": geometries, "dataset_ids": ids}, texts)
        _run(http, "list-datasets", {}, texts)
        texts += [http.get(path).text for path in ("", "processes", "jobs", "processes/extract")]
    for text in texts:
        for secret in _secrets(data):
            assert secret not in text, (secret, text[:2000])
    sample, mine = (r["results"] for r in batch["response"]["responses"])
    assert sample[0]["provenance"]["endpoint"] == "file://…/catalog.json"
    assert mine[2]["provenance"]["path"] == "file://…/height.tif"
    height, gone = one["response"]["results"]
    assert height["quality"] == "good" and height["provenance"]["path"] == "file://…/height.tif"
    assert gone["quality"] == "missing" and "file://…/gone.tif" in gone["error"]["message"]
    assert any("file://…/gone.tif" in w for w in one["response"]["warnings"])


def test_job_messages_and_problem_details_are_redacted():
    from cas_xr.errors import LimitExceededError, SourceError
    from cas_xr.service._executor import failure_message
    from cas_xr.service._problems import render_problem

    failed = SourceError("cannot open", provider="mine", url="/srv/data/x.tif")
    assert failure_message(failed) == "cannot open (provider 'mine' file://…/x.tif)"
    problem = render_problem(LimitExceededError("/srv/data/x.tif is too large"))
    assert json.loads(bytes(problem.body))["detail"] == "file://…/x.tif is too large"
