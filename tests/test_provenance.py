"""Each result's provenance names what its own geometry's read touched, nothing more.

The sample elevation of region K is two STAC items side by side, split at lon -96.55
(``elevation-K-west``, ``elevation-K-east``); clay is one item (``clay_0-5cm-K``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from affine import Affine

import cas_xr as cas
from cas_xr.engine._provenance import _touching
from cas_xr.engine._store import FILE_NAME
from cas_xr.frontends import extract_together, run_sync
from cas_xr.models import AttributeRequest
from cas_xr.testing import StacCollectionSpec, StacItemSpec, make_cog, make_stac_catalog
from tests.test_remote_reads import stac_provider
from tests.test_service_support import live_service

WEST_ITEM, EAST_ITEM = "elevation-K-west", "elevation-K-east"
BOTH = [EAST_ITEM, WEST_ITEM]  # sorted


def _box(x0: float, x1: float, y0: float = 39.0, y1: float = 39.02) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


WEST = _box(-96.62, -96.60)
EAST = _box(-96.52, -96.50)
SEAM = _box(-96.56, -96.54)  # across the seam
EDGE = _box(-96.57, -96.55)  # west of the seam, its east edge on it: no cell of the east
ON_SEAM = {"type": "Point", "coordinates": [-96.55, 39.05]}  # on both items' edges


def _items(result: cas.AttributeResult) -> list[str]:
    return list(result.provenance["items"])


def _extract(geometry: dict[str, Any], **more: Any) -> cas.AttributeResult:
    request = {"geometry": geometry, "dataset_ids": ["sample:elevation"], **more}
    return cas.extract_sync(request).results[0]


def test_a_later_extract_lists_only_the_items_its_geometry_touched() -> None:
    west = _extract(WEST)
    east = _extract(EAST)  # the cache already knows of the west item
    assert _items(west) == [WEST_ITEM] and _items(east) == [EAST_ITEM]
    again = _extract(WEST)
    assert again.cached and _items(again) == [WEST_ITEM]
    assert {k: v for k, v in again.provenance.items() if k != "computed_elapsed_ms"} == (
        west.provenance
    )
    assert west.provenance["collection"] == "elevation" and west.provenance["license"]
    assert "cas_footprints" not in west.provenance and "footprints" not in west.provenance


def test_each_geometry_of_a_batch_lists_its_own_items() -> None:
    cas.configure(result_cache_ttl_s=0)  # every call computes: the batch, then each alone
    geometries = [WEST, EAST, SEAM, EDGE, ON_SEAM]
    batch = cas.batch_extract_sync(
        {"geometries": geometries, "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}
    )
    elevation = [_items(r.results[0]) for r in batch.responses]
    assert elevation == [[WEST_ITEM], [EAST_ITEM], BOTH, [WEST_ITEM], BOTH]
    assert all(_items(r.results[1]) == ["clay_0-5cm-K"] for r in batch.responses)
    for geometry, response in zip(geometries, batch.responses, strict=True):
        alone = _extract(geometry)
        assert response.results[0].provenance == alone.provenance  # grouping does not matter


def test_results_served_from_the_cache_list_their_own_items(opened: list[Any]) -> None:
    request = {"geometries": [WEST, EAST], "dataset_ids": ["sample:elevation"]}
    batch = cas.batch_extract_sync(request)
    assert [_items(r.results[0]) for r in batch.responses] == [[WEST_ITEM], [EAST_ITEM]]
    east = _extract(EAST)
    assert east.cached and _items(east) == [EAST_ITEM]
    reordered = cas.batch_extract_sync(
        {"geometries": [EAST, SEAM, WEST], "dataset_ids": ["sample:elevation"]}
    )
    results = [r.results[0] for r in reordered.responses]
    assert [r.cached for r in results] == [True, False, True]
    assert [_items(r) for r in results] == [[EAST_ITEM], BOTH, [WEST_ITEM]]


def test_a_persistent_cache_keeps_each_results_provenance(tmp_path: Path, opened: list[Any]):
    cas.configure(result_cache_dir=str(tmp_path), result_cache_ttl_s=0)  # disk only
    cas.batch_extract_sync({"geometries": [WEST, EAST], "dataset_ids": ["sample:elevation"]})
    east = _extract(EAST)
    assert east.cached and _items(east) == [EAST_ITEM] and len(opened) == 1
    with sqlite3.connect(tmp_path / FILE_NAME) as db:  # the records (JSON), not the values
        gone = db.execute("DELETE FROM results WHERE hex(substr(value, 1, 1)) = '7B'").rowcount
    assert gone == 1  # one record: the unit's two items
    again = _extract(EAST)  # its provenance lost, the value is computed again
    assert not again.cached and _items(again) == [EAST_ITEM] and len(opened) == 2
    assert again.value == pytest.approx(east.value, rel=1e-12)  # another window: rounding


def test_a_table_and_a_cube_list_only_the_items_of_their_geometries() -> None:
    frame = gpd.GeoDataFrame(
        geometry=[shapely.geometry.shape(g) for g in (WEST, EAST)], crs="EPSG:4326"
    )
    both = cas.extract_table(frame, ["sample:elevation"])
    assert both.attrs["cas_xr"]["datasets"]["sample:elevation"]["provenance"]["items"] == BOTH
    west = cas.extract_table(frame.iloc[:1], ["sample:elevation"])  # from the cache
    assert west.attrs["cas_xr"]["summary"]["cached"] == 1
    provenance = west.attrs["cas_xr"]["datasets"]["sample:elevation"]["provenance"]
    assert provenance["items"] == [WEST_ITEM] and provenance["protocol"] == "stac_static"
    cube = cas.extract_cube(frame.iloc[1:], ["sample:elevation"])
    assert json.loads(cube["sample:elevation"].attrs["cas_provenance"])["items"] == [EAST_ITEM]


def test_geometries_in_a_projected_crs_are_matched_in_it() -> None:
    utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32614", always_xy=True)
    geometries = [
        shapely.geometry.mapping(shapely.transform(shapely.geometry.shape(g), utm.transform,
                                                   interleaved=False))
        for g in (WEST, EAST, SEAM)
    ]  # fmt: skip
    batch = cas.batch_extract_sync(
        {"geometries": geometries, "dataset_ids": ["sample:elevation"],
         "geometry_crs": "EPSG:32614"}
    )  # fmt: skip
    assert [_items(r.results[0]) for r in batch.responses] == [[WEST_ITEM], [EAST_ITEM], BOTH]


def test_jobs_gathered_into_one_call_list_each_their_own_items() -> None:
    """The service gathers many users' extract jobs into one call: nothing leaks across."""
    requests = [
        AttributeRequest.model_validate({"geometry": g, "dataset_ids": ["sample:elevation"]})
        for g in (WEST, EAST, WEST, SEAM)
    ]
    together = run_sync(extract_together(requests), awaitable="extract_together")
    assert [_items(r.results[0]) for r in together] == [[WEST_ITEM], [EAST_ITEM], [WEST_ITEM], BOTH]


def test_the_service_answers_each_user_with_the_items_of_their_geometry(tmp_path: Path) -> None:
    from cas_xr.client import AsyncClient

    geometries = [WEST, EAST] * 4
    requests = [{"geometry": g, "dataset_ids": ["sample:elevation"]} for g in geometries]

    async def send(url: str) -> list[Any]:
        async with AsyncClient(api_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.extract(r) for r in requests))

    with live_service(tmp_path) as live:
        responses = asyncio.run(send(live.url))
    expected = [[WEST_ITEM], [EAST_ITEM]] * 4
    assert [_items(r.results[0]) for r in responses] == expected


def test_files_of_a_glob_are_listed_for_the_geometries_over_them(tmp_path: Path) -> None:
    grid = Affine(0.01, 0.0, -96.6, 0.0, -0.01, 39.1)
    data = tmp_path / "tiles"
    data.mkdir()
    for i, name in enumerate(["west", "east"]):  # the seam at lon -96.5
        make_cog(data / f"dem_{name}.tif", np.full((10, 10), 300.0 + 10 * i, dtype="float32"),
                 transform=grid @ Affine.translation(10 * i, 0), crs="EPSG:4326",
                 nodata=-9999.0)  # fmt: skip
    provider = tmp_path / "tiles.yaml"
    provider.write_text(
        "slug: tiles\nprotocol: local\nendpoint: tiles\nlicense: CC0-1.0\ndatasets:\n"
        "  - name: dem\n    path: dem_*.tif\n    variables:\n"
        "      - {name: elevation, units: m, nodata_value: -9999}\n",
        encoding="utf-8",
    )
    cas.configure(provider_files=[provider])
    west, east = (str(data / f"dem_{n}.tif") for n in ("west", "east"))
    batch = cas.batch_extract_sync(
        {"geometries": [_box(-96.58, -96.55, 39.02, 39.05), _box(-96.45, -96.42, 39.02, 39.05),
                        _box(-96.52, -96.48, 39.02, 39.05)],
         "dataset_ids": ["tiles:dem"]}
    )  # fmt: skip
    files = [r.results[0].provenance["files"] for r in batch.responses]
    assert files == [[west], [east], sorted([west, east])]
    assert [r.results[0].value for r in batch.responses][:2] == [300.0, 310.0]
    # raster mode names the files under its box, not every file of the glob
    west_only = cas.extract_raster_sync(
        "tiles:dem", (-96.58, 39.02, -96.55, 39.05), output_dir=tmp_path / "out"
    )
    assert west_only.provenance["files"] == [west]
    both = cas.extract_raster_sync(
        "tiles:dem", (-96.52, 39.02, -96.48, 39.05), output_dir=tmp_path / "both"
    )
    assert both.provenance["files"] == sorted([west, east])


def _utm_items(folder: Path) -> tuple[Path, pyproj.Transformer]:
    """Two items side by side in UTM 33N (east of its meridian), the seam at x = 610 km."""
    grid = Affine(100.0, 0.0, 600_000.0, 0.0, -100.0, 5_560_000.0)
    specs = []
    for i, name in enumerate(["west", "east"]):
        cog = make_cog(folder / f"{name}.tif", np.full((100, 100), 10.0 * (i + 1), "float32"),
                       transform=grid @ Affine.translation(100 * i, 0), crs="EPSG:32633",
                       nodata=-9999.0)  # fmt: skip
        specs.append(StacItemSpec(name, cog, dt.datetime(2020, 1, 1)))
    make_stac_catalog(folder, [StacCollectionSpec("dem", "two UTM tiles", specs)])
    to_lonlat = pyproj.Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    return folder / "catalog.json", to_lonlat


def test_an_item_in_another_crs_is_matched_by_its_grid_not_its_lonlat_bbox(tmp_path: Path):
    catalog, to_lonlat = _utm_items(tmp_path)
    cas.configure(provider_files=[stac_provider(tmp_path, "utm", catalog)])
    import pystac

    east_bbox = pystac.Item.from_file(str(tmp_path / "dem" / "east" / "east.json")).bbox
    # 60 m west of the seam, where it lies furthest east: inside the east item's lon/lat
    # bbox (its footprint turned in lon/lat), but not on any of its cells
    ys = np.linspace(5_550_000.0, 5_560_000.0, 101)
    y = ys[np.argmax(to_lonlat.transform(np.full_like(ys, 610_000.0), ys)[0])]
    y = min(max(y, 5_550_200.0), 5_559_800.0)
    square = shapely.box(609_890.0, y - 50.0, 609_940.0, y + 50.0)
    lonlat = shapely.transform(shapely.segmentize(square, 5.0), to_lonlat.transform,
                               interleaved=False)  # fmt: skip
    _, y0, x1, y1 = lonlat.bounds
    assert east_bbox[0] < x1 and y0 < east_bbox[3] and east_bbox[1] < y1  # the trap is set
    result = _extract(shapely.geometry.mapping(lonlat), dataset_ids=["utm:dem"])
    assert result.value == pytest.approx(10.0) and _items(result) == ["west"]


def test_footprints_in_another_crs_are_drawn_in_the_geometries_crs() -> None:
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)
    x0, y0 = to_utm.transform(15.0, 50.0)
    footprints: list[Any] = [["EPSG:32633", x0, y0, x0 + 10_000.0, y0 + 10_000.0], None]
    inside = shapely.box(15.05, 50.03, 15.06, 50.04)
    outside = shapely.box(14.9, 50.03, 14.95, 50.04)
    point = shapely.Point(15.05, 50.05)
    geometries = np.array([inside, outside, point], dtype=object)
    i, j = _touching(geometries, footprints, pyproj.CRS("EPSG:4326").to_wkt())
    pairs = sorted(zip(i.tolist(), j.tolist(), strict=True))
    # an unknown footprint (None) lies under every geometry
    assert pairs == [(0, 0), (0, 1), (1, 1), (2, 0), (2, 1)]


def test_a_derived_dataset_names_the_items_its_cells_neighbours_lie_on() -> None:
    """A slope at a cell needs the cells around it: next to the seam, both items."""
    near = _box(-96.56, -96.5505)  # its last cells' neighbours lie east of the seam
    batch = cas.batch_extract_sync(
        {"geometries": [WEST, near], "dataset_ids": ["sample:elevation", "sample:slope_m_per_km"]}
    )
    elevation, slope = zip(*([_items(x) for x in r.results] for r in batch.responses), strict=True)
    assert elevation == ([WEST_ITEM], [WEST_ITEM])
    assert slope == ([WEST_ITEM], BOTH)


def test_a_count_of_tiles_counts_those_the_geometry_touches() -> None:
    """A WCS read lists how many tiles it cut its window into; a result, those it touched."""
    from cas_xr.engine._entries import Block
    from cas_xr.engine._provenance import Record, provenance_of

    tiles = {f"{x} 0": ["EPSG:4326", float(x), 0.0, float(x + 1), 1.0] for x in range(4)}
    record = Record({"protocol": "wcs", "tiles": 4}, {"tiles": tiles})
    series = gpd.GeoSeries([shapely.box(0.2, 0.2, 0.8, 0.8), shapely.box(1.5, 0.2, 2.5, 0.8),
                            shapely.box(0.5, 0.2, 1.0, 0.8)], crs="EPSG:4326")  # fmt: skip
    block = Block(
        positions=np.arange(3), stats=np.zeros((3, 1, 1)), coverage=np.ones((3, 1)),
        pixels=np.ones((3, 1), dtype=np.int64), dist=np.zeros((3, 1, 0)), times=None,
        classes=np.empty(0), source=b"k",
    )  # fmt: skip
    (provenance,) = provenance_of(series, {"d": [block]}, {"d": {b"k": record}}).values()
    assert [provenance.of(g)["tiles"] for g in range(3)] == [1, 2, 1]  # an edge is no touch
    assert provenance.whole() == {"protocol": "wcs", "tiles": 3}


def test_the_latest_step_names_the_items_of_that_step() -> None:
    square = _box(-96.6, -96.5, 39.0, 39.1)
    latest = _extract(square, dataset_ids=["sample:precipitation"])
    assert latest.timestamp is not None and latest.timestamp.month == 12
    assert _items(latest) == ["precipitation-K-2022-12"]
    spring = _extract(square, dataset_ids=["sample:precipitation"],
                      time_range=("2022-03-01T00:00:00Z", "2022-05-31T00:00:00Z"))  # fmt: skip
    assert _items(spring) == [f"precipitation-K-2022-0{m}" for m in (3, 4, 5)]


def test_the_services_table_metadata_lists_only_the_items_of_its_features(tmp_path: Path):
    import base64
    import io

    import httpx

    from cas_xr.service import create_app
    from tests.test_service_support import poll, threaded_service

    def table(client: httpx.Client, geometries: list[dict[str, Any]]) -> tuple[list[str], int]:
        frame = gpd.GeoDataFrame(
            geometry=[shapely.geometry.shape(g) for g in geometries], crs="EPSG:4326"
        )
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        features = {"value": base64.b64encode(buffer.getvalue()).decode(),
                    "mediaType": "application/vnd.apache.parquet"}  # fmt: skip
        body = {"inputs": {"features": features, "dataset_ids": ["sample:elevation"]}}
        created = client.post("processes/extract-table/execution", json=body)
        assert created.status_code == 201, created.text
        status = poll(client, created.json()["jobID"], {"successful", "failed"}, timeout=120)
        assert status["status"] == "successful", status
        value = client.get(f"jobs/{status['jobID']}/results").json()["table"]["value"]
        served = gpd.read_parquet(io.BytesIO(base64.b64decode(value)))
        metadata = served.attrs["cas_xr"]
        items = metadata["datasets"]["sample:elevation"]["provenance"]["items"]
        return items, metadata["summary"]["cached"]

    app = create_app(cas.Settings(jobs_db=str(tmp_path / "jobs.sqlite")))
    with threaded_service(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert table(client, [WEST, EAST]) == (BOTH, 0)
        assert table(client, [WEST]) == ([WEST_ITEM], 1)  # from the cache the first filled


def test_a_cube_read_back_keeps_its_provenance_text() -> None:
    """A cube cas_xr wrote (``cas_provenance`` as JSON text) is a dataset like any other."""
    source = cas.open_dataset("sample:elevation", bbox=(-96.63, 38.99, -96.59, 39.03)).load()
    written = source.assign_attrs(cas_provenance=json.dumps(source.attrs["cas_provenance"]))
    del written.attrs["cas_footprints"]
    frame = gpd.GeoDataFrame(geometry=[shapely.geometry.shape(WEST)], crs="EPSG:4326")
    table = cas.extract_table(frame, {"dem": written, "text": written.assign_attrs(
        cas_provenance="a note")})  # fmt: skip
    datasets = table.attrs["cas_xr"]["datasets"]
    assert datasets["dem"]["provenance"]["items"] == [WEST_ITEM]
    assert datasets["text"]["provenance"]["source"] == "a note"
