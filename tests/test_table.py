"""extract_table / extract_cube: numbers, shapes, metadata, caching, progress and failures.

Numbers are checked against exactextract run on the same files (independent) and against
the engine behind batch_extract on the sample provider.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import xarray as xr
from affine import Affine
from exactextract import exact_extract

import cas_xr as cas
from cas_xr.engine import _store
from cas_xr.engine._entries import Block, decode, encode
from cas_xr.errors import (
    BatchFailureWarning,
    ConfigurationError,
    LimitExceededError,
    QualityWarning,
    UnknownDatasetError,
)
from cas_xr.testing import make_cog

CRS = "EPSG:32633"
GRID = Affine(30.0, 0, 500_000.0, 0, -30.0, 5_000_000.0)
SIDE = 256  # cells: 2 x 2 tiles of 128
SAMPLE = gpd.read_file(Path(cas.__file__).parent / "sample" / "data" / "catchments.geojson")
GOOD_SAMPLE = SAMPLE[SAMPLE["id"] != "K06"]  # K06 lies partly outside the data (PARTIAL)


def _rasters(root: Path) -> dict[str, Path]:
    rows, cols = np.mgrid[0:SIDE, 0:SIDE].astype("float32")
    a = 100 + 0.5 * rows + cols + 0.01 * rows * cols
    a[:10, :10] = -9999  # a nodata corner
    b = 2 * cols + np.sin(rows / 7).astype("float32")
    c = (rows // 10 * 10 + cols // 40).astype("int16")
    root.mkdir(parents=True, exist_ok=True)
    out = {
        "a": make_cog(root / "a.tif", a, transform=GRID, crs=CRS, nodata=-9999.0, blocksize=128),
        "b": make_cog(root / "b.tif", b, transform=GRID, crs=CRS, nodata=-9999.0, blocksize=128),
        "c": make_cog(root / "c.tif", c, transform=GRID, crs=CRS, nodata=-1, blocksize=128),
    }
    with rasterio.open(out["b"]) as src:  # cut the file before its first tile:
        first_tile = min(  # it opens, but no block can be read
            int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
            for row in range(SIDE // 128)
            for col in range(SIDE // 128)
        )
    (root / "broken.tif").write_bytes(out["b"].read_bytes()[:first_tile])
    return out


PROVIDER = """\
slug: grid
protocol: local
endpoint: {root}
license: CC-BY-4.0
citation: "Grid et al. (2024): synthetic test rasters"
datasets:
  - name: a
    path: a.tif
    crs: EPSG:32633
    description: synthetic heights
    variables:
      - {{name: height, units: m, nodata_value: -9999, valid_range: [0, 1000]}}
  - name: b
    path: b.tif
    crs: EPSG:32633
    variables:
      - {{name: slope, units: degree, nodata_value: -9999}}
  - name: c
    path: c.tif
    crs: EPSG:32633
    variables:
      - {{name: zone, units: "1", nodata_value: -1}}
  - name: gone
    path: gone.tif
    crs: EPSG:32633
    variables:
      - {{name: gone, units: m}}
  - name: broken
    path: broken.tif
    crs: EPSG:32633
    variables:
      - {{name: broken, units: degree, nodata_value: -9999}}
"""


def _polygons(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x0, y0 = GRID.c, GRID.f - SIDE * 30.0
    xy = rng.uniform(300, SIDE * 30.0 - 700, size=(n, 2)) + np.array([x0, y0])
    size = rng.uniform(50, 600, size=(n, 2))
    shapes = [
        shapely.Polygon(
            [(x, y), (x + w, y + 0.2 * h), (x + w, y + h), (x + 0.3 * w, y + 0.8 * h), (x, y)]
        )
        for (x, y), (w, h) in zip(xy, size, strict=True)
    ]
    index = pd.Index([f"C{i:03d}" for i in range(n)], name="cid")
    return gpd.GeoDataFrame(
        {"name": [f"c{i}" for i in range(n)]}, geometry=shapes, crs=CRS, index=index
    )


@pytest.fixture
def grid(tmp_path: Path) -> dict[str, Path]:
    rasters = _rasters(tmp_path / "data")
    provider = tmp_path / "grid.yaml"
    provider.write_text(PROVIDER.format(root=tmp_path / "data"), encoding="utf-8")
    cas.configure(provider_files=[provider], progress=False)
    return rasters


@pytest.fixture
def zonal_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the engine's zonal computations (one per unit of work) and the layers of each."""
    module = sys.modules["cas_xr.zonal._api"]
    original = module.zonal_run
    calls: list[int] = []

    def counting(obj: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(obj.sizes.get("layer", 1))
        return original(obj, *args, **kwargs)

    monkeypatch.setattr(module, "zonal_run", counting)
    return calls


def _reference(path: Path, frame: gpd.GeoDataFrame, op: str = "mean") -> np.ndarray:
    return exact_extract(str(path), frame, [op], output="pandas")[op].to_numpy()


# -- numbers ------------------------------------------------------------------------------


def test_table_equals_exactextract_and_keeps_the_input(grid: dict[str, Path]):
    frame = _polygons(40)
    table = cas.extract_table(frame, ["grid:a", "grid:b"], aggregation=["mean", "max"])
    assert table.index.equals(frame.index) and table.index.name == "cid"
    assert (table["name"] == frame["name"]).all() and table.crs == frame.crs
    assert table.geometry.geom_equals(frame.geometry).all()
    for d, key in (("grid:a", "a"), ("grid:b", "b")):
        np.testing.assert_allclose(table[f"{d}_mean"], _reference(grid[key], frame), rtol=1e-9)
        np.testing.assert_allclose(
            table[f"{d}_max"], _reference(grid[key], frame, "max"), rtol=1e-9
        )
        assert set(table[f"{d}_quality"].astype(str)) == {"good"}
        assert table[f"{d}_coverage_fraction"].between(0.999, 1).all()
    assert table["grid:a_pixel_count"].dtype == np.int64
    assert list(table.columns[:1]) == ["name"]


def test_table_matches_batch_extract_on_the_sample_provider():
    ids = ["sample:elevation", "sample:clay_0-5cm", "sample:land_cover"]
    geometries = [f["geometry"] for f in GOOD_SAMPLE.geometry.__geo_interface__["features"]]
    for aggregation in ("mean", "median", "std", "majority", "unique"):
        table = cas.extract_table(GOOD_SAMPLE, ids, aggregation=aggregation)
        response = cas.batch_extract_sync(
            {"geometries": geometries, "dataset_ids": ids, "aggregation": aggregation}
        )
        engine = [[r.value for r in resp.results] for resp in response.responses]
        ours = table[[f"{d}_{aggregation}" for d in ids]].to_numpy()
        np.testing.assert_allclose(ours, np.asarray(engine, dtype=float), rtol=1e-12)


def test_geometry_crs_is_the_frames():
    lonlat = cas.extract_table(GOOD_SAMPLE, "sample:elevation")
    projected = GOOD_SAMPLE.set_geometry(GOOD_SAMPLE.geometry.segmentize(0.001)).to_crs(32614)
    utm = cas.extract_table(projected, "sample:elevation")
    np.testing.assert_allclose(
        utm["sample:elevation_mean"], lonlat["sample:elevation_mean"], rtol=1e-4
    )
    with pytest.raises(ValueError, match="no CRS"):
        cas.extract_table(GOOD_SAMPLE.set_crs(None, allow_override=True), "sample:elevation")


def test_points_take_their_cell(grid: dict[str, Path]):
    frame = gpd.GeoDataFrame(geometry=[shapely.Point(500_000 + 45, 5_000_000 - 75)], crs=CRS)
    table = cas.extract_table(frame, "grid:b")
    assert table["grid:b_mean"].iloc[0] == pytest.approx(2 * 1 + np.sin(2 / 7), rel=1e-6)
    assert table["grid:b_pixel_count"].iloc[0] == 1


# -- batches, units, shapes -------------------------------------------------------------------


def test_batches_and_shared_units_give_the_same_numbers(
    grid: dict[str, Path], zonal_calls: list[int]
):
    frame = _polygons(30)
    ids = ["grid:a", "grid:b", "grid:c"]
    whole = cas.extract_table(frame, ids)
    # a and b share a grid, dtype and nodata (one call of 2 layers); c is int16 (1); the
    # units are built on threads, so the calls come in either order
    assert sorted(zonal_calls) == [1, 2]
    cas.configure()  # a fresh result cache
    zonal_calls.clear()
    pieces = cas.extract_table(frame, ids, batch_size=7)
    assert len(zonal_calls) == 2 * 5  # ceil(30 / 7) batches x 2 units
    pd.testing.assert_frame_equal(pieces.drop(columns="geometry"), whole.drop(columns="geometry"))
    np.testing.assert_allclose(whole["grid:c_mean"], _reference(grid["c"], frame), rtol=1e-9)


def test_temporal_dataset_gives_a_long_table():
    ids = ["sample:precipitation", "sample:elevation"]
    table = cas.extract_table(GOOD_SAMPLE, ids, aggregation="mean")
    assert table.index.names == [None, "time"] and len(table) == 12 * len(GOOD_SAMPLE)
    first = table.loc[GOOD_SAMPLE.index[0]]
    assert len(first) == 12 and first["sample:elevation_mean"].nunique() == 1
    spring = ("2022-03-01", "2022-05-31T23:59:59")
    window = cas.extract_table(GOOD_SAMPLE, ids, time_range=spring)
    assert len(window.loc[GOOD_SAMPLE.index[0]]) == 3
    geometry = GOOD_SAMPLE.geometry.iloc[0].__geo_interface__
    engine = cas.extract_sync(
        {"geometry": geometry, "dataset_ids": ids[:1], "time_range": spring}
    ).results[0]
    per_step = window.loc[GOOD_SAMPLE.index[0], "sample:precipitation_mean"]
    assert per_step.mean() == pytest.approx(engine.value, rel=1e-12)


def test_quality_warning_counts_time_steps_as_values_not_results():
    from cas_xr.errors import QualityWarning
    from cas_xr.sample import sample_catchments_path

    frame = gpd.read_file(sample_catchments_path())  # some catchments are partly outside
    ids = ["sample:precipitation", "sample:elevation"]
    with pytest.warns(QualityWarning) as caught:
        table = cas.extract_table(frame, ids, time_range=("2022-01-01", "2022-12-31"))
    message = next(str(w.message) for w in caught if w.category is QualityWarning)
    flags = table["sample:precipitation_quality"].ne("good").sum()
    flags += table.groupby(level=0)["sample:elevation_quality"].first().ne("good").sum()
    values = len(frame) * (12 + 1)
    results = len(frame) * len(ids)
    assert message.startswith(f"{flags} of {values} values ({results} results over their time")


def test_distribution_columns_carry_class_names():
    table = cas.extract_table(GOOD_SAMPLE, "sample:land_cover", aggregation=["distribution"])
    shares = table.filter(like="sample:land_cover_distribution_")
    assert "sample:land_cover_distribution_cropland" in shares.columns
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    cube = cas.extract_cube(GOOD_SAMPLE, "sample:land_cover", aggregation="distribution")
    assert cube["sample:land_cover_distribution"].dims == ("geometry", "sample:land_cover_class")
    assert "cropland" in cube["sample:land_cover_class_name"].values


def test_cube_round_trips_through_zarr_and_geoparquet(tmp_path: Path):
    ids = ["sample:elevation", "sample:precipitation"]
    cube = cas.extract_cube(GOOD_SAMPLE, ids, aggregation=["mean", "min"])
    assert cube.xvec.geom_coords_indexed["geometry"].crs.to_epsg() == 4326
    assert cube["sample:elevation"].dims == ("geometry", "zonal_statistics")
    assert cube["sample:precipitation"].dims == ("geometry", "time", "zonal_statistics")
    attrs = cube["sample:elevation"].attrs
    assert attrs["units"] == "m" and attrs["license"] == "MIT" and "synthetic" in attrs["citation"]
    assert json.loads(attrs["cas_provenance"])["collection"] == "elevation"
    assert cube["sample:elevation_quality"].attrs["flag_meanings"].startswith("good suspect")
    # xvec's CF encoding and decoding drop the dataset attrs: carry them over
    encoded = cube.xvec.encode_cf().assign_attrs(cube.attrs)
    encoded.to_zarr(tmp_path / "cube.zarr", consolidated=False)
    stored = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False)
    back = stored.xvec.decode_cf().assign_attrs(stored.attrs).load()
    xr.testing.assert_allclose(back["sample:precipitation"], cube["sample:precipitation"])
    assert back["sample:elevation"].attrs["units"] == "m"
    assert json.loads(back.attrs["cas_summary"])["geometries"] == len(GOOD_SAMPLE)

    table = cas.extract_table(GOOD_SAMPLE, ids[:1])
    table.to_parquet(tmp_path / "table.parquet")
    read = gpd.read_parquet(tmp_path / "table.parquet")
    pd.testing.assert_frame_equal(read, table)
    meta = read.attrs["cas_xr"]["datasets"]["sample:elevation"]
    assert meta["units"] == "m" and meta["license"] == "MIT" and meta["provenance"]["items"]


# -- failures -----------------------------------------------------------------------------


def test_failed_dataset_and_bad_geometries_are_missing_and_counted(grid: dict[str, Path]):
    frame = _polygons(6)
    bowtie = shapely.Polygon([(500_300, 4_999_000), (500_900, 4_998_400),
                              (500_900, 4_999_000), (500_300, 4_998_400)])  # fmt: skip
    line = shapely.GeometryCollection(  # mixed kinds: refused
        [shapely.LineString([(500_300, 4_999_000), (500_900, 4_998_400)]), shapely.Point(0, 0)]
    )
    frame.loc["bad", "geometry"] = bowtie
    frame.loc["line", "geometry"] = line
    with pytest.warns(BatchFailureWarning) as record:
        table = cas.extract_table(frame, ["grid:a", "grid:gone"])
    (warning,) = [w.message for w in record if isinstance(w.message, BatchFailureWarning)]
    failures = warning.failures
    kinds = {(f["dataset_id"], f["kind"]) for f in failures}
    assert kinds == {("grid:gone", "not_found"), (None, "InvalidGeometryError")}
    invalid = [f for f in failures if f["dataset_id"] is None]
    assert sorted(i for f in invalid for i in f["index"]) == ["bad", "line"]
    assert any("mixing polygons, lines and points" in f["message"] for f in invalid)
    quality = table["grid:a_quality"].astype(str)
    assert (quality[["bad", "line"]] == "missing").all()
    assert (quality.drop(["bad", "line"]) == "good").all()
    assert (table["grid:gone_quality"].astype(str) == "missing").all()
    assert table["grid:gone_mean"].isna().all()
    summary = table.attrs["cas_xr"]["summary"]
    assert summary["failed"] == 6 + 2 * 2 and summary["results"] == 16
    assert table.attrs["cas_xr"]["failures"] == failures


def test_a_unit_that_fails_is_retried_dataset_by_dataset(grid: dict[str, Path]):
    frame = _polygons(10)
    with pytest.warns(BatchFailureWarning, match="grid:broken: 10 geometries"):
        table = cas.extract_table(frame, ["grid:a", "grid:b", "grid:broken"])
    np.testing.assert_allclose(table["grid:b_mean"], _reference(grid["b"], frame), rtol=1e-9)
    assert table["grid:a_mean"].notna().all() and table["grid:broken_mean"].isna().all()


def test_too_many_vertices_fails_only_that_geometry(grid: dict[str, Path]):
    frame = _polygons(3)
    frame.loc["C000", "geometry"] = frame.geometry.iloc[0].segmentize(1.0)
    cas.configure(max_polygon_vertices=100)
    with pytest.warns(BatchFailureWarning, match="max_polygon_vertices"):
        table = cas.extract_table(frame, "grid:a")
    assert table["grid:a_mean"].isna().tolist() == [True, False, False]


def test_errors_before_any_work(grid: dict[str, Path], zonal_calls: list[int]):
    frame = _polygons(3)
    with pytest.raises(UnknownDatasetError, match="nope"):
        cas.extract_table(frame, ["grid:a", "grid:nope"])
    with pytest.raises(ValueError, match="unknown statistic 'average'"):
        cas.extract_table(frame, "grid:a", aggregation="average")
    with pytest.raises(TypeError, match="GeoDataFrame or GeoSeries"):
        cas.extract_table(frame.geometry.tolist(), "grid:a")
    with pytest.raises(ValueError, match="batch_size"):
        cas.extract_table(frame, "grid:a", batch_size=0)
    cas.configure(max_datasets_per_request=1)
    with pytest.raises(LimitExceededError, match="max_datasets_per_request"):
        cas.extract_cube(frame, ["grid:a", "grid:b"])
    assert zonal_calls == []


def test_quality_flags_come_with_a_warning():
    with pytest.warns(QualityWarning, match="partial: 1"):
        table = cas.extract_table(SAMPLE, "sample:elevation")
    assert table["sample:elevation_quality"].astype(str).tolist().count("partial") == 1


# -- cache, progress ------------------------------------------------------------------------


def test_persistent_cache_rerun_computes_nothing_new(
    grid: dict[str, Path], zonal_calls: list[int], tmp_path: Path
):
    cache = tmp_path / "cache"
    cas.configure(result_cache_dir=cache)
    frame = _polygons(25)
    ids = ["grid:a", "grid:b", "grid:c"]
    first = cas.extract_table(frame, ids, batch_size=10)
    assert first.attrs["cas_xr"]["summary"]["computed"] == 75 and len(zonal_calls) == 6
    assert (cache / _store.FILE_NAME).exists()
    cas.configure(result_cache_ttl_s=0)  # no memory cache: what is served comes from disk
    zonal_calls.clear()
    second = cas.extract_table(frame, ids, batch_size=10)
    summary = second.attrs["cas_xr"]["summary"]
    assert zonal_calls == [] and summary["computed"] == 0 and summary["cached"] == 75
    pd.testing.assert_frame_equal(second, first, check_like=False, check_exact=True)
    assert second.attrs["cas_xr"]["datasets"] == first.attrs["cas_xr"]["datasets"]

    more = pd.concat([frame, _polygons(5, seed=9).rename(index=lambda i: f"N{i}")])
    third = cas.extract_table(more, ids, batch_size=10)
    assert third.attrs["cas_xr"]["summary"]["computed"] == 15  # only the new geometries
    pd.testing.assert_frame_equal(third.loc[frame.index], first)


def test_persistent_cache_keys_on_statistics_and_weights(grid: dict[str, Path], tmp_path: Path):
    cas.configure(result_cache_dir=tmp_path / "cache")
    frame = _polygons(5)
    cas.extract_table(frame, "grid:a")
    assert cas.extract_table(frame, "grid:a").attrs["cas_xr"]["summary"]["computed"] == 0
    other = cas.extract_table(frame, "grid:a", aggregation=["mean", "std"])
    assert other.attrs["cas_xr"]["summary"]["computed"] == 5
    cas.configure(zonal_weights="center")
    centre = cas.extract_table(frame, "grid:a")
    assert centre.attrs["cas_xr"]["summary"]["computed"] == 5


def test_memory_cache_is_rebuilt_by_configure(grid: dict[str, Path]):
    frame = _polygons(5)
    cas.extract_table(frame, "grid:a")
    assert cas.extract_table(frame, "grid:a").attrs["cas_xr"]["summary"]["cached"] == 5
    cas.configure(result_cache_max_entries=3)
    assert cas.extract_table(frame, "grid:a").attrs["cas_xr"]["summary"]["computed"] == 5
    assert cas.extract_table(frame, "grid:a").attrs["cas_xr"]["summary"]["cached"] == 3


def test_engine_results_persist_across_sessions(opened: list[Any], tmp_path: Path):
    cas.configure(result_cache_dir=tmp_path / "cache", result_cache_ttl_s=0)
    geometry = GOOD_SAMPLE.geometry.iloc[0].__geo_interface__
    request = {"geometry": geometry, "dataset_ids": ["sample:elevation", "sample:land_cover"]}
    first = cas.extract_sync(request)
    second = cas.extract_sync(request)
    assert len(opened) == 2 and all(r.cached for r in second.results)
    for r in second.results:  # the original computation's time, kept on disk
        assert 0 < r.provenance.pop("computed_elapsed_ms") <= first.elapsed_ms
    unchanged = {"cached", "elapsed_ms"}  # a cached result reports this call's time
    assert [r.model_dump(exclude=unchanged) for r in second.results] == [
        r.model_dump(exclude=unchanged) for r in first.results
    ]


def test_progress_bar_can_be_switched_off(capsys: pytest.CaptureFixture[str]):
    cas.configure(result_cache_ttl_s=0)
    cas.extract_table(GOOD_SAMPLE, "sample:elevation")
    assert "cas_xr (threads)" in capsys.readouterr().err
    cas.configure(progress=False)
    cas.extract_table(GOOD_SAMPLE, "sample:elevation")
    assert capsys.readouterr().err == ""


# -- building blocks ------------------------------------------------------------------------


def test_cache_entries_round_trip():
    times = np.array(["2022-01-01", "2022-02-01"], dtype="datetime64[ns]")
    block = Block(
        positions=np.array([4, 1]),
        stats=np.arange(8.0).reshape(2, 2, 2),
        coverage=np.array([[1.0, 0.5], [0.25, 0.0]]),
        pixels=np.array([[3, 2], [1, 0]]),
        dist=np.zeros((2, 2, 0)),
        times=times,
        classes=np.empty(0),
    )
    (back,) = decode([4, 1], encode(block))
    for name in ("positions", "stats", "coverage", "pixels", "dist", "times", "classes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(block, name))


def test_persistent_store(tmp_path: Path):
    store = _store.PersistentStore(tmp_path / "deep" / "cache")
    store.put_many([(b"k1", b"v1"), (b"k2", b"v2")])
    store.put_many([(b"k1", b"v1b")])
    assert store.get_many([b"k1", b"k2", b"k3"]) == {b"k1": b"v1b", b"k2": b"v2"}
    assert len(store) == 2
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="result_cache_dir"):
        _store.PersistentStore(blocker)


def test_configure_rebuilds_the_persistent_store(tmp_path: Path):
    assert _store.persistent_store() is None
    cas.configure(result_cache_dir=tmp_path / "one")
    one = _store.persistent_store()
    assert one is not None and one.path.parent == tmp_path / "one"
    cas.configure(result_cache_dir=tmp_path / "two")
    two = _store.persistent_store()
    assert two is not None and two.path.parent == tmp_path / "two"
    shutil.rmtree(tmp_path / "one")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cas.configure(result_cache_dir=None)
    assert _store.persistent_store() is None


def test_a_missing_geometry_is_missing_in_the_cube_and_the_table():
    frame = gpd.GeoDataFrame(
        {"name": ["box", "none"]},
        geometry=[shapely.box(-96.6, 39.0, -96.55, 39.05), None],
        crs="EPSG:4326",
    )
    with pytest.warns(BatchFailureWarning, match="the geometry is missing"):
        table = cas.extract_table(frame, "sample:elevation")
    assert table["sample:elevation_quality"].tolist() == ["good", "missing"]
    assert table.geometry.iloc[1] is None  # the input's geometry, kept
    with pytest.warns(BatchFailureWarning):
        cube = cas.extract_cube(frame, "sample:elevation")
    assert cube.sizes["geometry"] == 2 and cube["geometry"].values[1].is_empty
