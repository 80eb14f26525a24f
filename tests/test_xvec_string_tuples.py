"""xvec's ``(name, func, kwargs)`` tuples whose ``func`` is a string, in ``stats``.

Reference: xvec's own ``zonal_stats(method="rasterize")`` (xarray's reductions on the
cells whose centre is inside), run live on the same cube; in exact mode, cas_xr's named
statistics (tested against exactextract on their own).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
import xvec  # noqa: F401  (registers .xvec)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cas_xr as cas
from cas_xr.errors import CasError, InvalidArgumentError, InvalidStatisticError
from cas_xr.testing import raise_if_dask_computes
from cas_xr.zonal import zonal
from tests.test_zonal import _polygons, _raster

CRS = "EPSG:32633"

#: Every string xvec passes to xarray that cas_xr computes, with the keywords it honours.
TUPLES: list[Any] = [
    ("m", "mean"),
    ("s", "sum", {"min_count": 0}),
    ("lo", "min", {"skipna": True}),
    ("hi", "max", {}),
    ("med", "median"),
    ("sd", "std", {"ddof": 0}),
    ("v", "var"),
    ("n", "count"),
    ("q25", "quantile", {"q": 0.25}),
    ("Q90", "quantile", {"q": np.float64(0.9), "method": "linear"}),
]
LABELS = [t[0] for t in TUPLES]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), window=st.sampled_from([8, 1000]))
def test_string_tuples_match_xvec(seed: int, window: int):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=False, ascending=False)
    da = da.where(da != da.rio.nodata).astype("float64").rio.write_nodata(np.nan)
    geoms = gpd.GeoSeries(_polygons(rng, da, int(rng.integers(1, 4))), crs=CRS)
    with raise_if_dask_computes():
        lazy = zonal(da, geoms, TUPLES, weights="center", chunks=window)
    ours = lazy.compute()
    assert ours["zonal_statistics"].to_numpy().tolist() == LABELS
    plain = da.compute()
    compared = 0
    for i in range(len(geoms)):
        mask = shapely.contains_xy(geoms.iloc[i], *np.meshgrid(plain.x, plain.y))
        if not mask.any() or mask.all():  # xvec's rasterize fails on both
            continue
        # one call per tuple: xvec 0.5 cannot join two quantiles (a MergeError on their
        # scalar 'quantile' coordinates), nor a quantile and another statistic on a cube
        # with a spatial_ref coordinate, in one call
        ref = [
            plain.xvec.zonal_stats(geoms.iloc[[i]], "x", "y", stats=[t], method="rasterize")
            for t in TUPLES
        ]
        assert [r["zonal_statistics"].item() for r in ref] == LABELS
        theirs = [r.to_numpy().item() for r in ref]
        np.testing.assert_allclose(ours["v"][i], theirs, rtol=1e-9, atol=1e-9, equal_nan=True)
        compared += 1
    assert compared or not np.isfinite(ours["v"].sel(zonal_statistics="m")).any()


def test_in_exact_mode_they_are_the_named_statistics():
    rng = np.random.default_rng(12)
    da = _raster(rng, integer=False, ascending=True)
    weights = da.copy(data=rng.uniform(0.5, 3.0, da.shape)).rio.write_nodata(None)
    geoms = gpd.GeoSeries(_polygons(rng, da, 6), crs=CRS)
    names = ["mean", "sum", "min", "max", "median", "std", "variance", "count", "p25", "p90"]
    asked = [*names, *TUPLES, ("r", "range"), ("w", "weighted_mean"), ("mo", "mode")]
    out = zonal(da, geoms, asked, weights_raster=weights).compute()
    assert out["zonal_statistics"].to_numpy().tolist() == [*names, *LABELS, "r", "w", "mo"]
    v = out["v"].to_numpy()
    np.testing.assert_array_equal(v[:, len(names) : 2 * len(names)], v[:, : len(names)])
    named = zonal(da, geoms, ["range", "weighted_mean", "majority"], weights_raster=weights)
    np.testing.assert_array_equal(v[:, -3:], named.compute()["v"].to_numpy())


def test_order_labels_layers_and_the_accessor():
    da = _grid()
    layered = xr.concat([da, da * 2], dim="time").assign_coords(time=[1, 2])
    geoms = gpd.GeoSeries([shapely.box(0.3, 0.2, 4.6, 3.7), shapely.Point(2.5, 1.5)], crs=CRS)
    out = zonal(layered, geoms, [np.nanmax, ("M", "mean"), "min"]).compute()
    # the named statistics, then the tuples naming one, then the functions
    assert out["zonal_statistics"].to_numpy().tolist() == ["min", "M", "nanmax"]
    assert out["v"].dims == ("geometry", "time", "zonal_statistics")
    mean = zonal(layered, geoms, "mean").compute()["v"][..., 0]
    np.testing.assert_array_equal(out["v"].sel(zonal_statistics="M"), mean)
    only = zonal(layered, geoms, [("M", "mean")])  # no named statistic: the tuple alone
    assert only["zonal_statistics"].to_numpy().tolist() == ["M"]
    np.testing.assert_array_equal(only["v"][..., 0].compute(), mean)
    both = da.cas.zonal(geoms, [("q", "quantile", {"q": 0.5}), np.nanmax], weights="center")
    assert both["zonal_statistics"].to_numpy().tolist() == ["q", "nanmax"]
    ds = xr.Dataset({"a": da, "b": da + 100}).rio.write_crs(CRS)
    per_var = zonal(ds, geoms, [("hi", "max")]).compute()
    assert float(per_var["b"].sel(zonal_statistics="hi")[0]) - 100 == float(per_var["a"][0, 0])


def test_integer_quantiles_follow_quantile_dtype():
    ints = xr.DataArray(
        np.array([[1, 2, 3, 4], [9, 9, 9, 9]], dtype="int16"), dims=("y", "x"),
        coords={"y": [1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]}, name="v",
    ).rio.write_crs(CRS)  # fmt: skip
    row = gpd.GeoSeries([shapely.box(0, 1, 4, 2)], crs=CRS)
    asked = [("med", "median"), ("q", "quantile", {"q": 0.25})]
    assert zonal(ints, row, asked).compute()["v"][0].to_numpy().tolist() == [2.5, 1.75]
    rounded = zonal(ints, row, asked, quantile_dtype="raster").compute()
    assert rounded["v"][0].to_numpy().tolist() == [2.0, 1.0]


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")  # the nodata cell
def test_extract_table_and_cube_take_them():
    cas.configure(progress=False)
    da, frame = (
        _grid(),
        gpd.GeoDataFrame(
            {"name": ["a", "b"]},
            geometry=[shapely.box(0.3, 0.2, 4.6, 3.7), shapely.box(1, 1, 3, 3)],
            crs=CRS,
        ),
    )
    asked = ["mean", ("q90", "quantile", {"q": 0.9}), np.nanmax, ("sd", "std")]
    expected = zonal(da, frame, asked).compute()
    labels = ["mean", "q90", "sd", "nanmax"]
    assert expected["zonal_statistics"].to_numpy().tolist() == labels
    table = cas.extract_table(frame, [{"v": da}], aggregation=asked)
    for k, label in enumerate(labels):
        np.testing.assert_allclose(table[f"v_{label}"], expected["v"][:, k], rtol=1e-12)
    cube = cas.extract_cube(frame, [{"v": da}], aggregation=[("q90", "quantile", {"q": 0.9})])
    assert cube["zonal_statistics"].to_numpy().tolist() == ["q90"]
    np.testing.assert_allclose(cube["v"].to_numpy()[:, 0], expected["v"][:, 1], rtol=1e-12)
    with pytest.raises(InvalidStatisticError, match="ddof=1"):
        cas.extract_table(frame, [{"v": da}], aggregation=[("sd", "std", {"ddof": 1})])
    with pytest.raises(InvalidArgumentError, match="pixel_count"):  # a column of the table
        cas.extract_table(frame, [{"v": da}], aggregation=[("pixel_count", "count")])


@pytest.mark.filterwarnings("ignore::cas_xr.errors.QualityWarning")  # the nodata cell
def test_tuples_naming_a_statistic_are_cached_by_label_and_statistic():
    cas.configure(progress=False)
    da = _grid()
    frame = gpd.GeoDataFrame(geometry=[shapely.box(0.3, 0.2, 4.6, 3.7)], crs=CRS)

    def table(stats: list[Any]) -> Any:
        return cas.extract_table(frame, [{"v": da}], aggregation=stats)

    def summary(t: Any) -> tuple[int, int]:
        s = t.attrs["cas_xr"]["summary"]
        return s["computed"], s["cached"]

    q90 = table([("q", "quantile", {"q": 0.9})])
    assert summary(q90) == (1, 0)
    assert summary(table([("q", "quantile", {"q": 0.9})])) == (0, 1)  # the same: a hit
    q10 = table([("q", "quantile", {"q": 0.1})])  # same label, other statistic: computed
    assert summary(q10) == (1, 0)
    assert q10["v_q"].iloc[0] < q90["v_q"].iloc[0]
    assert summary(table([("r", "quantile", {"q": 0.9})])) == (1, 0)  # other label
    assert summary(table([("q", "quantile", {"q": 0.9}), np.nanmax])) == (1, 0)  # a function


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (("sd", "std", {"ddof": 1}), r"ddof=1 to 'std'.*population.*np\.nanstd"),
        (("v", "var", {"ddof": 1.0}), r"ddof=1\.0"),
        (("m", "mean", {"skipna": False}), r"skipna=False.*missing cells out.*np\.mean, \{\}"),
        (("s", "sum", {"min_count": 1}), r"min_count=1.*pixel_count > 0"),
        (("q", "quantile", {"q": 0.9, "method": "nearest"}), r"method='nearest'.*linear"),
        (("q", "quantile", {"q": 0.9, "interpolation": "lower"}), r"interpolation='lower'"),
        (("q", "quantile", {}), "without q"),
        (("q", "quantile", {"q": [0.1, 0.9]}), "one quantile per tuple"),
        (("q", "quantile", {"q": 90}), "from 0 to 1"),
        (("q", "quantile", {"q": float("nan")}), "from 0 to 1"),
        (("q", "quantile", {"q": True}), "from 0 to 1"),
        (("m", "mean", {"dim": "x"}), r"dim= to 'mean'.*takes skipna"),
        (("m", "mean", {"keep_attrs": False}), "keep_attrs="),
        (("n", "count", {"skipna": True}), "no keyword arguments"),
        (("p", "prod"), r"does not compute.*np\.nanprod"),
        (("p", "nanmean"), "does not compute"),
        (("d", "distribution"), "along 'class'"),
        (("d", "frac"), "along 'class'"),
        (("x", "p90", {"q": 1}), "takes no keyword arguments"),
        (("x", "p101"), "outside 0..1"),
        (("", "mean"), "non-empty string"),
        (("x", "mean", [1]), "must be a dict"),
    ],
)
def test_what_cannot_be_honoured_raises(item: tuple[Any, ...], message: str):
    geoms = gpd.GeoSeries([shapely.box(1, 1, 3, 3)], crs=CRS)
    with pytest.raises(InvalidStatisticError, match=message) as info:
        zonal(_grid(), geoms, ["mean", item])
    assert isinstance(info.value, CasError) and isinstance(info.value, ValueError)


def test_other_misspellings_say_how():
    geoms = gpd.GeoSeries([shapely.box(1, 1, 3, 3)], crs=CRS)
    with pytest.raises(InvalidStatisticError, match=r"\('q90', 'quantile', \{'q': 0.9\}\)"):
        zonal(_grid(), geoms, "quantile")  # xvec's stats="quantile" with q=0.9 aside
    with pytest.raises(InvalidStatisticError, match="goes in a list"):
        zonal(_grid(), geoms, ("q90", "quantile", {"q": 0.9}))
    with pytest.raises(InvalidStatisticError, match="two statistics are named 'MEAN'"):
        zonal(_grid(), geoms, ["mean", ("MEAN", "max")])
    with pytest.raises(InvalidStatisticError, match="is the string 'max'"):
        zonal(_grid(), geoms, "mean", add_stats={"top": "max"})  # type: ignore[dict-item]
    with pytest.raises(InvalidStatisticError, match="pass weights_raster="):
        zonal(_grid(), geoms, [("w", "weighted_mean")])


def _grid() -> xr.DataArray:
    data = np.arange(30, dtype="float64").reshape(5, 6)
    data[2, 2] = -1
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": 4.5 - np.arange(5), "x": 0.5 + np.arange(6)}, name="v"
    )
    return da.rio.write_crs(CRS).rio.write_nodata(-1)
