"""Statistics and options of exactextract and rasterstats: live parity, and the divergences.

Random rasters (integer and float, nodata and NaN, north-up and south-up), weights rasters
on the same grid (with their own nodata and NaN), overlapping polygons with holes and
several parts: every exactextract statistic and option cas_xr offers agrees with
exactextract 0.3 to 1e-6 (relative), and rasterstats' statistics agree in its centre and
all_touched modes. The documented divergences (docs/statistics.md) have tests of their own.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rasterstats import zonal_stats

from cas_xr import errors
from cas_xr.zonal import zonal
from tests.test_zonal import _polygons

UTM = "EPSG:32633"
NODATA = -9999.0
#: exactextract keeps or drops cells covered by less than this (it stores coverage as
#: float32): statistics that such a cell can move by more than its weight (min, max,
#: positions, quantiles, variety, minority) are compared only for polygons without one.
SLIVER = 1e-7
#: cas_xr name -> exactextract operation (the numbers must agree).
EXACTEXTRACT = {
    "count": "count", "sum": "sum", "mean": "mean", "variance": "variance", "stdev": "stdev",
    "coefficient_of_variation": "coefficient_of_variation", "weighted_mean": "weighted_mean",
    "weighted_sum": "weighted_sum", "weighted_stdev": "weighted_stdev",
    "weighted_variance": "weighted_variance",
}  # fmt: skip
#: Statistics a sliver cell moves by more than its weight.
EXTREMES = {
    "min": "min", "max": "max", "min_center_x": "min_center_x",
    "min_center_y": "min_center_y", "max_center_x": "max_center_x",
    "max_center_y": "max_center_y", "median": "median", "quantile(q=0.1)": "quantile(q=0.1)",
    "p90": "quantile(q=0.9)", "variety": "variety", "minority": "minority",
}  # fmt: skip
OPTIONS = [
    {},
    {"min_coverage_frac": 0.37},
    {"coverage_weight": "none"},
    {"coverage_weight": "area_cartesian"},
    {"default_value": 3},
    {"default_weight": 0.5},
    {"default_value": 2, "default_weight": 2.0, "coverage_weight": "none"},
    {"min_coverage_frac": 0.6, "coverage_weight": "area_cartesian", "default_weight": 0.0},
]


def _grid(rng: np.random.Generator, ascending: bool, data: np.ndarray, nodata: float) -> Any:
    ny, nx = data.shape
    res = float(rng.choice([1.0, 0.5, 30.0]))
    x0, y_top = float(rng.uniform(-1000, 1000)), float(rng.uniform(-1000, 1000))
    ys = y_top - res * (np.arange(ny) + 0.5)
    xs = x0 + res * (np.arange(nx) + 0.5)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": ys, "x": xs}, name="v")
    if ascending:
        da = da.isel(y=slice(None, None, -1))
    return da.rio.write_crs(UTM).rio.write_nodata(nodata)


def _rasters(rng: np.random.Generator, integer: bool, ascending: bool) -> tuple[Any, Any]:
    """Values (int16 codes 1..5 or float32) and a weights raster on the same grid."""
    ny, nx = rng.integers(6, 30, size=2)
    if integer:
        data = rng.integers(1, 6, size=(ny, nx)).astype("int16")
        data[rng.random((ny, nx)) < 0.1] = -1
        values = _grid(rng, ascending, data, -1)
    else:
        data = rng.normal(100, 20, size=(ny, nx)).astype("float32")
        data[rng.random((ny, nx)) < 0.05] = NODATA
        data[rng.random((ny, nx)) < 0.05] = np.nan
        values = _grid(rng, ascending, data, NODATA)
    weights = rng.uniform(0, 3, size=(ny, nx))
    weights[rng.random((ny, nx)) < 0.03] = -5.0
    weights[rng.random((ny, nx)) < 0.03] = np.nan
    weights_da = values.copy(data=weights).rio.write_nodata(-5.0)
    chunk = int(rng.integers(3, 12))
    return values.chunk({"y": chunk, "x": chunk}), weights_da


def _source(da: xr.DataArray) -> NumPyRasterSource:
    north_up = da if float(da.y[0]) > float(da.y[-1]) else da.isel(y=slice(None, None, -1))
    t = north_up.rio.transform()
    arr = np.asarray(north_up.values)
    ny, nx = arr.shape
    return NumPyRasterSource(
        arr, t.c, t.f + ny * t.e, t.c + nx * t.a, t.f, nodata=arr.dtype.type(da.rio.nodata)
    )


def _exactextract(
    da: xr.DataArray, weights: xr.DataArray, polygons: list[Any], ops: dict[str, str], opts: dict
) -> list[dict[str, Any]]:
    args = ",".join(f"{k}={v}" for k, v in opts.items())
    named = []
    for k, op in enumerate(ops.values()):
        if args:
            op = f"{op[:-1]},{args})" if op.endswith(")") else f"{op}({args})"
        named.append(f"s{k}={op}")
    feats = [
        {"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in polygons
    ]
    out = exact_extract(_source(da), feats, named, weights=_source(weights), output="geojson")
    # exactextract appends the percentile to a quantile's name: s3=quantile(q=0.9) -> s3_90
    return [
        {label: next(v for n, v in r["properties"].items() if n.split("_")[0] == f"s{k}")
         for k, label in enumerate(ops)}
        for r in out
    ]  # fmt: skip


def _covers(da: xr.DataArray, polygon: Any) -> np.ndarray:
    """Every cell's covered fraction (shapely's areas), in the raster's layout."""
    res = abs(float(da.x[1] - da.x[0]))
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    cells = shapely.box(xx - res / 2, yy - res / 2, xx + res / 2, yy + res / 2)
    return shapely.area(shapely.intersection(cells, polygon)) / res**2


def _close(got: float, expected: Any, scale: float, what: Any) -> None:
    expected = np.nan if expected is None else float(expected)
    if np.isnan(expected):
        assert np.isnan(got), what
    else:
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-6 * scale), what


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    integer=st.booleans(),
    ascending=st.booleans(),
    options=st.sampled_from(OPTIONS),
)
def test_statistics_and_options_match_exactextract(
    seed: int, integer: bool, ascending: bool, options: dict
):
    rng = np.random.default_rng(seed)
    da, weights = _rasters(rng, integer, ascending)
    polygons = _polygons(rng, da, int(rng.integers(1, 6)))
    names = [*EXACTEXTRACT, *EXTREMES, "range", "frac", "weighted_frac"]
    result = zonal(
        da, gpd.GeoSeries(polygons, crs=UTM), names, weights_raster=weights,
        classes=[1, 2, 3, 4, 5] if integer else [], quantile_dtype="raster", **options,
    ).compute()  # fmt: skip
    ops = {**EXACTEXTRACT, **EXTREMES, "frac": "frac", "weighted_frac": "weighted_frac"}
    ops["unique"] = "unique"
    reference = _exactextract(da, weights, polygons, ops, options)
    threshold = options.get("min_coverage_frac", 0.0)
    for i, ref in enumerate(reference):
        covers = _covers(da, polygons[i])
        if np.any(np.abs(covers - threshold)[covers > 0] < 1e-6):
            continue  # a cell at the threshold, to float32 precision: kept or dropped
        row = result["v"].isel(geometry=i)
        got = {
            str(k): float(v)
            for k, v in zip(row["zonal_statistics"].values, row.values, strict=True)
        }
        values = np.asarray(da.values, dtype=np.float64)
        scale = float(np.nanmax(np.abs(np.where(values == da.rio.nodata, 0, values)))) + 1
        scale *= 900.0 if options.get("coverage_weight") == "area_cartesian" else 1.0
        for name in EXACTEXTRACT:
            _close(got[name], ref[name], scale * 10, (name, i, options))
        if np.any((covers > 0) & (covers < SLIVER)):
            continue
        for name in EXTREMES:
            if name == "variety" and ref[name] == 0:  # no valid cell: NaN, as every statistic
                assert np.isnan(got[name])  # but count and sum (a documented difference)
                continue
            _close(got[name], ref[name], scale, (name, i, options))
        if not np.isnan(got["max"]):
            assert got["range"] == pytest.approx(got["max"] - got["min"])
        if integer:  # frac and weighted_frac list the distinct values in `unique`
            codes = np.asarray(ref["unique"]).tolist()
            for output, op in (
                ("distribution", "frac"),
                ("weighted_distribution", "weighted_frac"),
            ):
                shares = dict(zip(codes, np.asarray(ref[op]).tolist(), strict=True))
                ours = result[output].isel(geometry=i).values
                for k, code in enumerate(result["class"].values.tolist()):
                    absent = np.nan if np.isnan(list(shares.values())).any() else 0.0
                    _close(float(ours[k]), shares.get(code, absent), 1.0, (output, code, i))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), unit=st.sampled_from(["m2", "km2"]))
def test_spherical_coverage_weight_matches_exactextract(seed: int, unit: str):
    rng = np.random.default_rng(seed)
    ny, nx = rng.integers(5, 20, size=2)
    data = rng.normal(10, 3, size=(ny, nx))
    data[rng.random((ny, nx)) < 0.1] = NODATA
    ys, xs = 70 - 3.0 * (np.arange(ny) + 0.5), -20 + 3.0 * (np.arange(nx) + 0.5)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": ys, "x": xs}, name="v")
    da = da.rio.write_crs("EPSG:4326").rio.write_nodata(NODATA)
    polygons = _polygons(rng, da, 3)
    ops = {"count": "count", "sum": "sum", "mean": "mean", "stdev": "stdev"}
    opts = {"coverage_weight": f"area_spherical_{unit}"}
    reference = _exactextract(da, da, polygons, ops, opts)
    result = zonal(da, gpd.GeoSeries(polygons, crs="EPSG:4326"), list(ops), **opts).compute()
    for i, ref in enumerate(reference):
        for k, name in enumerate(ops):
            # exactextract's float32 coverage: 1e-7 of a cell's area, relative to the sum
            _close(float(result["v"][i, k]), ref[name], float(ref["count"]) * 1e-1 + 1, name)


# -- the divergences (docs/statistics.md, "Differences from exactextract and rasterstats")


def _small(values: list[list[int]], dtype: str = "int16") -> xr.DataArray:
    data = np.array(values, dtype=dtype)
    ny, nx = data.shape
    coords = {"y": np.arange(ny)[::-1] + 0.5, "x": np.arange(nx) + 0.5}
    return xr.DataArray(data, dims=("y", "x"), coords=coords, name="v").rio.write_crs(UTM)


def _both(da: xr.DataArray, polygon: Any, ours: list[str], ops: list[str], **kw: Any) -> tuple:
    got = zonal(da, gpd.GeoSeries([polygon], crs=UTM), ours, **kw).compute()["v"].values[0]
    feats = [{"type": "Feature", "properties": {}, "geometry": polygon.__geo_interface__}]
    named = [f"s{k}={op}" for k, op in enumerate(ops)]
    ref = exact_extract(_source(da.rio.write_nodata(-1)), feats, named, output="geojson")
    props = ref[0]["properties"]
    return got.tolist(), [
        next(v for n, v in props.items() if n.split("_")[0] == f"s{k}") for k in range(len(ops))
    ]


def test_integer_quantiles_interpolate_unless_asked_in_the_raster_dtype():
    da = _small([[1, 2, 3, 4], [9, 9, 9, 9]])
    box = shapely.box(0, 1, 4, 2)  # the first row
    (median, p25), (ee_median, ee_p25) = _both(
        da, box, ["median", "p25"], ["median", "quantile(q=0.25)"]
    )
    assert (median, p25) == (2.5, 1.75)  # numpy's for 1, 2, 3, 4
    assert (ee_median, ee_p25) == (2, 1)  # exactextract: in the raster's type, rounded down
    raster, _ = _both(da, box, ["median", "p25"], ["median"], quantile_dtype="raster")
    assert raster == [2.0, 1.0]
    negative = _small([[-4, -3, -2, -1], [9, 9, 9, 9]])
    got, ref = _both(negative, box, ["median"], ["median"], quantile_dtype="raster")
    assert got == [-3.0] and ref == [-3]  # down, not towards zero: -2.5 -> -3
    floats, _ = _both(da.astype("float32"), box, ["median"], ["median"], quantile_dtype="raster")
    assert floats == [2.5]  # a float raster is never rounded


def test_mode_ties_go_to_the_smallest_code_where_exactextract_takes_the_largest():
    da = _small([[1, 1, 3], [3, 5, 2], [2, 1, 4]])
    box = shapely.box(0, 1, 3, 3)  # the top two rows: 1 and 3 cover 2 cells each, 5 and 2 one
    got, ref = _both(da, box, ["majority", "mode", "minority"], ["mode", "majority", "minority"])
    assert got == [1.0, 1.0, 2.0]  # CONTRACT: ties go to the smallest code
    assert ref == [3, 3, 2]  # exactextract: mode to the largest, minority to the smallest


def test_centre_mode_quantiles_pool_equal_values_unlike_numpy():
    da = _small([[1, 1, 2], [9, 9, 9]], dtype="float32")
    box = shapely.box(0, 1, 3, 2)  # the first row
    got = zonal(da, gpd.GeoSeries([box], crs=UTM), ["median", "p25"], weights="center")
    median, p25 = got.compute()["v"].values[0].tolist()
    # pooled: 1 (weight 2), 2 (weight 1); positions s = 0, 1*1 + 2*2 = 3; h = 1.5 -> 1.5
    assert median == 1.5 and np.median([1, 1, 2]) == 1.0
    assert p25 == pytest.approx(1.25) and np.percentile([1, 1, 2], 25) == 1.0
    # with distinct values they are numpy's
    distinct = da.copy(data=np.array([[1.0, 2.0, 4.0], [9, 9, 9]], "float32"))
    numpy_like = zonal(distinct, gpd.GeoSeries([box], crs=UTM), ["median"], weights="center")
    assert float(numpy_like.compute()["v"][0, 0]) == 2.0


def test_counts_of_nodata_and_nan_cells_by_their_weight():
    data = np.array([[1.0, -1.0, np.nan], [np.nan, 5.0, -1.0]], dtype="float32")
    da = _small(data.tolist(), dtype="float32").rio.write_nodata(-1.0)
    box = shapely.box(0.5, 0, 3, 2)  # half of the first column
    got = zonal(
        da, gpd.GeoSeries([box], crs=UTM), ["nodata_count", "nan_count", "count", "nodata", "nan"]
    )
    assert got.compute()["v"].values[0].tolist() == [2.0, 1.5, 1.5, 2.0, 1.5]
    packed = da.astype("float64")
    packed.attrs.update(scale_factor=2.0, missing_value=-1.0)  # decoded: markers become NaN
    packed.encoding["dtype"] = "int16"  # read masked from a file: still packed
    again = zonal(packed, gpd.GeoSeries([box], crs=UTM), ["nodata_count", "nan_count"])
    assert again.compute()["v"].values[0].tolist() == [2.0, 1.5]


# -- rasterstats (live), centre and all_touched modes

RASTERSTATS = [
    "count", "min", "max", "mean", "sum", "std", "median", "range", "nodata", "nan",
    "percentile_10", "percentile_90",
]  # fmt: skip
CATEGORICAL = ["majority", "minority", "unique", "count", "nodata"]


def _inside(rng: np.random.Generator, da: xr.DataArray, n: int) -> list[Any]:
    """Polygons (with holes, several parts) inside the raster: rasterstats reads beyond it
    as nodata, which cas_xr does not count (see the docs)."""
    res = abs(float(da.x[1] - da.x[0]))
    frame = shapely.box(
        float(da.x.min()) - res / 2 + 1e-3 * res, float(da.y.min()) - res / 2 + 1e-3 * res,
        float(da.x.max()) + res / 2 - 1e-3 * res, float(da.y.max()) + res / 2 - 1e-3 * res,
    )  # fmt: skip
    out = []
    for polygon in _polygons(rng, da, n):
        part = shapely.intersection(polygon, frame)
        if part.geom_type in ("Polygon", "MultiPolygon") and part.area > 0:
            out.append(part)
    return out


def _same_touched_cells(da: xr.DataArray, polygons: list[Any]) -> bool:
    """Whether GDAL's ``all_touched`` takes the cells cas_xr's does (those of positive area).

    GDAL also takes a cell that a polygon only touches along an edge or at a corner, as
    the docs say (the polygons here may have edges on grid lines); there the two differ.
    """
    ones = xr.ones_like(da, dtype="float64").rio.write_nodata(None)
    ours = zonal(ones, gpd.GeoSeries(polygons, crs=UTM), ["count"], weights="all_touched")
    gdal = zonal_stats(
        polygons, np.ones(da.shape), affine=da.rio.transform(), stats=["count"], all_touched=True
    )
    return ours.compute()["v"].values[:, 0].tolist() == [float(r["count"]) for r in gdal]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    integer=st.booleans(),
    mode=st.sampled_from(["center", "all_touched"]),
)
def test_rasterstats_statistics_match_in_centre_and_all_touched_modes(
    seed: int, integer: bool, mode: str
):
    rng = np.random.default_rng(seed)
    da, _ = _rasters(rng, integer, ascending=False)
    da = da.compute()
    polygons = _inside(rng, da, int(rng.integers(1, 6)))
    if not polygons:
        return
    stats = CATEGORICAL if integer else RASTERSTATS
    t = da.rio.transform()
    if mode == "all_touched":  # GDAL's cells along an edge on a grid line: not compared
        assume(_same_touched_cells(da, polygons))
    reference = zonal_stats(
        polygons, np.asarray(da.values), affine=t, nodata=float(da.rio.nodata), stats=stats,
        all_touched=mode == "all_touched",
    )  # fmt: skip
    got = zonal(da, gpd.GeoSeries(polygons, crs=UTM), stats, weights=mode).compute()
    for i, ref in enumerate(reference):
        row = got["v"].isel(geometry=i).values
        for k, name in enumerate(stats):
            expected = ref[name]
            if ref["count"] == 0 and name in ("sum", "nodata", "nan"):
                # no cell selected: rasterstats gives None (sum) or NaN (its counts of a
                # fully masked array); cas_xr 0, as exactextract's sum
                assert row[k] == (expected if expected == expected and expected else 0)
            else:
                _close(float(row[k]), expected, 200.0, (name, i, mode))


def test_weights_keyword_is_the_mode_and_names_weights_raster():
    da = _small([[1, 2], [3, 4]])
    box = gpd.GeoSeries([shapely.box(0, 0, 2, 1)], crs=UTM)
    with pytest.raises(errors.ArgumentTypeError, match="weights_raster="):
        zonal(da, box, ["mean"], weights=da)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidStatisticError, match="weights_raster="):
        zonal(da, box, ["weighted_mean"])
    with pytest.raises(errors.InvalidArgumentError, match="area_weighted"):
        zonal(da, box, ["sum"], coverage_weight="area_cartesian", area_weighted=True)
    with pytest.raises(errors.InvalidArgumentError, match="coverage_weight must be one of"):
        zonal(da, box, ["sum"], coverage_weight="area")
    with pytest.raises(errors.InvalidArgumentError, match="geographic"):
        zonal(da, box, ["sum"], coverage_weight="area_spherical_m2")
    with pytest.raises(errors.InvalidArgumentError, match="min_coverage_frac"):
        zonal(da, box, ["sum"], min_coverage_frac=1.5)
    with pytest.raises(errors.InvalidStatisticError, match="outside 0..1"):
        zonal(da, box, ["p101"])
    shifted = da.assign_coords(x=da.x + 0.5)
    with pytest.raises(errors.InvalidArgumentError, match="not on the grid"):
        zonal(da, box, ["weighted_mean"], weights_raster=shifted)


def test_extract_table_and_cube_take_every_name_zonal_takes():
    import warnings

    import cas_xr as cas

    rng = np.random.default_rng(3)
    da, _ = _rasters(rng, integer=True, ascending=False)
    da = da.compute().rio.write_nodata(-1)
    da.attrs["flag_values"] = [1, 2, 3, 4, 5]
    polygons = _inside(rng, da, 4)
    frame = gpd.GeoDataFrame(geometry=polygons, crs=UTM)
    names = ["variance", "stdev", "p100", "quantile(q=0.9)", "range", "nodata", "mode", "frac"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.CasWarning)  # quality flags of partial cover
        table = cas.extract_table(frame, [{"c": da}], aggregation=names)
        cube = cas.extract_cube(frame, [{"c": da}], aggregation=names)
    direct = zonal(da, frame.geometry, names, classes=[1, 2, 3, 4, 5]).compute()
    for k, name in enumerate(n for n in names if n != "frac"):
        np.testing.assert_allclose(table[f"c_{name}"], direct["v"].values[:, k], rtol=1e-12)
    for k, code in enumerate((1, 2, 3, 4, 5)):  # frac is the distribution
        expected = direct["distribution"].values[:, k]
        np.testing.assert_allclose(table[f"c_distribution_{code}"], expected, rtol=1e-12)
        in_cube = cube["c_distribution"].sel(c_class=code).values
        np.testing.assert_allclose(in_cube, expected, rtol=1e-12)
    with pytest.raises(errors.InvalidArgumentError, match="weights raster"):
        cas.extract_table(frame, [{"c": da}], aggregation=["weighted_mean"])


def test_points_and_layers_take_the_new_statistics_and_options():
    nodata = -1.0
    values = np.array([[1.0, nodata, np.nan], [4.0, 0.0, 6.0]], dtype="float32")
    da = _small(values.tolist(), dtype="float32").rio.write_nodata(nodata)
    weights = da.copy(data=np.array([[2.0, 1.0, 1.0], [np.nan, 3.0, 3.0]]))
    points = gpd.GeoSeries.from_xy([0.5, 1.5, 2.5, 0.5, 1.5], [1.5, 1.5, 1.5, 0.5, 0.5], crs=UTM)
    names = [
        "nodata_count", "nan_count", "min_center_x", "max_center_y", "variance",
        "coefficient_of_variation", "weighted_mean", "weighted_sum", "count", "sum",
    ]  # fmt: skip
    got = zonal(da, points, names, weights_raster=weights, coverage_weight="area_cartesian")
    rows = got.compute()["v"].values
    nan = np.nan
    expected = [
        [0, 0, 0.5, 1.5, 0, 0, 1, 2, 1, 1],  # 1, weight 2
        [1, 0, nan, nan, nan, nan, nan, 0, 0, 0],  # nodata
        [0, 1, nan, nan, nan, nan, nan, 0, 0, 0],  # NaN
        [0, 0, 0.5, 0.5, 0, 0, nan, nan, 1, 4],  # 4, weight NaN: weighted_* undefined
        [0, 0, 1.5, 0.5, 0, nan, 0, 0, 1, 0],  # 0: its coefficient of variation is 0/0
    ]
    np.testing.assert_array_equal(rows, np.array(expected, dtype=float))
    filled = zonal(da, points, ["mean", "weighted_mean"], weights_raster=weights,
                   default_value=9, default_weight=0.5).compute()["v"].values  # fmt: skip
    np.testing.assert_array_equal(filled[:, 0], [1, 9, 9, 4, 0])
    np.testing.assert_array_equal(filled[:, 1], [1, 9, 9, 4, 0])
    # a time axis: one weights layer for every step, or one per step; via the accessor
    doubled = da.copy(data=np.where(values == nodata, nodata, values * 2))
    cube = xr.concat([da, doubled], dim="time").assign_coords(time=[1, 2])
    box = gpd.GeoSeries([shapely.box(0, 0, 3, 2)], crs=UTM)
    per_step = xr.concat([weights, weights * 0 + 1], dim="time")
    for w, step2 in ((weights, 2 * 20 / 8), (per_step, (2 + 0 + 12) / 3)):
        out = cube.cas.zonal(box, ["weighted_mean"], weights_raster=w, default_weight=0)
        first, second = out.compute()["v"].values[0, :, 0]
        assert first == pytest.approx((1 * 2 + 4 * 0 + 0 * 3 + 6 * 3) / 8)
        assert second == pytest.approx(step2)
