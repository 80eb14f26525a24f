"""A temporal STAC layer over HTTP: each step's touched tiles, fetched together, within the cap.

The catalog has four monthly steps of two COGs side by side (the last step's items have
only a start and end time); the server counts what it sends, the tiles a read needs come
from shapely and the files' tile offsets, and the statistics are checked against
exactextract on each step's whole raster, the cubes against odc-stac's reads.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from exactextract import exact_extract

import cas_xr as cas
from cas_xr.errors import SourceError
from cas_xr.models import TimeRange
from cas_xr.sources import _stac_common
from cas_xr.sources._stac_static import StaticStacSource
from cas_xr.testing import (
    StacCollectionSpec,
    StacItemSpec,
    make_cog,
    make_stac_catalog,
    serve_with_latency,
)
from tests.test_remote_reads import GRID, TILE, N, _sparse, _tiles_of, _values
from tests.test_stac_static_reads import _peak

ROUND_TRIP = 0.02
HALF = N // 2
STEPS = 4
#: where each item's first cell lies
ORIGINS = {"w": GRID, "e": GRID @ Affine.translation(HALF, 0)}


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog's folder: items ``w<n>``, ``e<n>`` (files ``<id>.tif``), ``whole/<n>.tif``.

    Step 1 has a hole of nodata; ``whole`` (not in the catalog) holds each step's raster.
    """
    folder = tmp_path_factory.mktemp("series")
    (folder / "whole").mkdir()
    specs = []
    for n in range(STEPS):
        values = _values() + np.float32(10 * n)
        if n == 1:
            values[300:420, 100:700] = -9999.0
        make_cog(folder / "whole" / f"{n}.tif", values, transform=GRID, crs="EPSG:4326",
                 blocksize=TILE, nodata=-9999.0)  # fmt: skip
        start = dt.datetime(2021, n + 1, 1)
        for side, cells in (("w", values[:, :HALF]), ("e", values[:, HALF:])):
            cog = make_cog(folder / f"{side}{n}.tif", cells, transform=ORIGINS[side],
                           crs="EPSG:4326", blocksize=TILE, nodata=-9999.0)  # fmt: skip
            if n < STEPS - 1:
                specs.append(StacItemSpec(f"{side}{n}", cog, start))
            else:  # an interval: its step is its start
                end = dt.datetime(2021, n + 1, 28)
                specs.append(StacItemSpec(f"{side}{n}", cog, None, start, end))
    make_stac_catalog(folder, [StacCollectionSpec("rain", "monthly steps", specs)])
    return folder


def _provider(folder: Path, slug: str, endpoint: str | Path) -> Path:
    path = folder / f"{slug}.yaml"
    path.write_text(
        f"""slug: {slug}
protocol: stac_static
endpoint: {endpoint}
license: CC0-1.0
datasets:
  - name: rain
    collection: rain
    temporal: {{start: 2021-01-01T00:00:00Z, end: 2021-04-30T23:59:59Z, temporal_type: monthly}}
    variables:
      - {{name: rain, units: mm, nodata_value: -9999}}
""",
        encoding="utf-8",
    )
    return path


def _touched(geometries: gpd.GeoSeries, side: str) -> set[tuple[int, int]]:
    """The internal tiles of item ``side`` that some geometry intersects."""
    out = set()
    for i, j in itertools.product(range(N // TILE), range(HALF // TILE)):
        x0, y0 = ORIGINS[side] * (j * TILE, (i + 1) * TILE)
        x1, y1 = ORIGINS[side] * ((j + 1) * TILE, i * TILE)
        if shapely.intersects(shapely.box(x0, y0, x1, y1), geometries.to_numpy()).any():
            out.add((i, j))
    return out


def _requested(server, folder: Path) -> dict[str, set[tuple[int, int]]]:  # type: ignore[no-untyped-def]
    """The tiles of each item's file the server sent bytes of."""
    return {
        f"{side}{n}": _tiles_of(server, folder / f"{side}{n}.tif")
        for side, n in itertools.product("we", range(STEPS))
    }


def _files_read(server) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.path.rsplit("/", 1)[-1] for r in server.records if r.path.endswith(".tif")}


def test_each_step_reads_its_touched_tiles_and_equals_odc_stac_and_exactextract(
    series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    geometries = _sparse(5, seed=11)
    args: dict[str, Any] = {
        "aggregation": ["mean", "max"], "time_range": ("2021-01-01", "2021-04-30")
    }  # fmt: skip
    with serve_with_latency(series, round_trip=ROUND_TRIP) as server:
        cas.configure(
            provider_files=[
                _provider(tmp_path, "http", server.url + "catalog.json"),
                _provider(tmp_path, "disk", series / "catalog.json"),
            ]
        )
        table = cas.extract_table(geometries, ["http:rain"], **args)
        requested = _requested(server, series)
    for name, tiles in requested.items():
        assert tiles == _touched(geometries, name[0]), name
    assert sum(map(len, requested.values())) < STEPS * (N // TILE) ** 2 / 2  # sparse
    assert (table["http:rain_quality"] == "good").all()
    monkeypatch.setattr(_stac_common, "tiled_steps", lambda *args, **kwargs: None)
    odc = cas.extract_table(geometries, ["disk:rain"], **args)  # odc-stac's reads
    frame = gpd.GeoDataFrame(geometry=geometries)
    for stat in ("mean", "max"):
        got = table[f"http:rain_{stat}"].to_numpy().reshape(len(geometries), STEPS)
        np.testing.assert_allclose(
            got.ravel(), odc[f"disk:rain_{stat}"].to_numpy(), rtol=0, atol=1e-9
        )
        for n in range(STEPS):
            expected = exact_extract(
                str(series / "whole" / f"{n}.tif"), frame, [stat], output="pandas"
            )[stat].to_numpy()
            np.testing.assert_allclose(got[:, n], expected, rtol=1e-7)


def test_the_steps_equal_odc_stacs_reads_and_keep_their_provenance(
    series: Path, monkeypatch: pytest.MonkeyPatch
):
    box = (10.13, 49.31, 10.87, 49.92)
    spring = TimeRange(start="2021-02-01T00:00:00Z", end="2021-03-15T00:00:00Z")
    with serve_with_latency(series, round_trip=ROUND_TRIP) as server:
        remote = StaticStacSource(server.url + "catalog.json", "rain", provider="p", temporal=True)
        tiled = remote.open(bbox=box)
        assert tiled.data.name.startswith("cas-stac-steps-")  # not odc-stac's
        assert tiled.data.chunksize == (1, TILE, TILE)
        values = tiled.values
        two = remote.open(bbox=box, time_range=spring)
        two_values = two.values
    monkeypatch.setattr(_stac_common, "tiled_steps", lambda *args, **kwargs: None)
    local = StaticStacSource(str(series / "catalog.json"), "rain", provider="p", temporal=True)
    odc = local.open(bbox=box)
    assert not odc.data.name.startswith("cas-stac-steps-")
    assert tiled.dims == odc.dims == ("time", "y", "x")
    np.testing.assert_array_equal(tiled["time"].values, odc["time"].values)
    np.testing.assert_allclose(tiled["x"].values, odc["x"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tiled["y"].values, odc["y"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(values, odc.values, rtol=0, atol=1e-9)
    assert (values == -9999.0).any()  # the hole of step 1, as nodata in both
    assert tiled.attrs["nodata"] == odc.attrs["nodata"] == -9999.0
    assert tiled.attrs["cas_footprints"] == odc.attrs["cas_footprints"]  # items and times
    assert {**tiled.attrs["cas_provenance"], "endpoint": None} == {
        **odc.attrs["cas_provenance"],
        "endpoint": None,
    }
    months = two["time"].values.astype("datetime64[M]").astype(str).tolist()
    assert months == ["2021-02", "2021-03"]
    np.testing.assert_array_equal(two_values, values[1:3])
    assert sorted(two.attrs["cas_provenance"]["items"]) == ["e1", "e2", "w1", "w2"]


def test_only_the_steps_a_request_uses_are_read(series: Path, tmp_path: Path):
    x, y = ORIGINS["w"] * (2 * TILE + 20, 5 * TILE + 20)  # inside tile (5, 2) of the west items
    inside = shapely.box(x, y - 0.05, x + 0.05, y)
    with serve_with_latency(series, round_trip=ROUND_TRIP) as server:
        cas.configure(provider_files=[_provider(tmp_path, "t", server.url + "catalog.json")])
        request = {"geometry": shapely.geometry.mapping(inside), "dataset_ids": ["t:rain"]}
        (latest,) = cas.extract_sync(request).results  # the latest step alone (CAS's rule)
        requested = _requested(server, series)
        assert {n for n, tiles in requested.items() if tiles} == {"w3"}
        assert requested["w3"] == {(5, 2)}
        assert _files_read(server) == {"w3.tif"}  # the east items lie outside
        server.reset()
        spring = cas.extract_table(
            gpd.GeoSeries([inside], crs="EPSG:4326"), ["t:rain"],
            time_range=("2021-02-01", "2021-03-15"),
        )  # fmt: skip
        requested = _requested(server, series)
        assert {n for n, tiles in requested.items() if tiles} == {"w1", "w2"}
        assert _files_read(server) == {"w1.tif", "w2.tif"}
    frame = gpd.GeoDataFrame(geometry=[inside], crs="EPSG:4326")
    expected = [
        exact_extract(str(series / "whole" / f"{n}.tif"), frame, ["mean"], output="pandas")["mean"][
            0
        ]
        for n in range(STEPS)
    ]
    assert latest.timestamp is not None and latest.timestamp.month == STEPS
    assert latest.provenance["items"] == ["w3"]
    np.testing.assert_allclose(latest.value, expected[3], rtol=1e-7)
    np.testing.assert_allclose(spring["t:rain_mean"], expected[1:3], rtol=1e-7)


def _far_apart() -> gpd.GeoSeries:
    """Boxes in tiles (1, 1) and (6, 2) of the west items: too far apart to merge."""
    boxes = []
    for i, j in ((1, 1), (6, 2)):
        x, y = GRID * (j * TILE + 30, i * TILE + 30)
        boxes.append(shapely.box(x, y - 0.05, x + 0.05, y))
    return gpd.GeoSeries(boxes, crs="EPSG:4326")


def test_the_tiles_of_every_step_are_in_flight_at_once(series: Path, tmp_path: Path):
    # only the west items lie under the boxes: w3's header is read to open the layer, the
    # others' (w0, w1, w2) with their tiles, all at once; then their steps' tiles, at once
    with serve_with_latency(series, round_trip=0.3) as server:
        cas.configure(provider_files=[_provider(tmp_path, "r", server.url + "catalog.json")])
        assert cas.get_settings().max_concurrent_requests_per_host == 8
        cas.extract_table(_far_apart(), ["r:rain"], time_range=("2021-01-01", "2021-04-30"))
    requested = _requested(server, series)
    assert all(requested[f"w{n}"] == {(1, 1), (6, 2)} for n in range(STEPS))
    tifs = [r for r in server.records if r.path.endswith(".tif")]
    headers = [r for r in tifs if r.ranges[0][0] == 0]  # from the file's first byte
    ranges = [r for r in tifs if r.ranges[0][0] > 0]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in headers) == [f"w{n}.tif" for n in range(4)]
    assert len(ranges) == 2 * STEPS
    placed = [r for r in headers if not r.path.endswith("w3.tif")]
    assert _peak(placed) == STEPS - 1  # the headers of the placed items, at once
    tiles = [r for r in ranges if not r.path.endswith("w3.tif")]
    assert _peak(tiles) == len(tiles) == 2 * (STEPS - 1)  # their steps' tiles, at once


def test_requests_in_flight_stay_within_the_cap(series: Path, tmp_path: Path):
    with serve_with_latency(series, round_trip=0.05) as server:
        cas.configure(
            provider_files=[_provider(tmp_path, "c", server.url + "catalog.json")],
            max_concurrent_requests_per_host=3,
        )
        cas.extract_table(_far_apart(), ["c:rain"], time_range=("2021-01-01", "2021-04-30"))
        assert 2 <= server.peak_in_flight <= 3


def _edit(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    edit(document["properties"])
    path.write_text(json.dumps(document))


def test_an_item_placed_from_its_metadata_is_checked_against_its_header(
    series: Path, tmp_path: Path
):
    folder = shutil.copytree(series, tmp_path / "copy")
    _edit(folder / "rain/w1/w1.json", lambda props: props.pop("proj:transform"))  # read at once
    shifted = lambda props: props.update(  # noqa: E731
        {"proj:transform": [0.001, 0.0, 10.001, 0.0, -0.001, 50.0]}
    )  # one cell east: on the lattice, but not where the file lies
    _edit(folder / "rain/w2/w2.json", shifted)
    box = (10.13, 49.31, 10.87, 49.92)
    edited = StaticStacSource(str(folder / "catalog.json"), "rain", provider="p", temporal=True)
    cube = edited.open(bbox=box)
    assert cube.data.name.startswith("cas-stac-steps-")
    first = StaticStacSource(str(series / "catalog.json"), "rain", provider="p", temporal=True)
    expected = first.open(bbox=box).values
    for n in (0, 1, 3):
        np.testing.assert_array_equal(cube.isel(time=n).values, expected[n])
    with pytest.raises(SourceError, match="the COG of item 'w2' is not .* on the grid"):
        cube.isel(time=2).values  # noqa: B018
