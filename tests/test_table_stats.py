"""extract_table / extract_cube with every statistic ``zonal`` takes: user reductions and
a weights raster given as a dataset id.

References: ``cas_xr.zonal.zonal`` on the same cube (the kernel, tested against
exactextract on its own) and exactextract's ``weighted_mean`` on the sample files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.merge
import rioxarray  # noqa: F401  (the .rio accessor)
import shapely
import xarray as xr
from exactextract import exact_extract

import cas_xr as cas
from cas_xr.catalog import resolve
from cas_xr.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    InvalidStatisticError,
    QualityWarning,
)
from cas_xr.zonal import zonal

CRS = "EPSG:32633"
SAMPLE_DIR = Path(cas.__file__).parent / "sample" / "data"
SAMPLE = gpd.read_file(SAMPLE_DIR / "catchments.geojson")
KANSAS = SAMPLE[SAMPLE["id"].str.startswith("K") & (SAMPLE["id"] != "K06")]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    cas.configure(progress=False)


def _cube() -> xr.DataArray:
    rng = np.random.default_rng(5)
    a = rng.normal(300, 40, size=(60, 80))
    a[:5, :7] = -9999.0  # nodata
    a[30, 30:40] = np.nan
    y = 5_000_000 - 30 * (np.arange(60) + 0.5)
    x = 500_000 + 30 * (np.arange(80) + 0.5)
    da = xr.DataArray(a, dims=("y", "x"), coords={"y": y, "x": x}, name="dem")
    return da.rio.write_crs(CRS).rio.write_nodata(-9999.0, encoded=False)


def _polygons(n: int, seed: int = 3) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x = 500_000 + rng.uniform(300, 2100, n)
    y = 5_000_000 - rng.uniform(300, 1500, n)
    r = rng.uniform(40, 300, n)
    polys = [shapely.Point(a, b).buffer(c, quad_segs=5) for a, b, c in zip(x, y, r, strict=True)]
    return gpd.GeoDataFrame({"name": [f"p{i}" for i in range(n)]}, geometry=polys, crs=CRS)


def spread(values: Any, axis: int = -1) -> Any:  # xvec's form
    return np.nanmax(values, axis=axis) - np.nanmin(values, axis=axis)


def covered_mean(values: Any, coverage: Any) -> Any:  # exactextract's form
    return np.ma.average(values, weights=coverage)


STATS: list[Any] = ["mean", "p90", spread, covered_mean, ("q25", np.nanquantile, {"q": 0.25})]


# -- user reductions ------------------------------------------------------------------------


def test_reductions_give_zonal_numbers_in_the_table_and_the_cube():
    cube, frame = _cube(), _polygons(30)
    table = cas.extract_table(frame, [{"dem": cube}], aggregation=STATS, batch_size=7)
    expected = zonal(cube, frame, STATS).compute()
    labels = ["mean", "p90", "spread", "covered_mean", "q25"]
    assert expected["zonal_statistics"].values.tolist() == labels
    for k, label in enumerate(labels):
        np.testing.assert_allclose(
            table[f"dem_{label}"].to_numpy(), expected["dem"].values[:, k], rtol=1e-12
        )
    assert np.isfinite(table["dem_spread"]).all()
    out = cas.extract_cube(frame, [{"dem": cube}], aggregation=[spread])
    assert out["zonal_statistics"].values.tolist() == ["spread"]
    np.testing.assert_allclose(out["dem"].values[:, 0], expected["dem"].values[:, 2], rtol=1e-12)


def test_reductions_on_catalog_datasets_stacked_on_one_grid():
    ids = ["sample:elevation", "sample:land_cover"]  # one grid: one zonal call, two layers
    table = cas.extract_table(KANSAS, ids, aggregation=["mean", spread])
    bounds = tuple(KANSAS.total_bounds + np.array([-0.01, -0.01, 0.01, 0.01]))
    for dataset_id in ids:
        connector, name = resolve(dataset_id)
        da = connector.open(name, bbox=bounds, time_range=None)
        expected = zonal(da, KANSAS, ["mean", spread], nodata=da.attrs["nodata"]).compute()
        values = expected[da.name].values
        np.testing.assert_allclose(table[f"{dataset_id}_mean"], values[:, 0], rtol=1e-12)
        np.testing.assert_allclose(table[f"{dataset_id}_spread"], values[:, 1], rtol=1e-12)


def test_a_reduction_is_never_served_from_the_cache(tmp_path: Path):
    cas.configure(result_cache_dir=tmp_path / "cache", progress=False)
    cube, frame = _cube(), _polygons(5)

    def level(values: Any, axis: int = -1) -> Any:
        return np.full(values.shape[0], 1.0)

    first = cas.extract_table(frame, [{"dem": cube}], aggregation=["mean", level])
    assert (first["dem_level"] == 1.0).all()

    def level(values: Any, axis: int = -1) -> Any:  # edited: same name, new code
        return np.full(values.shape[0], 2.0)

    second = cas.extract_table(frame, [{"dem": cube}], aggregation=["mean", level])
    assert (second["dem_level"] == 2.0).all()
    summary = second.attrs["cas_xr"]["summary"]
    assert summary["cached"] == 0 and summary["computed"] == 5
    assert second.attrs["cas_xr"]["aggregation"] == "mean level"
    named = cas.extract_table(frame, [{"dem": cube}], aggregation="mean")
    assert named.attrs["cas_xr"]["summary"]["cached"] == 0  # nothing was stored for it


def test_reduction_errors_are_clear():
    cube, frame = _cube(), _polygons(3)

    def coverage_fraction(values: Any) -> Any:
        return 0.0

    with pytest.raises(InvalidArgumentError, match="clash with the table's own column"):
        cas.extract_table(frame, [{"dem": cube}], aggregation=[coverage_fraction])
    with pytest.raises(InvalidStatisticError, match="takes 4 required arguments"):
        cas.extract_table(frame, [{"dem": cube}], aggregation=[lambda a, b, c, d: 0])
    with pytest.raises(InvalidStatisticError, match="two statistics are named 'mean'"):
        cas.extract_table(frame, [{"dem": cube}], aggregation=["mean", ("mean", np.nanmean)])
    with pytest.raises(ArgumentTypeError, match="aggregation must be"):
        cas.extract_table(frame, [{"dem": cube}], aggregation=3)


# -- a weights raster as a dataset id --------------------------------------------------------


def _opened(dataset_id: str, frame: gpd.GeoDataFrame) -> xr.DataArray:
    connector, name = resolve(dataset_id)
    bounds = tuple(frame.total_bounds + np.array([-0.01, -0.01, 0.01, 0.01]))
    return connector.open(name, bbox=bounds, time_range=None)


WEIGHTED = ["weighted_mean", "weighted_sum", "weighted_stdev", "weighted_variance", "mean"]


@pytest.mark.parametrize("weights_id", ["sample:land_cover", "sample:slope"])
def test_weighted_statistics_equal_zonal_with_the_weights_dataarray(weights_id: str):
    table = cas.extract_table(
        KANSAS, ["sample:elevation"], aggregation=WEIGHTED, weights_raster=weights_id
    )
    values, weights = _opened("sample:elevation", KANSAS), _opened(weights_id, KANSAS)
    # slope is read with a halo (another window of the same grid): take the values' cells
    weights = weights.sel(y=values["y"], x=values["x"], method="nearest")
    weights = weights.assign_coords(y=values["y"], x=values["x"])
    expected = zonal(
        values, KANSAS, WEIGHTED, weights_raster=weights, nodata=values.attrs["nodata"]
    ).compute()
    for k, stat in enumerate(WEIGHTED):
        got = table[f"sample:elevation_{stat}"].to_numpy()
        np.testing.assert_allclose(got, expected["elevation"].values[:, k], rtol=1e-12)
        assert np.isfinite(got).all()
    assert not np.allclose(table["sample:elevation_weighted_mean"], table["sample:elevation_mean"])
    assert table.attrs["cas_xr"]["weights_raster"] == weights_id


def test_weighted_mean_equals_exactextract_on_the_sample_files(tmp_path: Path):
    paths = [next(SAMPLE_DIR.rglob(f"elevation-K-{side}.tif")) for side in ("west", "east")]
    tiles = [rasterio.open(path) for path in paths]
    mosaic, transform = rasterio.merge.merge(tiles)
    profile = {**tiles[0].profile, "width": mosaic.shape[2], "height": mosaic.shape[1],
               "transform": transform}  # fmt: skip
    for tile in tiles:
        tile.close()
    merged = tmp_path / "elevation-K.tif"
    with rasterio.open(merged, "w", **profile) as dst:
        dst.write(mosaic)
    weights = next((SAMPLE_DIR / "land_cover").rglob("land_cover-K.tif"))
    frame = KANSAS.reset_index(drop=True)
    reference = exact_extract(
        str(merged), frame, ["weighted_mean"], weights=str(weights), output="pandas"
    )["weighted_mean"].to_numpy()
    assert np.isfinite(reference).all()
    table = cas.extract_table(
        frame, "sample:elevation", aggregation="weighted_mean", weights_raster="sample:land_cover"
    )
    np.testing.assert_allclose(table["sample:elevation_weighted_mean"], reference, rtol=1e-6)


def test_a_static_weights_cube_weighs_every_step_of_temporal_values():
    steps = ("2022-01-01", "2022-03-31")
    weights = cas.open_dataset("sample:precipitation").isel(time=0)  # one step, as a cube
    args: dict[str, Any] = {"aggregation": ["weighted_mean", "mean"], "time_range": steps}
    table = cas.extract_table(KANSAS, "sample:precipitation", weights_raster=weights, **args)
    connector, name = resolve("sample:precipitation")
    bounds = tuple(KANSAS.total_bounds + np.array([-0.05, -0.05, 0.05, 0.05]))
    values = connector.open(name, bbox=bounds, time_range=cas.models.TimeRange(
        start=steps[0], end=steps[1]))  # fmt: skip
    cut = weights.sel(y=values["y"], x=values["x"], method="nearest")
    cut = cut.assign_coords(y=values["y"], x=values["x"])
    expected = zonal(
        values, KANSAS, ["weighted_mean", "mean"], weights_raster=cut,
        nodata=values.attrs["nodata"],
    ).compute()["precipitation"]  # fmt: skip
    assert expected.dims == ("geometry", "time", "zonal_statistics")
    got = table["sample:precipitation_weighted_mean"].to_numpy().reshape(len(KANSAS), 3)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected.values[..., 0], rtol=1e-12)
    assert not np.allclose(got, expected.values[..., 1])


def test_the_cache_keys_on_the_weights_dataset(tmp_path: Path):
    cas.configure(result_cache_dir=tmp_path / "cache", progress=False)
    args: dict[str, Any] = {"aggregation": "weighted_mean"}
    land = cas.extract_table(KANSAS, "sample:elevation", weights_raster="sample:land_cover", **args)
    slope = cas.extract_table(KANSAS, "sample:elevation", weights_raster="sample:slope", **args)
    assert slope.attrs["cas_xr"]["summary"]["computed"] == len(KANSAS)
    column = "sample:elevation_weighted_mean"
    assert not np.allclose(land[column], slope[column])
    again = cas.extract_table(
        KANSAS, "sample:elevation", weights_raster="sample:land_cover", **args
    )
    assert again.attrs["cas_xr"]["summary"]["cached"] == len(KANSAS)
    np.testing.assert_array_equal(again[column], land[column])


def test_a_weights_dataset_on_another_grid_raises():
    with pytest.raises(InvalidArgumentError, match="is not on the grid of 'sample:elevation'"):
        cas.extract_table(
            KANSAS, "sample:elevation", aggregation="weighted_mean",
            weights_raster="sample:clay_0-5cm",
        )  # fmt: skip


def test_weights_raster_errors_are_clear():
    with pytest.raises(InvalidArgumentError, match="need a weights raster"):
        cas.extract_table(KANSAS, "sample:elevation", aggregation="weighted_mean")
    with pytest.raises(ArgumentTypeError, match="weights_raster must be a dataset id"):
        cas.extract_table(KANSAS, "sample:elevation", aggregation="weighted_mean", weights_raster=3)


def test_weighted_frac_equals_zonal_in_the_table_and_the_cube():
    asked = ["frac", "weighted_frac", "majority"]
    args: dict[str, Any] = {"aggregation": asked, "weights_raster": "sample:elevation"}
    table = cas.extract_table(KANSAS, "sample:land_cover", **args)
    cube = cas.extract_cube(KANSAS, "sample:land_cover", **args)
    values, weights = _opened("sample:land_cover", KANSAS), _opened("sample:elevation", KANSAS)
    classes = sorted(resolve("sample:land_cover")[0].definition_of("land_cover").variables[0]
                     .class_names)  # fmt: skip
    expected = zonal(
        values, KANSAS, asked, weights_raster=weights, classes=classes,
        nodata=values.attrs["nodata"],
    ).compute()  # fmt: skip
    assert expected["weighted_distribution"].shape == (len(KANSAS), len(classes))
    names = cube["sample:land_cover_class_name"].values.tolist()
    assert cube["sample:land_cover_class"].values.tolist() == classes
    for k, name in enumerate(names):
        for output in ("distribution", "weighted_distribution"):
            np.testing.assert_allclose(
                table[f"sample:land_cover_{output}_{name}"], expected[output].values[:, k],
                rtol=1e-12, atol=1e-13,  # shares: the sums of other windows differ by ~1e-14
            )  # fmt: skip
    np.testing.assert_allclose(
        cube["sample:land_cover_weighted_distribution"].values,
        expected["weighted_distribution"].values, rtol=1e-12, atol=1e-13,
    )  # fmt: skip
    np.testing.assert_allclose(
        table["sample:land_cover_majority"], expected["land_cover"].values[:, 0], rtol=1e-12
    )
    shares = table.filter(like="_weighted_distribution_").sum(axis=1)
    np.testing.assert_allclose(shares, 1.0, rtol=1e-9)  # elevation weights: every one defined
    assert not np.allclose(
        table.filter(like="_weighted_distribution_").to_numpy(),
        table.filter(regex="_distribution_").filter(regex="^sample:land_cover_distribution")
        .to_numpy(),
    )  # fmt: skip
    again = cas.extract_table(KANSAS, "sample:land_cover", **args)  # from the cache
    assert again.attrs["cas_xr"]["summary"]["cached"] == len(KANSAS)
    np.testing.assert_array_equal(
        again.filter(like="distribution"), table.filter(like="distribution")
    )


@pytest.mark.parametrize("with_dist", [True, False])
def test_cache_entries_keep_the_weighted_distribution(with_dist: bool):
    from cas_xr.engine._entries import Block, decode, encode

    rng = np.random.default_rng(2)
    block = Block(
        positions=np.array([4, 1, 7]),
        stats=rng.random((3, 1, 2)),
        coverage=rng.random((3, 1)),
        pixels=np.array([[3], [2], [0]]),
        dist=rng.random((3, 1, 4)) if with_dist else np.zeros((3, 1, 0)),
        times=None,
        classes=np.array([10.0, 20.0, 30.0, 40.0]),
        computed_ms=np.array([1.0, 2.0, 3.0]),
        wdist=rng.random((3, 1, 4)),
    )
    (back,) = decode([4, 1, 7], encode(block))
    for name in ("positions", "stats", "coverage", "pixels", "dist", "classes", "wdist"):
        np.testing.assert_array_equal(getattr(back, name), getattr(block, name))
    np.testing.assert_array_equal(back.computed_ms, block.computed_ms)
    plain = Block(**{**block.__dict__, "wdist": None})
    (back,) = decode([4, 1, 7], encode(plain))
    assert back.wdist is None
    np.testing.assert_array_equal(back.dist, block.dist)


def test_a_three_argument_reduction_takes_the_weights_dataset():
    def weighted_total(values: Any, coverage: Any, weights: Any) -> Any:
        return np.ma.sum(values * coverage * weights)

    both = cas.extract_table(
        KANSAS, "sample:elevation", aggregation=["weighted_sum", weighted_total],
        weights_raster="sample:land_cover",
    )  # fmt: skip
    np.testing.assert_allclose(
        both["sample:elevation_weighted_total"], both["sample:elevation_weighted_sum"], rtol=1e-9
    )


def test_a_weights_cube_covering_part_of_the_values_weighs_only_there():
    cube, frame = _cube(), _polygons(30)
    full = cube.copy(data=np.random.default_rng(8).uniform(0.5, 2.0, cube.shape)).rename("w")
    full = full.rio.write_nodata(None, encoded=False)
    left = full.isel(x=slice(0, 40))  # the values' west half only
    args: dict[str, Any] = {"aggregation": ["weighted_mean", "mean"]}
    with pytest.warns(QualityWarning, match="missing"):  # the first statistic is undefined
        table = cas.extract_table(frame, [{"dem": cube}], weights_raster=left, **args)
    expected = zonal(cube, frame, ["weighted_mean", "mean"], weights_raster=full).compute()
    west = frame.geometry.bounds["maxx"].to_numpy() < float(left["x"][-1]) + 15
    assert 3 < west.sum() < len(frame)
    got = table["dem_weighted_mean"].to_numpy()
    np.testing.assert_allclose(got[west], expected["dem"].values[west, 0], rtol=1e-12)
    assert np.isnan(got[~west]).all()  # a cell without a weight: undefined, as exactextract's
    np.testing.assert_allclose(table["dem_mean"], expected["dem"].values[:, 1], rtol=1e-12)


def test_a_weights_cube_shifted_by_part_of_a_cell_or_with_steps_raises():
    cube, frame = _cube(), _polygons(3)
    shifted = cube.assign_coords(x=cube["x"] + 10.0)
    with pytest.raises(InvalidArgumentError, match="shifted by a fraction of a cell"):
        cas.extract_table(
            frame, [{"dem": cube}], aggregation="weighted_mean", weights_raster=shifted
        )
    steps = xr.concat([cube, cube], dim="time").assign_coords(
        time=np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[ns]")
    )
    with pytest.raises(InvalidArgumentError, match="has 2 time steps"):
        cas.extract_table(frame, [{"dem": cube}], aggregation="weighted_mean", weights_raster=steps)


# -- entry points that take names only --------------------------------------------------------


def test_the_cli_says_functions_are_for_python(capsys: pytest.CaptureFixture[str]):
    from cas_xr.cli import main

    point = '{"type": "Point", "coordinates": [-96.5, 39.0]}'
    code = main(["extract", point, "-d", "sample:elevation", "--stat", "numpy.nanmedian"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown statistic 'numpy.nanmedian'" in err
    assert "--stat takes statistic names only" in err
    code = main(["extract", point, "-d", "sample:elevation", "--stat", "mean,weighted_mean"])
    err = capsys.readouterr().err
    assert code == 2 and "which --stat does not take yet" in err


def test_the_service_says_functions_are_for_python(tmp_path: Path):
    import httpx

    from cas_xr.service import create_app
    from tests.test_service_support import threaded_service

    settings = cas.Settings(jobs_db=str(tmp_path / "jobs.sqlite"))
    features = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {},
                      "geometry": {"type": "Point", "coordinates": [-96.5, 39.0]}}],
    }  # fmt: skip
    inputs = {"features": features, "dataset_ids": ["sample:elevation"],
              "aggregation": ["mean", "numpy.nanmedian"]}  # fmt: skip
    weighted = {**inputs, "aggregation": "weighted_mean"}
    with threaded_service(create_app(settings)) as url, httpx.Client(base_url=url) as http:
        response = http.post("processes/extract-table/execution", json={"inputs": inputs})
        refused = http.post("processes/extract-table/execution", json={"inputs": weighted})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "unknown statistic 'numpy.nanmedian'" in detail
    assert "the service takes statistic names only" in detail
    assert refused.status_code == 400, refused.text
    assert "which the service does not take yet" in refused.json()["detail"]


def test_reductions_and_a_weights_dataset_run_on_a_cluster(cluster: Any):
    distributed = pytest.importorskip("distributed")
    local = 3.0

    def shifted_mean(values: Any, axis: int = -1) -> Any:  # a closure: shipped by value
        return np.nanmean(values, axis=axis) + local

    asked: list[Any] = ["mean", "weighted_mean", shifted_mean]
    args: dict[str, Any] = {"aggregation": asked, "weights_raster": "sample:land_cover"}
    here = cas.extract_table(KANSAS, "sample:elevation", **args)
    with distributed.Client(cluster):
        there = cas.extract_table(KANSAS, "sample:elevation", **args)
    assert "distributed" in there.attrs["cas_xr"]["summary"]["scheduler"]
    for column in ("mean", "weighted_mean", "shifted_mean"):
        name = f"sample:elevation_{column}"
        np.testing.assert_allclose(there[name], here[name], rtol=1e-12)
    assert np.isfinite(there["sample:elevation_shifted_mean"]).all()


def test_no_weight_under_a_geometry_is_missing_with_its_own_reason():
    values = cas.open_dataset("sample:elevation").isel(x=slice(0, 60), y=slice(0, 60)).compute()
    weights = xr.full_like(values, np.nan).rename("weights")  # no weight anywhere
    x, y = values["x"].values, values["y"].values
    frame = gpd.GeoDataFrame(geometry=[shapely.box(x[10], y[50], x[50], y[10])], crs=values.rio.crs)
    aggregation = ["weighted_mean", "mean"]
    with pytest.warns(QualityWarning, match="no value though 1.000 of the geometry has valid"):
        table = cas.extract_table(
            frame, [{"dem": values}], aggregation=aggregation, weights_raster=weights
        )
    row = table.iloc[0]
    assert np.isnan(row["dem_weighted_mean"]) and np.isfinite(row["dem_mean"])
    assert row["dem_quality"] == "missing" and row["dem_pixel_count"] == 41 * 41
