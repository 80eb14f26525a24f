"""Provider health against local servers: each of the five states, and the command line.

The sample data's static STAC catalog is served over HTTP (range-capable), behind a
latency server (slow), by a server that answers 401 or 403 to everything (auth_gated) and
at the address of a server that was stopped (down). Every server here is in-process, so
none is skipped: a server that cannot start fails its test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import cas_xr as cas
from cas_xr import cli
from cas_xr.catalog import load_provider_file
from cas_xr.errors import ProviderDefinitionError, SourceError, UnknownProviderError
from cas_xr.frontends._health import http_status
from cas_xr.sample import sample_catchments_path
from cas_xr.testing import serve_folder, serve_status, serve_with_latency

SAMPLE_DATA = Path(sample_catchments_path()).parent
BOX = [[[-96.55, 38.95], [-96.45, 38.95], [-96.45, 39.05], [-96.55, 39.05], [-96.55, 38.95]]]
#: the sample elevation's mean over BOX, from cas.extract (the same cells, the same kernel)
BOX_MEAN = 383.69003093872027
#: half inside the Kansas data (lon -96.70..-96.30), half west of it
EDGE = [[[-96.75, 38.95], [-96.65, 38.95], [-96.65, 39.05], [-96.75, 39.05], [-96.75, 38.95]]]
SLOW_MS = 2000.0
# a check waits >= 4 round trips in turn (the catalog with its collection, the items at
# once, the COG headers, the tiles; nothing kept from an earlier check: no metadata
# cache): >= 3.2 s
ROUND_TRIP_S = 0.8


def _provider(slug: str, endpoint: str, *, health: dict[str, Any] | None) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "slug": slug,
        "protocol": "stac_static",
        "endpoint": endpoint,
        "datasets": [
            {
                "name": "elevation",
                "variables": [{"name": "elevation", "units": "m", "nodata_value": -9999.0}],
            }
        ],
    }
    if health is not None:
        definition["health"] = health
    return definition


def _health(expected: list[float], box: Any = BOX) -> dict[str, Any]:
    return {"geometry": {"type": "Polygon", "coordinates": box}, "expected_range": expected}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """Base URLs: the sample data served fast and slow, 401, 403, and a stopped server."""
    with serve_folder(SAMPLE_DATA) as stopped:
        pass  # its port is closed now: nothing answers there
    with (
        serve_folder(SAMPLE_DATA) as fast,
        serve_with_latency(SAMPLE_DATA, round_trip=ROUND_TRIP_S) as slow,
        serve_status(401) as unauthorized,
        serve_status(403) as forbidden,
    ):
        yield {
            "fast": fast,
            "slow": slow.url,
            "unauthorized": unauthorized,
            "forbidden": forbidden,
            "stopped": stopped,
        }


@pytest.fixture
def providers(servers: dict[str, str], tmp_path: Path) -> list[str]:
    """One provider file per state; configured, and their slugs in a fixed order."""
    catalog = "catalog.json"
    definitions = [
        _provider("h_healthy", servers["fast"] + catalog, health=_health([200, 600])),
        _provider("h_slow", servers["slow"] + catalog, health=_health([200, 600])),
        _provider("h_out_of_range", servers["fast"] + catalog, health=_health([1000, 2000])),
        _provider("h_partial", servers["fast"] + catalog, health=_health([200, 600], EDGE)),
        _provider("h_down", servers["stopped"] + catalog, health=_health([200, 600])),
        _provider("h_401", servers["unauthorized"] + catalog, health=_health([200, 600])),
        _provider("h_403", servers["forbidden"] + catalog, health=_health([200, 600])),
        _provider("h_untested", servers["fast"] + catalog, health=None),
    ]
    files = []
    for definition in definitions:
        path = tmp_path / f"{definition['slug']}.yaml"
        path.write_text(yaml.safe_dump(definition), encoding="utf-8")
        files.append(path)
    cas.configure(
        provider_files=files, health_slow_ms=SLOW_MS, http_retries=0, provider_timeout_s=10,
        metadata_cache_ttl_s=0,
    )  # fmt: skip
    return [d["slug"] for d in definitions]


EXPECTED = {
    "h_healthy": "healthy",
    "h_slow": "degraded",
    "h_out_of_range": "degraded",
    "h_partial": "degraded",
    "h_down": "down",
    "h_401": "auth_gated",
    "h_403": "auth_gated",
    "h_untested": "unknown",
}


def test_each_state_is_reported(providers: list[str]) -> None:
    results = {r.provider: r for r in cas.check_providers_sync(providers)}
    statuses = {slug: r.status.value for slug, r in results.items()}
    assert statuses == EXPECTED, [r.model_dump() for r in results.values()]

    healthy = results["h_healthy"]
    assert healthy.test_value == pytest.approx(BOX_MEAN, rel=1e-12)
    assert healthy.expected_range == (200.0, 600.0)
    assert healthy.error is None
    assert healthy.response_time_ms is not None and healthy.response_time_ms < SLOW_MS
    assert healthy.datasets_available == 1

    slow = results["h_slow"]
    assert slow.test_value == pytest.approx(BOX_MEAN, rel=1e-12)  # right value, late
    assert slow.response_time_ms is not None and slow.response_time_ms > SLOW_MS
    assert slow.error is not None and "health_slow_ms" in slow.error

    wrong = results["h_out_of_range"]
    assert wrong.test_value == pytest.approx(BOX_MEAN, rel=1e-12)
    assert wrong.error is not None and "outside the expected range [1000, 2000]" in wrong.error

    partial = results["h_partial"]
    assert partial.test_value is not None and 200 < partial.test_value < 600
    assert "of the test geometry" in (partial.error or "")
    assert results["h_down"].test_value is None
    assert "connect" in (results["h_down"].error or "").lower()
    for slug in ("h_401", "h_403"):
        assert slug[2:] in (results[slug].error or "")
        assert results[slug].test_value is None

    untested = results["h_untested"]
    assert untested.response_time_ms is None and untested.expected_range is None
    assert "health" in (untested.error or "")


def test_results_come_in_the_order_asked_and_last_checked_is_now(providers: list[str]) -> None:
    before = cas.check_providers_sync(["h_untested", "h_healthy"])
    assert [r.provider for r in before] == ["h_untested", "h_healthy"]
    assert all(r.last_checked.tzinfo is not None for r in before)


def test_the_async_call_inside_an_event_loop(providers: list[str]) -> None:
    async def inside() -> list[cas.HealthCheckResult]:
        with pytest.raises(RuntimeError, match="await cas_xr.check_providers"):
            cas.check_providers_sync("h_healthy")
        return await cas.check_providers("h_healthy")

    (result,) = asyncio.run(inside())
    assert result.status is cas.ProviderStatus.HEALTHY


def test_unknown_provider_is_refused_before_any_check(providers: list[str]) -> None:
    with pytest.raises(UnknownProviderError, match="nope"):
        cas.check_providers_sync(["h_healthy", "nope"])


def test_cli_table_and_exit_statuses(
    providers: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["health", *(a for slug in providers for a in ("--provider", slug))]
    assert cli.main(argv) == 3  # some providers are not healthy
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["provider", "status", "ms", "value", "expected", "datasets"]
    rows = {line.split()[0]: line.split()[1] for line in lines[2:]}
    assert rows == EXPECTED

    assert cli.main(["health", "--provider", "h_healthy", "--provider", "h_untested"]) == 0
    assert cli.main(["health", "--provider", "h_down", "--provider", "h_403"]) == 4  # none answered
    capsys.readouterr()
    assert cli.main(["health", "--provider", "h_out_of_range", "--json"]) == 3
    (document,) = json.loads(capsys.readouterr().out)
    assert document["status"] == "degraded"
    assert document["expected_range"] == [1000.0, 2000.0]
    assert set(document) == {
        "provider", "status", "response_time_ms", "last_checked", "datasets_available",
        "test_value", "expected_range", "error",
    }  # fmt: skip
    assert cli.main(["health", "--provider", "nope"]) == 2
    assert "unknown provider 'nope'" in capsys.readouterr().err


def test_the_sample_provider_is_healthy_offline() -> None:
    (result,) = cas.check_providers_sync("sample")
    assert result.status is cas.ProviderStatus.HEALTHY
    assert result.test_value == pytest.approx(BOX_MEAN, rel=1e-12)


def test_a_health_test_names_a_dataset_of_the_provider(tmp_path: Path) -> None:
    definition = _provider("h_bad", "catalog.json", health=_health([0, 1]))
    definition["health"]["dataset"] = "slope"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    with pytest.raises(ProviderDefinitionError, match="health.dataset 'slope'"):
        load_provider_file(path)
    definition["health"] = _health([5, 1])
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    with pytest.raises(ProviderDefinitionError, match=r"must be \[min, max\]"):
        load_provider_file(path)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SourceError("HTTP 403: Forbidden", kind="http"), 403),
        (RuntimeError("CURL error: HTTP response code: 401"), 401),
        (SourceError("cannot connect: ConnectionError", kind="connection"), None),
        (SourceError("no item intersects", kind="no_data"), None),
    ],
)
def test_http_status_is_found_in_errors_and_their_messages(
    error: Exception, status: int | None
) -> None:
    assert http_status(error) == status


BUILTIN = sorted((Path(cas.__file__).parent / "catalog" / "providers").glob("*.yaml"))


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.stem)
def test_every_built_in_provider_has_a_test_inside_its_extent(path: Path) -> None:
    import shapely

    definition = load_provider_file(path)
    test, dataset = definition.health, definition.health_dataset
    assert test is not None and dataset is not None, "give it a 'health' block"
    assert test.expected_range is not None
    if dataset.bbox is not None:
        box = dataset.bbox
        extent = shapely.box(box.min_lon, box.min_lat, box.max_lon, box.max_lat)
        assert extent.contains(test.geometry.to_shapely())
    if dataset.is_temporal and dataset.temporal.start is not None and test.time_range:
        assert dataset.temporal.start <= test.time_range.start
        assert dataset.temporal.end is None or test.time_range.end <= dataset.temporal.end


@pytest.mark.network
def test_the_real_built_in_providers_answer_their_tests() -> None:
    cas.configure(provider_timeout_s=120, health_slow_ms=120_000)
    results = cas.check_providers_sync()
    assert {r.provider: r.status.value for r in results} == dict.fromkeys(
        cas.list_providers(), "healthy"
    ), [r.model_dump() for r in results]
