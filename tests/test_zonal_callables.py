"""User reductions in ``stats`` (and ``add_stats``) against xvec, exactextract and rasterstats."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
import xvec  # noqa: F401  (registers .xvec)
from exactextract import exact_extract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterstats import zonal_stats

from cas_xr.errors import InvalidArgumentError, InvalidStatisticError
from cas_xr.testing import raise_if_dask_computes
from cas_xr.zonal import zonal
from tests.test_zonal import _polygons, _raster
from tests.test_zonal_cells import _source

CRS = "EPSG:32633"


def p90(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.nanpercentile(values, 90, axis=axis)


def covered(values: np.ma.MaskedArray, coverage: np.ndarray) -> float:
    return float(coverage.sum())


def wmean(values: np.ma.MaskedArray, coverage: np.ndarray) -> float:
    return float(np.ma.average(values, weights=coverage))


def masked_cover(values: np.ma.MaskedArray, coverage: np.ndarray) -> float:
    return float(coverage[np.ma.getmaskarray(values)].sum())


def wsum(values: np.ma.MaskedArray, coverage: np.ndarray, weights: np.ma.MaskedArray) -> float:
    return float(np.ma.sum(values * coverage * weights))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), window=st.sampled_from([8, 1000]))
def test_callables_match_xvec(seed: int, window: int):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=False, ascending=False)
    da = da.where(da != da.rio.nodata).astype("float64").rio.write_nodata(np.nan)
    geoms = gpd.GeoSeries(_polygons(rng, da, int(rng.integers(1, 4))), crs=CRS)
    stats = [np.nanmean, ("q25", np.nanquantile, {"q": 0.25}), p90, np.nanmax]
    ours = zonal(da, geoms, stats, weights="center", chunks=window).compute()
    assert ours["zonal_statistics"].to_numpy().tolist() == ["nanmean", "q25", "p90", "nanmax"]
    plain = da.compute()
    for i in range(len(geoms)):
        mask = shapely.contains_xy(geoms.iloc[i], *np.meshgrid(plain.x, plain.y))
        if not mask.any() or mask.all():  # xvec's rasterize fails on both
            continue
        ref = plain.xvec.zonal_stats(geoms.iloc[[i]], "x", "y", stats=stats, method="rasterize")
        np.testing.assert_allclose(ours["v"][i], ref[0], rtol=1e-9, equal_nan=True)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), integer=st.booleans())
def test_two_and_three_argument_functions_match_exactextract(seed: int, integer: bool):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=integer, ascending=False)
    weights = da.copy(data=rng.uniform(0.5, 3.0, da.shape)).rio.write_nodata(None)
    polygons = _polygons(rng, da, int(rng.integers(1, 6)))
    feats = [
        {"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in polygons
    ]
    funcs = [covered, wmean, masked_cover, wsum]
    ref = exact_extract(_source(da), feats, funcs, weights=_source(weights), output="pandas")
    geoms = gpd.GeoSeries(polygons, crs=CRS)
    ours = zonal(da, geoms, [*funcs, "mean"], weights_raster=weights, chunks=8).compute()
    # a cell covered < 1e-7 (kept by exactextract, dropped by cas_xr) moves these < 1e-6
    for name in ("covered", "wmean", "masked_cover", "wsum"):
        np.testing.assert_allclose(
            ours["v"].sel(zonal_statistics=name), ref[name].astype(float), rtol=1e-6, atol=1e-6
        )
    np.testing.assert_allclose(  # a coverage-weighted mean is the built-in mean
        ours["v"].sel(zonal_statistics="wmean"), ours["v"].sel(zonal_statistics="mean"), rtol=1e-9
    )


def test_three_argument_functions_need_a_weights_raster_on_the_grid():
    da = _grid()
    geoms = gpd.GeoSeries([shapely.box(1, 1, 3, 3)], crs=CRS)
    with pytest.raises(InvalidStatisticError, match="pass weights_raster="):
        zonal(da, geoms, [wsum])
    with pytest.raises(InvalidArgumentError, match="same grid"):
        zonal(da, geoms, [wsum], weights_raster=da.isel(x=slice(1, None)))
    layered = xr.concat([da, da, da], dim="time")
    with pytest.raises(InvalidArgumentError, match="3 layers"):
        zonal(da.expand_dims(time=2), geoms, [wsum], weights_raster=layered)
    # one weights layer for every layer: the box covers cells 13, nodata, 19 and 20 whole
    both = zonal(da.expand_dims(time=2), geoms, [wsum], weights_raster=da * 0 + 2).compute()
    assert both["v"][0, :, 0].to_numpy().tolist() == [2.0 * (13 + 19 + 20)] * 2


def _grid() -> xr.DataArray:
    data = np.arange(30, dtype="float64").reshape(5, 6)
    data[2, 2] = -1
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": 4.5 - np.arange(5), "x": 0.5 + np.arange(6)}, name="v"
    )
    return da.rio.write_crs(CRS).rio.write_nodata(-1)


@pytest.mark.parametrize("all_touched", [False, True])
def test_add_stats_match_rasterstats(all_touched: bool):
    rng = np.random.default_rng(7)
    da = _raster(rng, integer=True, ascending=False).compute()
    polygons = _polygons(rng, da, 8)
    add = {"mymean": lambda m: np.ma.mean(m), "n": lambda m: m.count(), "span": np.ma.ptp}
    ref = zonal_stats(
        polygons, da.to_numpy(), affine=da.rio.transform(), nodata=-1, stats=["count"],
        add_stats=add, all_touched=all_touched,
    )  # fmt: skip
    mode = "all_touched" if all_touched else "center"
    ours = zonal(da.chunk({"x": 7, "y": 7}), gpd.GeoSeries(polygons, crs=CRS), "mean",
                 add_stats=add, weights=mode, chunks=9).compute()  # fmt: skip
    for i, r in enumerate(ref):
        got = ours["v"].isel(geometry=i)
        if r["count"] == 0:  # no valid cell: rasterstats gives None (or masked)
            assert np.isnan(float(got.sel(zonal_statistics="mymean")))
            continue
        assert float(got.sel(zonal_statistics="n")) == r["n"] == r["count"]
        assert float(got.sel(zonal_statistics="mymean")) == pytest.approx(r["mymean"], rel=1e-9)
        assert float(got.sel(zonal_statistics="span")) == r["span"]


def test_categorical_with_category_map_is_distribution_times_pixel_count():
    rng = np.random.default_rng(11)
    da = _raster(rng, integer=True, ascending=False).compute()
    polygons = _polygons(rng, da, 8)
    names = {1: "water", 2: "forest", 3: "crop", 4: "urban", 5: "bare"}
    ref = zonal_stats(
        polygons, da.to_numpy(), affine=da.rio.transform(), nodata=-1, categorical=True,
        category_map=names,
    )  # fmt: skip
    ours = zonal(da, gpd.GeoSeries(polygons, crs=CRS), "distribution", classes=names,
                 weights="center").compute()  # fmt: skip
    counts = ours["distribution"] * ours["pixel_count"]
    for i, r in enumerate(ref):
        got = {
            str(n): round(float(c))
            for n, c in zip(ours["class_name"].to_numpy(), counts[i].to_numpy(), strict=True)
            if c > 0
        }
        assert got == {k: v for k, v in r.items() if k in names.values()}


def test_layers_points_laziness_and_builtin_equivalence():
    da = xr.concat([_grid(), _grid() * 2], dim="time").assign_coords(time=[1, 2])
    da = da.rio.write_nodata(-1)
    geoms = gpd.GeoSeries(
        [shapely.box(0.3, 0.2, 4.6, 3.7), shapely.Point(2.5, 1.5), shapely.box(20, 20, 21, 21)],
        crs=CRS,
    )
    per_layer = lambda a: float(np.nanmax(a))  # noqa: E731  (no axis: called per layer)
    per_layer.__name__ = "top"
    with raise_if_dask_computes():
        lazy = zonal(da.chunk({"x": 2, "y": 2}), geoms, ["max", np.nanmin, per_layer, "min"])
    out = lazy.compute()
    assert out["v"].dims == ("geometry", "time", "zonal_statistics")
    assert out["zonal_statistics"].to_numpy().tolist() == ["max", "min", "nanmin", "top"]
    v = out["v"]
    np.testing.assert_array_equal(v.sel(zonal_statistics="top"), v.sel(zonal_statistics="max"))
    np.testing.assert_array_equal(v.sel(zonal_statistics="nanmin"), v.sel(zonal_statistics="min"))
    assert v.isel(geometry=1).sel(zonal_statistics="top").to_numpy().tolist() == [20.0, 40.0]
    assert np.isnan(v.isel(geometry=2)).all()  # outside: NaN, the function is not called
    eager = zonal(da, geoms, [np.nanmin], eager_cells=10_000)
    assert isinstance(eager["v"].data, np.ndarray)
    np.testing.assert_array_equal(eager["v"][..., 0], v.sel(zonal_statistics="nanmin"))
    only = zonal(da, geoms, np.nanmin).compute()  # a bare callable; no named statistic
    assert only["zonal_statistics"].to_numpy().tolist() == ["nanmin"]
    assert zonal(da, geoms, ("max", np.nanmax))["zonal_statistics"].values.tolist() == [
        "max",
        "nanmax",
    ]  # a tuple of statistics is a list of them, as in xvec
    accessor = da.cas.zonal(geoms, [("lo", np.nanmin)]).compute()
    np.testing.assert_array_equal(accessor["v"][..., 0], v.sel(zonal_statistics="nanmin"))


def test_dataset_variables_each_get_the_reductions():
    ds = xr.Dataset({"a": _grid(), "b": _grid() + 100}).rio.write_crs(CRS)
    out = zonal(
        ds, gpd.GeoSeries([shapely.box(0, 0, 6, 5)], crs=CRS), ["mean", np.nanmax]
    ).compute()
    assert float(out["b"].sel(zonal_statistics="nanmax")[0]) == 129.0
    assert float(out["a"].sel(zonal_statistics="nanmax")[0]) == 29.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stats": [lambda v, c, w, x: 0]}, "4 required arguments"),
        ({"stats": [np.nanmean, np.nanmean]}, "two statistics are named 'nanmean'"),
        ({"stats": ["max", ("max", np.nanmax)]}, "two statistics are named 'max'"),
        ({"stats": [("x", np.nanmax, 3)]}, "must be a dict"),
        ({"stats": [("x", np.nanmax, {}, 1)]}, "tuple of 4 items"),
        ({"stats": [3]}, "stats holds 3"),
        ({"stats": ["mean", "values"]}, "cas_xr.zonal.cells"),
        ({"stats": "mean", "add_stats": {"f": lambda m, props: 0}}, "feature properties"),
        ({"stats": "mean", "add_stats": [np.nanmax]}, "add_stats must be a dict"),
        ({"stats": [max]}, "cannot read the parameters"),
        ({"stats": [("", np.nanmax)]}, "non-empty string"),
    ],
)
def test_bad_reductions_say_what_and_how(kwargs: dict, message: str):
    with pytest.raises(InvalidStatisticError, match=message):
        zonal(_grid(), gpd.GeoSeries([shapely.box(1, 1, 3, 3)], crs=CRS), **kwargs)


def test_wrong_results_and_user_errors_are_reported():
    geoms = gpd.GeoSeries([shapely.box(1, 1, 3, 3)], crs=CRS)

    def pair(values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.stack([values.min(axis=axis), values.max(axis=axis)])

    with pytest.raises(InvalidStatisticError, match="one number per layer"):
        zonal(_grid(), geoms, [pair]).compute()
    with pytest.raises(InvalidStatisticError, match="must return one number"):
        zonal(_grid(), geoms, [lambda v, c: "high"]).compute()

    def broken(values: np.ndarray, coverage: np.ndarray) -> float:
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine") as info:
        zonal(_grid(), geoms, [broken]).compute()
    assert "in reduction 'broken'" in "".join(info.value.__notes__)


def test_reductions_cells_and_points_on_a_distributed_cluster(cluster: Any):
    import distributed

    from cas_xr.zonal import cells, point_query

    da = _raster(np.random.default_rng(3), integer=False, ascending=False)
    geoms = gpd.GeoSeries(_polygons(np.random.default_rng(4), da, 6), crs=CRS)
    points = gpd.GeoSeries(shapely.centroid(geoms.to_numpy()), crs=CRS)
    stats = ["mean", wmean, ("p90", p90), lambda v, c: float(c.sum())]
    lazy = [zonal(da, geoms, stats, chunks=8), cells(da, geoms, chunks=8), point_query(da, points)]
    threaded = [obj.compute(scheduler="threads") for obj in lazy]
    with distributed.Client(cluster) as client:
        remote = client.compute(lazy, sync=True)
    for here, there in zip(threaded, remote, strict=True):
        xr.testing.assert_identical(here.drop_indexes("geometry", errors="ignore"),
                                    there.drop_indexes("geometry", errors="ignore"))  # fmt: skip
