"""The web face without a browser: negotiation, headers, downloads, sessions, limits.

The pages in a real browser are tested in tests/test_service_web_browser.py.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import cas_xr as cas
from cas_xr.sample import sample_catchments_path
from cas_xr.service import create_app
from cas_xr.service._jobs import JobStore
from cas_xr.service._sessions import Sessions
from cas_xr.service._web._negotiation import asked_format, without_format
from tests.test_service_support import poll, threaded_service

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
KEY = "web-test-key-0123456789"
DATASETS = ["sample:elevation", "sample:land_cover"]


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", "", "json"),
        ("", "*/*", "json"),
        ("", "application/json", "json"),
        ("", "text/html", "html"),
        ("", HTML["Accept"], "html"),
        ("", "application/json, text/html;q=0.5", "json"),
        ("", "text/html;q=0.9, application/json;q=0.9", "html"),
        ("f=json", HTML["Accept"], "json"),
        ("f=HTML", "application/json", "html"),
        ("limit=2&f=csv", "", "csv"),
        ("", "text/html;q=0", "json"),
    ],
)
def test_asked_format(query: str, accept: str, expected: str):
    assert asked_format(query, accept) == expected


def test_without_format_keeps_other_parameters():
    assert without_format("limit=2&f=html&status=running") == "limit=2&status=running"


def test_sessions_sign_expire_and_depend_on_the_keys():
    sessions = Sessions([SecretStr("a"), SecretStr("b")])
    cookie = sessions.issue("key:abc")
    assert sessions.identity(cookie) == "key:abc"
    assert Sessions([SecretStr("b"), SecretStr("a")]).identity(cookie) == "key:abc"  # any order
    assert Sessions([SecretStr("a")]).identity(cookie) is None  # the keys changed
    assert sessions.identity(cookie.replace("key:abc", "key:abd")) is None
    assert sessions.identity(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert sessions.identity("") is None and sessions.identity(None) is None
    assert Sessions([SecretStr("a")], lifetime_s=-1).identity(
        Sessions([SecretStr("a")], lifetime_s=-1).issue("key:abc")
    ) is None  # fmt: skip
    token = sessions.csrf_token(cookie)
    assert sessions.check_csrf(cookie, token)
    assert not sessions.check_csrf(cookie, None) and not sessions.check_csrf(cookie, "x" + token)
    nonce = sessions.login_nonce()
    assert sessions.check_login(nonce, sessions.login_token(nonce))
    assert not sessions.check_login(None, sessions.login_token(nonce))
    assert not sessions.check_login(sessions.login_nonce(), sessions.login_token(nonce))


def test_templates_and_scripts_ship_with_the_package():
    package = files("cas_xr.service")
    assert (package / "templates" / "base.html").is_file()
    for name in ("run.js", "sort.js", "swagger-init.js", "style.css"):
        assert (package / "static" / name).is_file()


@pytest.fixture(scope="module")
def jobs_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-jobs-folder") / "jobs.sqlite"


@pytest.fixture(scope="module")
def http(jobs_db: Path) -> Iterator[httpx.Client]:
    app = create_app(cas.Settings(jobs_db=str(jobs_db)), testing=True)
    with threaded_service(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def batch_job(http: httpx.Client) -> tuple[str, dict[str, Any]]:
    collection = json.loads(sample_catchments_path().read_text("utf-8"))
    inputs = {"geometries": collection["features"], "dataset_ids": DATASETS}
    created = http.post("processes/batch-extract/execution", json={"inputs": inputs})
    assert created.status_code == 201, created.text
    job_id = created.json()["jobID"]
    assert poll(http, job_id, {"successful", "failed"}, timeout=120)["status"] == "successful"
    return job_id, http.get(f"jobs/{job_id}/results").json()["response"]


def _pages(http: httpx.Client, job_id: str) -> list[str]:
    return [
        "",
        "conformance",
        "processes",
        "processes/extract",
        "processes/list-datasets",
        "jobs",
        "jobs?limit=1",
        f"jobs/{job_id}",
        f"jobs/{job_id}/results",
        "run",
        "docs",
        "redoc",
        "jobs/job_999999",
        "no/such/page",
    ]


def test_every_page_has_the_security_headers_and_no_server_path(
    http: httpx.Client, batch_job: tuple[str, Any], jobs_db: Path
):
    job_id, _ = batch_job
    for path in _pages(http, job_id):
        page = http.get(path, headers=HTML)
        assert page.headers["content-type"].startswith("text/html"), path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "connect-src 'self';" in policy, path
        assert "'unsafe-inline'" not in policy.partition("style-src")[0], path
        assert page.headers["x-content-type-options"] == "nosniff"
        text = page.text
        assert "<script>" not in text and " on" + "click=" not in text, path  # nothing inline
        assert str(jobs_db.parent) not in text and "/work/" not in text, path
        assert str(Path(cas.__file__).parent) not in text, path
    assert http.get("no/such/page", headers=HTML).status_code == 404


def test_json_stays_the_default_and_varies_on_accept(http: httpx.Client):
    answer = http.get("processes")
    assert answer.headers["content-type"] == "application/json"
    assert "accept" in answer.headers["vary"].lower()
    assert http.get("processes", params={"f": "json"}, headers=HTML).json()["processes"]
    refused = http.get("processes", params={"f": "xml"})
    assert refused.status_code == 400 and "html, json" in refused.json()["detail"]


def test_downloads_have_the_numbers_of_the_json_results(
    http: httpx.Client, batch_job: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    job_id, response = batch_job
    expected = [
        (i, r["dataset_id"], r["value"], r["quality"], r["coverage_fraction"])
        for i, answer in enumerate(response["responses"])
        for r in answer["results"]
    ]
    table = http.get(f"jobs/{job_id}/results", params={"f": "csv"})
    assert table.headers["content-type"].startswith("text/csv")
    assert "attachment" in table.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(table.text)))
    got = [
        (int(r["geometry"]), r["dataset_id"], float(r["value"]), r["quality"],
         float(r["coverage_fraction"]))
        for r in rows
    ]  # fmt: skip
    assert got == expected  # float repr round-trips exactly
    assert rows[0]["label"] == "K01" and rows[0]["units"] == "m"
    import geopandas as gpd

    parquet = http.get(f"jobs/{job_id}/results", params={"f": "parquet"})
    frame = gpd.read_parquet(io.BytesIO(parquet.content))
    assert list(frame["value"].astype(float)) == [e[2] for e in expected]
    assert frame.crs.to_epsg() == 4326 and frame.geometry.is_valid.all()
    # the map's dataset can be chosen; an unknown one falls back to the first
    page = http.get(f"jobs/{job_id}/results", params={"dataset": "sample:land_cover"}, headers=HTML)
    assert "<strong>sample:land_cover</strong>" in page.text
    # a long table is cut on the page, never in the downloads
    monkeypatch.setattr("cas_xr.service._web._views._MAX_ROWS", 3)
    page = http.get(f"jobs/{job_id}/results", headers=HTML)
    assert f"The first 3 of {len(expected)} rows" in page.text
    assert page.text.count('class="num value"') == 3


def test_downloads_of_other_processes_are_refused(http: httpx.Client):
    created = http.post("processes/primes_between/execution", json={"inputs": {"max_val": 20}})
    job_id = created.json()["jobID"]
    assert poll(http, job_id, {"successful"})["status"] == "successful"
    refused = http.get(f"jobs/{job_id}/results", params={"f": "csv"})
    assert refused.status_code == 400 and "only the results of extract" in refused.json()["detail"]
    page = http.get(f"jobs/{job_id}/results", headers=HTML)
    assert page.status_code == 200 and "19" in page.text  # each output as JSON


def test_unfinished_results_are_an_error_page(http: httpx.Client):
    created = http.post("processes/sleep_a_while/execution", json={"inputs": {"duration": 5}})
    job_id = created.json()["jobID"]
    page = http.get(f"jobs/{job_id}/results", headers=HTML)
    assert page.status_code == 404 and "not ready" in page.text
    assert http.delete(f"jobs/{job_id}").status_code == 200


# -- authentication, limits ----------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    jobs_db = str(tmp_path_factory.mktemp("web-auth") / "jobs.sqlite")
    settings = cas.Settings(
        jobs_db=jobs_db, auth_enabled=True, api_keys=[KEY], max_request_bytes=4096
    )
    with threaded_service(create_app(settings, testing=True)) as url:
        yield url


def _log_in(client: httpx.Client, target: str = "/jobs") -> httpx.Response:
    form = client.get("login", params={"next": target})
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post("login", data={"api_key": KEY, "csrf_token": token, "next": target})


def test_login_redirects_only_within_the_site(secured: str):
    for target, landing in (("/jobs", "/jobs"), ("//evil.example/x", "/"),
                            ("https://evil.example/", "/"), ("/\\evil.example", "/")):  # fmt: skip
        with httpx.Client(base_url=secured) as client:
            answer = _log_in(client, target)
            assert answer.status_code == 303 and answer.headers["location"] == landing
            cookie = answer.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie


def test_session_cookie_authenticates_pages_and_reads_but_changes_need_the_token(secured: str):
    with httpx.Client(base_url=secured) as client:
        assert _log_in(client).status_code == 303
        assert client.get("jobs").status_code == 200  # the JSON API too
        page = client.get("run")
        assert page.status_code == 200
        token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
        body = {"inputs": {"max_val": 5}}
        refused = client.post("processes/primes_between/execution", json=body)
        assert refused.status_code == 403
        assert refused.json()["type"] == "urn:cas-xr:problem:csrf-failed"
        created = client.post(
            "processes/primes_between/execution", json=body, headers={"X-CSRF-Token": token}
        )
        assert created.status_code == 201
        job = created.json()["jobID"]
        assert client.delete(f"jobs/{job}").status_code == 403
        assert client.delete(f"jobs/{job}", headers={"X-CSRF-Token": token}).status_code == 200
        # logging out needs the token too
        copied = client.cookies["cas_session"]
        assert client.post("logout").status_code == 403
        out = client.post("logout", data={"csrf_token": token})
        assert out.status_code == 303 and 'cas_session=""' in out.headers["set-cookie"]
    # the session is over for every copy of the cookie, not only the browser's
    answer = httpx.get(secured + "jobs", cookies={"cas_session": copied})
    assert answer.status_code == 401


def test_ended_sessions_are_kept_until_their_cookies_expire(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite")
    store = JobStore(path)
    sessions = Sessions([SecretStr("a")], revoked=store)
    cookie, other = sessions.issue("key:abc"), sessions.issue("key:def")
    sessions.end(cookie)
    assert sessions.identity(cookie) is None and sessions.identity(other) == "key:def"
    assert Sessions([SecretStr("a")]).identity(cookie) == "key:abc"  # a store without it
    sessions.end("forged.123.abc")  # not a valid cookie: nothing stored
    store.revoke_session("old", int(time.time()) - 5)
    assert "old" not in store.revoked_sessions()  # expired: no longer read
    sessions.end(other)  # drops revocations whose cookies expired
    with sqlite3.connect(path) as db:
        kept = {row[0] for row in db.execute("SELECT signature FROM revoked_sessions")}
    assert kept == {cookie.rsplit(".", 1)[1], other.rsplit(".", 1)[1]}


def test_a_session_works_on_every_worker_with_the_same_keys(secured: str, tmp_path: Path):
    with httpx.Client(base_url=secured) as client:
        _log_in(client)
        cookie = client.cookies["cas_session"]
    same = create_app(cas.Settings(jobs_db=":memory:", auth_enabled=True, api_keys=[KEY]))
    other = create_app(cas.Settings(jobs_db=":memory:", auth_enabled=True, api_keys=["x" * 20]))
    for app, status in ((same, 200), (other, 401)):
        with threaded_service(app) as url:
            answer = httpx.get(url + "jobs", cookies={"cas_session": cookie})
            assert answer.status_code == status


def test_pages_count_against_the_rate_limit(tmp_path: Path):
    settings = cas.Settings(
        jobs_db=str(tmp_path / "jobs.sqlite"), rate_limit_enabled=True, rate_limit_per_minute=3
    )
    with threaded_service(create_app(settings)) as url:
        # wait_until_up spent some of the budget on /conformance
        answers = [httpx.get(url + "processes", headers=HTML) for _ in range(4)]
    limited = answers[-1]
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert limited.headers["content-type"].startswith("text/html")
    assert "requests in a minute" in limited.text


def test_login_bodies_have_the_size_limit(secured: str):
    answer = httpx.post(secured + "login", data={"api_key": "k" * 10_000})
    assert answer.status_code == 413


def test_docs_assets_are_served_without_cdn_references(http: httpx.Client):
    swagger = http.get("static/docs/swagger-ui-bundle.js")
    assert swagger.status_code == 200 and len(swagger.content) > 100_000
    redoc = http.get("static/docs/redoc.standalone.js")
    assert redoc.status_code == 200 and b"cdn.redoc.ly/redoc/logo" not in redoc.content
    for page in ("docs", "redoc"):
        text = http.get(page).text
        assert "http://" not in text and "https://" not in text
    assert http.get("static/style.css").headers["content-type"].startswith("text/css")


def test_distributions_render_and_download_as_json_text(http: httpx.Client):
    collection = json.loads(sample_catchments_path().read_text("utf-8"))
    inputs = {
        "geometries": collection["features"][:2],
        "dataset_ids": ["sample:land_cover"],
        "aggregation": "distribution",
    }
    created = http.post("processes/batch-extract/execution", json={"inputs": inputs})
    job_id = created.json()["jobID"]
    assert poll(http, job_id, {"successful", "failed"}, timeout=120)["status"] == "successful"
    results = http.get(f"jobs/{job_id}/results").json()["response"]["responses"]
    rows = list(csv.DictReader(io.StringIO(http.get(f"jobs/{job_id}/results?f=csv").text)))
    assert [json.loads(r["value"]) for r in rows] == [a["results"][0]["value"] for a in results]
    page = http.get(f"jobs/{job_id}/results", headers=HTML)
    assert page.status_code == 200 and "cropland: " in page.text
    assert "no value" in page.text  # a distribution does not colour the map


def test_svg_map_colours_by_value_groups_far_geometries_and_simplifies():
    import math

    from cas_xr.service._web._svgmap import svg_map

    def square(x: float, y: float, size: float = 0.1) -> dict[str, Any]:
        ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
        return {"type": "Polygon", "coordinates": [ring]}

    circle = [[math.cos(t / 500 * math.tau), math.sin(t / 500 * math.tau)] for t in range(500)]
    geometries = [
        ("a", square(0, 0)),
        ("b", square(0.2, 0)),
        ("far", square(50, 40)),
        ("point", {"type": "Point", "coordinates": [50.05, 40.3]}),
        ("round", {"type": "Polygon", "coordinates": [[*circle, circle[0]]]}),
    ]
    drawn = svg_map(geometries, {0: 1.0, 1: 3.0, 2: None, 3: 2.0, 4: 1.0})
    assert len(drawn.panels) == 2  # (a, b, round) near 0,0; (far, point) near 50,40
    shapes = {s.title: s for panel in drawn.panels for s in panel.shapes}
    assert shapes["a: 1"].fill == "#440154" and shapes["b: 3"].fill == "#fde725"  # viridis ends
    assert shapes["far: no value"].fill == "#bbbbbb"
    assert shapes["point: 2"].point is not None
    assert shapes["round: 1"].path.count("L") < 200  # 500 vertices need not all be drawn
    assert [label for _, label in drawn.legend] == ["1", "1.5", "2", "2.5", "3"]
    for panel in drawn.panels:
        assert panel.width <= 640 and panel.height <= 400


def test_csv_download_quotes_text_a_spreadsheet_would_run():
    import csv
    import io

    from cas_xr.service._web._results import Row, to_csv

    row = Row(
        geometry=0, label='=HYPERLINK("http://x","y")', dataset_id="sample:elevation",
        variable="elevation", value=-3.5, units="m", aggregation="mean", quality="good",
        coverage_fraction=1.0, pixel_count=4, timestamp=None, provider="sample",
        error="@SUM(A1)",
    )  # fmt: skip
    header, cells = list(csv.reader(io.StringIO(to_csv([row]))))
    record = dict(zip(header, cells, strict=True))
    assert record["label"] == '\'=HYPERLINK("http://x","y")'
    assert record["error"] == "'@SUM(A1)"
    assert record["value"] == "-3.5" and record["dataset_id"] == "sample:elevation"
