"""The service's pages in a real browser: Debian's headless Chromium driven by Playwright.

The service runs under uvicorn on 127.0.0.1. Each page must render with its content (DOM
checks, and a screenshot with at least 2 % of non-background pixels), report no
Content-Security-Policy violation, and make requests only to the service itself. The run
page submits jobs whose results page shows the facade's numbers; with auth on, the login
and CSRF paths work and fail as they should; values carrying ``<script>`` or
``onerror=`` are shown as text and never run.

Under CI=true a browser that cannot start fails these tests; elsewhere they skip.
``WEB_SCREENSHOTS=docs/img`` also saves the screenshots the docs show.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import cas_xr as cas
from cas_xr.errors import QualityWarning
from cas_xr.sample import sample_catchments_path
from cas_xr.service import create_app
from tests.test_service_support import threaded_service

KEY = "browser-test-key-0123456789"
DATASETS = ["sample:elevation", "sample:clay_0-5cm"]
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def _no_browser(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the browser cannot start: {message}")
    pytest.skip(f"the browser cannot start: {message}")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    _no_browser("Debian's chromium is not installed (apt-get install chromium)")
    raise AssertionError  # _no_browser fails or skips


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _no_browser("playwright is not installed (pip install '.[dev]')")
    executable = _chromium()
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
        except Error as err:
            _no_browser(f"chromium does not start: {err}")
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A browser page that records its requests, console errors and CSP violations."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path.lstrip("/"))
        self.page.wait_for_load_state("load")
        return response

    def violations(self) -> list[str]:
        reported = self.page.evaluate("window.__csp || []")
        policy = [m for m in self.console if "Content Security Policy" in m]
        return [*reported, *policy]

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith((self.base, "data:", "blob:"))]

    def check_clean(self) -> None:
        assert self.violations() == []
        assert self.foreign_requests() == []
        assert self.page.evaluate("window.__xss") is None

    def ink(self, name: str) -> float:
        """The share of non-background pixels of a screenshot (saved for the docs if asked)."""
        import numpy as np
        from PIL import Image

        png = self.page.screenshot()
        folder = os.environ.get("WEB_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{name}.png").write_bytes(png)
        rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
        colours = np.bincount((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])
        return float(1 - colours.max() / len(rgb))  # the background: the commonest colour


def _tab(browser: Any, base: str, **context: Any) -> Tab:
    ctx = browser.new_context(viewport={"width": 1200, "height": 800}, **context)
    ctx.add_init_script(_WATCH)
    page = ctx.new_page()
    tab = Tab(page, base)
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("console", lambda message: tab.console.append(message.text))
    page.on("pageerror", lambda error: tab.console.append(f"page error: {error}"))
    return tab


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    jobs_db = str(tmp_path_factory.mktemp("web") / "jobs.sqlite")
    app = create_app(cas.Settings(jobs_db=jobs_db, job_workers=2), testing=True)
    with threaded_service(app) as url:
        yield url, app


@pytest.fixture
def tab(browser: Any, service: tuple[str, Any]) -> Iterator[Tab]:
    tab = _tab(browser, service[0])
    yield tab
    tab.page.context.close()


def _features() -> dict[str, Any]:
    return json.loads(sample_catchments_path().read_text("utf-8"))


def _facade(function: Any, request: Any) -> Any:
    """``function(request)`` in a thread: Playwright's sync API keeps an event loop here."""

    def call() -> Any:
        with warnings.catch_warnings():  # a catchment lies partly outside the sample rasters
            warnings.simplefilter("ignore", QualityWarning)
            return function(request)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def _wait_for_results(tab: Tab, timeout_s: float = 120) -> None:
    """On a job page (which reloads itself), wait for the results link and follow it."""
    tab.page.locator("#results-link").wait_for(timeout=timeout_s * 1000)
    tab.page.locator("#results-link").click()
    tab.page.wait_for_url("**/results")
    tab.page.wait_for_load_state("load")


def _submit(
    tab: Tab, *, process: str, datasets: list[str], paste: str = "", upload: Path | None = None
) -> None:
    tab.open("run")
    if upload is not None:
        tab.page.set_input_files("#geojson-file", str(upload))
    else:
        tab.page.fill("#geojson", paste)
    tab.page.fill("#dataset-search", "sample")
    for dataset in datasets:
        tab.page.check(f"input[name=dataset][value='{dataset}']")
    tab.page.select_option("#aggregation", "mean")
    tab.page.select_option("#process", process)
    shown = tab.page.locator("label.dataset:not(.hidden) input[name=dataset]")
    sample = {d.id for d in cas.list_datasets("sample")}
    assert {shown.nth(k).get_attribute("value") for k in range(shown.count())} == sample
    assert tab.ink("run") >= 0.02
    tab.page.click("#submit")
    tab.page.wait_for_url("**/jobs/job_*")


def _shown_values(tab: Tab) -> dict[tuple[str, str], float]:
    """(geometry label, dataset id) -> the value of each row of the results table."""
    rows = tab.page.locator("#attributes tbody tr")
    batch = tab.page.locator("#attributes th").first.inner_text().strip() == "Geometry"
    shown = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        label = cells.nth(0).inner_text().strip() if batch else ""
        dataset = cells.nth(1 if batch else 0).inner_text().strip()
        value_cell = tab.page.locator("#attributes tbody tr").nth(i).locator("td.value")
        value = float(value_cell.get_attribute("data-value"))
        assert value_cell.inner_text().strip() == f"{value:.6g}"
        shown[label, dataset] = value
    return shown


def test_landing_conformance_processes_render(tab: Tab):
    tab.open("")
    assert tab.page.locator("h1").inner_text() == "cas_xr attribute service"
    assert tab.page.locator(".card").count() == 4
    assert tab.ink("landing") >= 0.02
    tab.open("conformance")
    assert tab.page.locator("main li code").count() == 6
    assert tab.ink("conformance") >= 0.02
    tab.open("processes")
    ids = tab.page.locator("main tbody td:first-child").all_inner_texts()
    assert {"extract", "batch-extract", "list-datasets"} <= set(ids)
    assert tab.ink("processes") >= 0.02
    tab.open("processes/batch-extract")
    inputs = tab.page.locator("main table").first.locator("tbody td:first-child").all_inner_texts()
    assert {"geometries", "dataset_ids", "aggregation"} <= set(inputs)
    example = json.loads(tab.page.locator("pre.example").inner_text())
    assert example["inputs"]["dataset_ids"] == ["sample:elevation"]
    assert tab.ink("process") >= 0.02
    tab.check_clean()


def test_json_stays_the_default(service: tuple[str, Any]):
    url = service[0]
    for path in ("", "processes", "jobs"):
        assert httpx.get(url + path).headers["content-type"] == "application/json"
        page = httpx.get(url + path, params={"f": "html"})
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "connect-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["docs", "redoc"])
def test_api_docs_render_offline(tab: Tab, path: str):
    tab.open(path)
    if path == "docs":
        operations = tab.page.locator(".opblock")
        operations.first.wait_for(timeout=30_000)
        summaries = tab.page.locator(".opblock-summary-path").all_inner_texts()
        assert "/processes/{processID}/execution" in [s.replace("\u200b", "") for s in summaries]
        assert operations.count() >= 9
    else:
        tab.page.locator("h2", has_text="Execute Process").first.wait_for(timeout=30_000)
        assert tab.page.locator("[data-section-id^='operation/']").count() >= 9
    assert tab.ink(path) >= 0.02
    assert any(u.endswith("/openapi.json") for u in tab.requests)
    tab.check_clean()


def test_run_page_batch_results_match_the_facade(tab: Tab):
    collection = _features()
    _submit(tab, process="batch-extract", datasets=DATASETS, paste=json.dumps(collection))
    assert tab.page.locator("#job-status").inner_text() in ("accepted", "running", "successful")
    assert tab.ink("job") >= 0.02
    _wait_for_results(tab)
    assert tab.ink("results") >= 0.02
    request = cas.BatchAttributeRequest(
        geometries=[f["geometry"] for f in collection["features"]], dataset_ids=DATASETS
    )
    expected = _facade(cas.batch_extract_sync, request)
    labels = [f["properties"]["id"] for f in collection["features"]]
    facade = {
        (labels[i], r.dataset_id): r.value
        for i, response in enumerate(expected.responses)
        for r in response.results
    }
    shown = _shown_values(tab)
    assert set(shown) == set(facade)
    for key, value in facade.items():
        assert shown[key] == pytest.approx(value, rel=1e-12), key
    # one coloured shape per catchment on the map, drawn by the service
    shapes = tab.page.locator("figure.map svg path, figure.map svg circle")
    assert shapes.count() == len(labels)
    # the table sorts by value
    tab.page.locator("#attributes th button", has_text="Value").click()
    values = [float(v) for v in tab.page.locator("#attributes td.value").evaluate_all(
        "cells => cells.map(c => c.dataset.value)")]  # fmt: skip
    assert values == sorted(values)
    # downloads: JSON, CSV and GeoParquet of the same numbers
    with tab.page.expect_download() as download:
        tab.page.click("#download-csv")
    csv_text = Path(download.value.path()).read_text("utf-8")
    assert csv_text.startswith("geometry,label,dataset_id")
    assert len(csv_text.strip().splitlines()) == 1 + len(facade)
    with tab.page.expect_download() as download:
        tab.page.click("#download-parquet")
    import geopandas as gpd

    table = gpd.read_parquet(download.value.path())
    assert len(table) == len(facade) and table.crs.to_epsg() == 4326
    tab.check_clean()


def test_run_page_upload_extract_matches_the_facade(tab: Tab, tmp_path: Path):
    feature = _features()["features"][0]
    upload = tmp_path / "one.geojson"
    upload.write_text(json.dumps(feature), "utf-8")
    _submit(tab, process="extract", datasets=DATASETS, upload=upload)
    _wait_for_results(tab)
    expected = _facade(
        cas.extract_sync, cas.AttributeRequest(geometry=feature["geometry"], dataset_ids=DATASETS)
    )
    shown = _shown_values(tab)
    assert shown == {
        ("", r.dataset_id): pytest.approx(r.value, rel=1e-12) for r in expected.results
    }
    units = tab.page.locator("#attributes tbody tr td:nth-child(3)").all_inner_texts()
    assert units == [r.units for r in expected.results]
    quality = tab.page.locator("#attributes tbody tr td:nth-child(5)").all_inner_texts()
    assert quality == [r.quality.value for r in expected.results]
    coverage = tab.page.locator("#attributes tbody tr td:nth-child(6)").all_inner_texts()
    assert coverage == [f"{r.coverage_fraction:.3g}" for r in expected.results]
    tab.check_clean()


def test_run_page_reports_bad_input_as_text(tab: Tab):
    tab.open("run")
    tab.page.fill("#geojson", "{not json")
    tab.page.check("input[name=dataset][value='sample:elevation']")
    tab.page.click("#submit")
    assert "not valid JSON" in tab.page.locator("#run-status").inner_text()
    # a dataset id carrying markup: refused by the API, its problem shown as text
    tab.page.fill("#geojson", json.dumps(_features()))
    tab.page.evaluate(
        "(id) => { document.querySelector('input[name=dataset]:checked').value = id; }",
        "sample:" + XSS,
    )
    tab.page.click("#submit")
    status = tab.page.locator("#run-status")
    status.filter(has_text="400").wait_for()
    assert XSS in status.inner_text()
    assert tab.page.locator("#run-status *").count() == 0
    tab.check_clean()


def test_job_list_refreshes_while_jobs_run_and_pages(tab: Tab, service: tuple[str, Any]):
    url = service[0]
    created = [
        httpx.post(url + "processes/sleep_a_while/execution", json={"inputs": {"duration": 3}})
        for _ in range(2)
    ]
    assert all(r.status_code == 201 for r in created)
    tab.open("jobs")
    assert tab.page.locator("meta[http-equiv=refresh]").count() == 1
    assert tab.page.locator("main tbody tr").count() >= 2
    assert tab.page.locator("main progress").count() >= 1
    assert tab.ink("jobs") >= 0.02
    tab.open("jobs?limit=1")
    assert tab.page.locator("main tbody tr").count() == 1
    tab.page.click("a[rel=next]")
    tab.page.wait_for_load_state("load")
    assert tab.page.locator("main tbody tr").count() == 1
    assert "after=" in tab.page.url
    job_id = created[0].json()["jobID"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}jobs/{job_id}").json()["status"] != "successful":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    tab.open(f"jobs/{job_id}")
    assert tab.page.locator("meta[http-equiv=refresh]").count() == 0
    assert tab.page.locator("#job-status").inner_text() == "successful"
    tab.check_clean()


def test_markup_in_messages_inputs_and_paths_is_text(tab: Tab, service: tuple[str, Any]):
    app = service[1]
    # a job message
    store = app.state.cas.store
    record = store.create("sleep_a_while", {"duration": 0})
    store.fail(record.job_id, "failed: " + XSS)
    tab.open(f"jobs/{record.job_id}")
    assert tab.page.locator("#job-message").inner_text() == "failed: " + XSS
    assert tab.page.locator("main img, main script").count() == 0
    # paths: a job id, and a path that is no resource
    tab.open("jobs/<img src=x onerror=window.__xss=1>")
    assert "there is no job" in tab.page.locator("main").inner_text()
    assert tab.page.locator("main img, main script").count() == 0
    assert tab.ink("problem") >= 0.02
    response = tab.open("jobs/" + XSS)
    assert response.status == 404
    assert "there is no resource" in tab.page.locator("main").inner_text()
    assert tab.page.locator("main img, main script").count() == 0
    # an input: feature ids label the results table and the map
    collection = _features()
    collection["features"] = collection["features"][:2]
    collection["features"][0]["id"] = XSS
    _submit(tab, process="batch-extract", datasets=DATASETS[:1], paste=json.dumps(collection))
    _wait_for_results(tab)
    labels = tab.page.locator("#attributes tbody td:first-child").all_inner_texts()
    assert XSS in labels
    assert tab.page.locator("main img, main script").count() == 0
    tab.check_clean()


def test_dataset_descriptions_with_markup_are_text(tab: Tab, tmp_path: Path):
    provider = tmp_path / "evil.yaml"
    provider.write_text(
        "slug: evil\nname: Evil\nprotocol: stac_static\nendpoint: catalog.json\n"
        "license: CC0-1.0\ndatasets:\n  - name: t2m\n"
        f"    description: {json.dumps(XSS)}\n    resolution_m: 250\n"
        f"    variables:\n      - name: t2m\n        units: {json.dumps(XSS)}\n",
        "utf-8",
    )
    cas.configure(provider_files=[provider])
    tab.open("run")
    tab.page.fill("#dataset-search", "evil")
    visible = tab.page.locator("label.dataset:not(.hidden)")
    assert visible.count() == 1
    assert XSS in visible.inner_text()
    assert tab.page.locator("main img, main script").count() == 0
    tab.check_clean()


# -- with authentication ------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    jobs_db = str(tmp_path_factory.mktemp("web-auth") / "jobs.sqlite")
    settings = cas.Settings(jobs_db=jobs_db, auth_enabled=True, api_keys=[KEY])
    with threaded_service(create_app(settings, testing=True)) as url:
        yield url


@pytest.fixture
def secured_tab(browser: Any, secured: str) -> Iterator[Tab]:
    tab = _tab(browser, secured)
    yield tab
    tab.page.context.close()


def _log_in(tab: Tab, key: str) -> None:
    tab.page.fill("#api_key", key)
    tab.page.click("form.stacked button[type=submit]")
    tab.page.wait_for_load_state("load")


def test_login_sets_a_strict_httponly_session(secured_tab: Tab):
    tab = secured_tab
    tab.open("jobs")
    assert "/login?next=" in tab.page.url
    assert tab.ink("login") >= 0.02
    _log_in(tab, "wrong-key")
    assert "not valid" in tab.page.locator("#login-error").inner_text()
    assert not [c for c in tab.page.context.cookies() if c["name"] == "cas_session"]
    _log_in(tab, KEY)
    assert tab.page.url.endswith("/jobs")
    assert tab.page.locator("h1").inner_text() == "Jobs"
    (cookie,) = [c for c in tab.page.context.cookies() if c["name"] == "cas_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "cas_session" not in tab.page.evaluate("document.cookie")
    assert KEY not in tab.page.content()
    # the run page posts with the CSRF token: the job is created
    _submit(tab, process="extract", datasets=DATASETS[:1],
            paste=json.dumps(_features()["features"][1]))  # fmt: skip
    _wait_for_results(tab)
    assert tab.page.locator("#attributes tbody tr").count() == 1
    # without the token, or with a wrong one, a cookie-authenticated POST is refused
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        status = tab.page.evaluate(
            """async (headers) => (await fetch("/processes/extract/execution", {
                method: "POST", body: "{}",
                headers: {"Content-Type": "application/json", ...headers}})).status""",
            headers,
        )
        assert status == 403
    # a form on another site posting to the service: the browser sends no session cookie
    attacker = tab.page.context.new_page()
    attacker.set_content(
        f'<form method="post" action="{tab.base}logout"><button>go</button></form>'
    )
    with attacker.expect_navigation():
        attacker.click("button")
    assert [c for c in tab.page.context.cookies() if c["name"] == "cas_session"]
    tab.open("jobs")
    assert tab.page.locator("h1").inner_text() == "Jobs"  # still logged in
    attacker.close()
    # logging out ends the session
    tab.page.click("nav form button")
    tab.page.wait_for_load_state("load")
    assert not [c for c in tab.page.context.cookies() if c["name"] == "cas_session"]
    tab.open("run")
    assert "/login" in tab.page.url
    tab.check_clean()


def test_login_form_refuses_posts_from_elsewhere(secured: str):
    with httpx.Client(base_url=secured) as client:
        form = client.get("login")
        assert form.status_code == 200 and "cas_login" in client.cookies
        forged = client.post("login", data={"api_key": KEY, "csrf_token": "forged"})
        assert forged.status_code == 403 and "cas_session" not in client.cookies
    no_cookie = httpx.post(secured + "login", data={"api_key": KEY, "csrf_token": "x"})
    assert no_cookie.status_code == 403 and "cas_session" not in no_cookie.cookies


def test_api_keys_in_headers_keep_working(secured: str):
    with httpx.Client(base_url=secured, headers={"X-API-Key": KEY}) as client:
        assert client.get("jobs").status_code == 200
        created = client.post(
            "processes/primes_between/execution", json={"inputs": {"max_val": 10}}
        )
        assert created.status_code == 201  # no CSRF token needed without a cookie
    assert httpx.get(secured + "jobs").status_code == 401
    page = httpx.get(secured + "jobs", params={"f": "html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
