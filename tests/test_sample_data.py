"""Tests of the synthetic sample data shipped in ``cas_xr/sample/data``."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from types import ModuleType

import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
import shapely

from cas_xr.sample import sample_catalog_path, sample_catchments_path, sample_data_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_sample_data.py"
REGIONS = {"K": (-96.70, 38.80, -96.30, 39.30), "U": (-112.10, 41.90, -111.90, 42.10)}
EXAMPLE_BOXES = {"K": (-96.62, 38.98, -96.48, 39.12), "U": (-112.06, 41.94, -111.94, 42.06)}
EXPECTED = {
    # collection: (dtype, nodata, resolution, unit, items per region)
    "elevation": ("float32", -9999.0, 0.001, "m", 2),
    "clay_0-5cm": ("int16", -32768, 0.0025, "g/kg", 1),
    "land_cover": ("uint8", 0, 0.001, None, 1),
    "precipitation": ("float32", -9999.0, 0.01, "mm/month", 12),
}


@pytest.fixture(scope="module")
def catalog() -> pystac.Catalog:
    return pystac.Catalog.from_file(sample_catalog_path())


def _items(catalog: pystac.Catalog, collection: str) -> list[pystac.Item]:
    child = catalog.get_child(collection)
    assert child is not None
    return sorted(child.get_items(), key=lambda item: item.id)


def _region(item: pystac.Item) -> str:
    west, south, east, north = item.bbox or []
    matches = [
        name
        for name, (w, s, e, n) in REGIONS.items()
        if w - 1e-9 <= west < east <= e + 1e-9 and s - 1e-9 <= south < north <= n + 1e-9
    ]
    assert len(matches) == 1, item.id
    return matches[0]


def _read(item: pystac.Item) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(item.assets["data"].get_absolute_href()) as src:
        return src.read(1), src.transform


def _centres(data: np.ndarray, transform: rasterio.Affine) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = data.shape
    lon = transform.c + (np.arange(cols) + 0.5) * transform.a
    lat = transform.f + (np.arange(rows) + 0.5) * transform.e
    return np.meshgrid(lon, lat)


def test_paths() -> None:
    assert sample_catalog_path() == sample_data_dir() / "catalog.json"
    assert sample_catchments_path() == sample_data_dir() / "catchments.geojson"
    assert (sample_data_dir() / "README.md").is_file()


def test_catalog_collections_and_items(catalog: pystac.Catalog) -> None:
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    assert sorted(child.id for child in catalog.get_children()) == sorted(EXPECTED)
    for collection, (dtype, nodata, resolution, unit, per_region) in EXPECTED.items():
        items = _items(catalog, collection)
        regions = [_region(item) for item in items]
        assert regions.count("K") == regions.count("U") == per_region, collection
        for item in items:
            assert item.id.startswith(f"{collection}-{_region(item)}")
            assert item.collection_id == collection
            assert list(item.assets) == ["data"]
            band = item.assets["data"].extra_fields["raster:bands"][0]
            assert band["data_type"] == dtype
            assert band["nodata"] == nodata
            assert band.get("unit") == unit
            transform = item.properties["proj:transform"]
            assert transform[0] == resolution
            assert transform[4] == -resolution
            # cell edges on multiples of the resolution
            for origin in (transform[2], transform[5]):
                assert origin / resolution == pytest.approx(round(origin / resolution), abs=1e-6)
            assert item.properties["proj:code"] == "EPSG:4326"


def test_land_cover_classes(catalog: pystac.Catalog) -> None:
    collection = catalog.get_child("land_cover")
    assert isinstance(collection, pystac.Collection)
    classes = collection.extra_fields["classification:classes"]
    codes = {entry["value"] for entry in classes}
    assert codes == {10, 20, 30, 40, 50, 60, 80, 90}
    assert all({"value", "name", "description"} <= set(entry) for entry in classes)
    for item in _items(catalog, "land_cover"):
        data, _ = _read(item)
        present = set(np.unique(data).tolist())
        assert present <= codes
        assert len(present) >= 5


def test_clay_range(catalog: pystac.Catalog) -> None:
    for item in _items(catalog, "clay_0-5cm"):
        data, _ = _read(item)
        assert data.dtype == np.int16
        assert 50 <= data.min() < data.max() <= 600


def test_elevation_values_jump_across_the_seams(catalog: pystac.Catalog) -> None:
    tiles = {item.id: _read(item) for item in _items(catalog, "elevation")}
    west, west_transform = tiles["elevation-K-west"]
    east, east_transform = tiles["elevation-K-east"]
    assert west_transform.c + west.shape[1] * west_transform.a == pytest.approx(-96.55)
    assert east_transform.c == pytest.approx(-96.55)
    valid = (west[:, -1] != -9999.0) & (east[:, 0] != -9999.0)
    step = east[valid, 0] - west[valid, -1]
    assert 20.0 < step.mean() < 30.0
    assert west[west != -9999.0].min() > 300.0
    assert east.max() < 460.0

    south, _ = tiles["elevation-U-south"]
    north, north_transform = tiles["elevation-U-north"]
    assert north_transform.f - north.shape[0] * 0.001 == pytest.approx(42.00)
    step = north[-1, :] - south[0, :]
    assert 15.0 < step.mean() < 25.0
    assert south[south != -9999.0].min() > 1400.0
    assert north.max() < 2100.0


def test_elevation_holes_avoid_the_example_boxes(catalog: pystac.Catalog) -> None:
    for item in _items(catalog, "elevation"):
        data, transform = _read(item)
        holes = data == -9999.0
        assert holes.any(), item.id
        assert holes.mean() < 0.01
        lon, lat = _centres(data, transform)
        west, south, east, north = EXAMPLE_BOXES[_region(item)]
        inside = (lon > west) & (lon < east) & (lat > south) & (lat < north)
        assert not (holes & inside).any(), item.id


def test_example_box_loads_fully_with_odc_stac(catalog: pystac.Catalog) -> None:
    items = [item for item in _items(catalog, "elevation") if _region(item) == "K"]
    ds = odc.stac.load(
        items,
        bands=["data"],
        bbox=EXAMPLE_BOXES["K"],
        chunks={"x": 256, "y": 256},
        anchor="floating",
    )
    values = ds["data"].isel(time=0).values
    assert values.shape == (140, 140)
    assert (values != -9999.0).all()


def test_precipitation_is_monthly(catalog: pystac.Catalog) -> None:
    items = _items(catalog, "precipitation")
    for region, wettest in (("K", {5, 6}), ("U", {12, 1, 3})):
        regional = [item for item in items if _region(item) == region]
        months = sorted(item.datetime.month for item in regional if item.datetime)
        assert months == list(range(1, 13))
        for item in regional:
            assert item.id == f"precipitation-{region}-2022-{item.datetime.month:02d}"  # type: ignore[union-attr]
            start = item.common_metadata.start_datetime
            end = item.common_metadata.end_datetime
            assert start == item.datetime
            assert start is not None
            assert end is not None
            assert end.month == start.month
        ds = odc.stac.load(regional, bands=["data"], chunks={}, anchor="floating")
        assert ds.sizes["time"] == 12
        means = ds["data"].mean(["latitude", "longitude"]).values
        assert int(np.argmax(means)) + 1 in wettest
        assert (ds["data"].values >= 0).all()


def test_catchments() -> None:
    collection = json.loads(sample_catchments_path().read_text())
    assert collection["type"] == "FeatureCollection"
    features = {feature["properties"]["id"]: feature for feature in collection["features"]}
    assert sorted(features) == ["K01", "K02", "K03", "K04", "K05", "K06", "U01"]
    shapes = {key: shapely.geometry.shape(f["geometry"]) for key, f in features.items()}
    assert all(shape.is_valid for shape in shapes.values())
    assert all(f["properties"]["name"] for f in features.values())
    k01, k02 = shapes["K01"], shapes["K02"]
    assert k01.bounds[0] < -96.55 < k01.bounds[2]
    assert k01.contains(k02)
    assert len(shapes["K03"].interiors) == 1
    assert shapes["K04"].geom_type == "MultiPolygon"
    assert len(shapes["K05"].exterior.coords) - 1 == 20
    assert shapes["K06"].bounds[0] < -96.70 < shapes["K06"].bounds[2]
    k_box = shapely.box(*REGIONS["K"])
    assert all(k_box.intersects(shapes[key]) for key in features if key.startswith("K"))
    assert shapely.box(*REGIONS["U"]).contains(shapes["U01"])
    coordinates = shapely.get_coordinates(list(shapes.values()))
    np.testing.assert_array_equal(coordinates, np.round(coordinates, 6))


def test_total_size_is_small() -> None:
    size = sum(path.stat().st_size for path in sample_data_dir().rglob("*") if path.is_file())
    assert size < 4 * 1024 * 1024


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_data", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_sample_data", module)
    spec.loader.exec_module(module)
    return module


def test_script_is_deterministic(script: ModuleType, tmp_path: pathlib.Path) -> None:
    committed = sample_data_dir()
    catalog = script.generate(tmp_path)
    assert catalog == tmp_path / "catalog.json"
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    expected = sorted(
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file() and p.name != "README.md"
    )
    assert generated == expected
    for relative in generated:
        if relative.suffix == ".tif":
            with (
                rasterio.open(tmp_path / relative) as new,
                rasterio.open(committed / relative) as old,
            ):
                assert new.profile == old.profile, relative
                np.testing.assert_array_equal(new.read(), old.read(), err_msg=str(relative))
        elif relative.suffix == ".nc":  # the same file, byte for byte (HDF5 keeps no times)
            assert (tmp_path / relative).read_bytes() == (committed / relative).read_bytes()
        else:
            new_doc = json.loads((tmp_path / relative).read_text())
            old_doc = json.loads((committed / relative).read_text())
            assert new_doc == old_doc, relative
