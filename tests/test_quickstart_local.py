"""The documented quickstart, verbatim, against local servers standing in for the upstreams.

A provider file redefines ``copernicus_dem`` (a STAC API: rustac over COGs on a
range-capable server) and ``isric_soilgrids`` (a WCS: MapServer), both serving the sample
data, so the CAS documentation's code runs unchanged but for ``import cas_xr as cas``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import cas_xr as cas
from cas_xr.testing import (
    MapServerNotFoundError,
    StacApiServerError,
    read_static_collection,
    serve_folder,
    serve_stac_api,
    serve_wcs,
)

DATA = Path(cas.__file__).parent / "sample" / "data"

# reference/000: the quickstart, with `import cas` -> `import cas_xr as cas`
QUICKSTART = """
import cas_xr as cas

request = cas.BatchAttributeRequest(
    geometries=[
        {"type": "Point", "coordinates": [-96.5, 39.0]},
        {"type": "Polygon", "coordinates": [[
            [-96.6, 39.0], [-96.5, 39.0], [-96.5, 39.1],
            [-96.6, 39.1], [-96.6, 39.0],
        ]]},
    ],
    dataset_ids=["copernicus_dem:elevation", "isric_soilgrids:clay_0-5cm"],
    aggregation="mean",
)

batch = cas.batch_extract_sync(request)

for resp in batch.responses:
    for r in resp.results:
        print(r.dataset_id, r.value, r.units, r.quality, r.coverage_fraction)
    for w in resp.warnings:
        print("warning:", w)
"""

PROVIDERS = """
slug: copernicus_dem
protocol: stac_cog
endpoint: {stac}
license: CC-BY-4.0
datasets:
  - name: elevation
    collection: elevation
    variables: [{{name: elevation, units: m, nodata_value: -9999}}]
"""
SOILGRIDS = """
slug: isric_soilgrids
protocol: wcs
endpoint: {wcs}
license: CC-BY-4.0
options: {{version: "2.0.1"}}
datasets:
  - name: clay_0-5cm
    coverage: clay_0_5cm
    variables: [{{name: clay, units: g/kg, nodata_value: -32768}}]
"""


@contextlib.contextmanager
def _required(what: str) -> Iterator[None]:
    try:
        yield
    except (MapServerNotFoundError, StacApiServerError) as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the {what} cannot start: {err}")
        pytest.skip(str(err))


@pytest.fixture
def provider_files(tmp_path: Path) -> Iterator[list[Path]]:
    clay = DATA / "clay_0-5cm" / "clay_0-5cm-K" / "clay_0-5cm-K.tif"
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve_folder(DATA))
        collection, items = read_static_collection(
            DATA / "catalog.json", "elevation", base_url=base
        )
        with _required("STAC API (rustac)"):
            stac = stack.enter_context(serve_stac_api(collection, items))
        with _required("WCS server (MapServer)"):
            wcs = stack.enter_context(serve_wcs({"clay_0_5cm": clay}))
        (tmp_path / "dem.yaml").write_text(PROVIDERS.format(stac=stac), encoding="utf-8")
        (tmp_path / "soil.yaml").write_text(SOILGRIDS.format(wcs=wcs.url), encoding="utf-8")
        yield [tmp_path / "dem.yaml", tmp_path / "soil.yaml"]


def test_documented_quickstart_runs_verbatim_against_local_servers(provider_files: list[Path]):
    cas.configure(provider_files=provider_files)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(QUICKSTART, namespace)  # the documented code, as written
    printed = out.getvalue()
    assert "copernicus_dem:elevation" in printed and "isric_soilgrids:clay_0-5cm" in printed
    assert "warning:" not in printed
    batch = namespace["batch"]
    assert isinstance(batch, cas.BatchAttributeResponse)
    # the same pixels through the embedded static catalog give the same numbers
    sample = cas.batch_extract_sync(
        {
            "geometries": batch_geometries(),
            "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"],
        }
    )
    for served, embedded in zip(batch.responses, sample.responses, strict=True):
        for a, b in zip(served.results, embedded.results, strict=True):
            assert a.quality is cas.QualityFlag.GOOD and a.coverage_fraction == 1.0
            assert a.value == pytest.approx(b.value, rel=1e-12)
            assert a.units == b.units


def batch_geometries() -> list[dict]:
    square = [[-96.6, 39.0], [-96.5, 39.0], [-96.5, 39.1], [-96.6, 39.1], [-96.6, 39.0]]
    return [
        {"type": "Point", "coordinates": [-96.5, 39.0]},
        {"type": "Polygon", "coordinates": [square]},
    ]


def test_redefined_providers_work_through_the_accessor_and_the_cli(
    provider_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import geopandas as gpd
    import shapely

    from cas_xr.cli import main

    monkeypatch.setenv("CAS_PROVIDER_FILES", json_list(provider_files))
    cas.configure()  # re-read the environment, as the CLI would in a new process
    square = shapely.box(-96.6, 39.0, -96.5, 39.1)
    cube = cas.open_dataset("copernicus_dem:elevation", bbox=square.bounds)
    via_accessor = cube.cas.zonal(gpd.GeoSeries([square], crs="EPSG:4326"), ["mean"]).compute()
    facade = cas.extract_sync({"geometry": square, "dataset_ids": ["copernicus_dem:elevation"]})
    assert float(via_accessor["elevation"][0, 0]) == pytest.approx(
        facade.results[0].value, rel=1e-12
    )
    out = tmp_path / "out.csv"
    geometry = json.dumps(shapely.geometry.mapping(square))
    assert (
        main(["extract", geometry, "-d", "isric_soilgrids:clay_0-5cm", "--output", str(out)]) == 0
    )
    (row,) = csv.DictReader(out.read_text().splitlines())
    assert row["isric_soilgrids:clay_0-5cm_quality"] == "good"


def json_list(paths: list[Path]) -> str:
    return json.dumps([str(p) for p in paths])
