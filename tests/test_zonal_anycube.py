"""zonal() on any raster cube: dims in any order and under any usual name, CF packing,
64-bit nodata, the antimeridian, 0..360 longitudes, and errors that say what to do."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rioxarray
import shapely
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from rasterio.transform import from_origin

from cas_xr import errors
from cas_xr.models import AttributeRequest, crosses_antimeridian
from cas_xr.testing import raise_if_dask_computes
from cas_xr.zonal import zonal

STATS = ["mean", "sum", "count", "min", "max", "median"]
EE = {"mean": "mean", "sum": "sum", "count": "count", "min": "min", "max": "max",
      "median": "median"}  # fmt: skip
UTM = "EPSG:32633"


def _features(geoms: list[shapely.Geometry]) -> list[dict]:
    return [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in geoms]


def _exactextract(da: xr.DataArray, geoms: list[shapely.Geometry], nodata: object) -> list[dict]:
    """exactextract on a north-up (y, x) DataArray held in memory."""
    t = da.rio.transform()
    arr = np.asarray(da.values)
    ny, nx = arr.shape
    src = NumPyRasterSource(arr, t.c, t.f + ny * t.e, t.c + nx * t.a, t.f, nodata=nodata)
    return [r["properties"] for r in exact_extract(src, _features(geoms), list(EE.values()))]


def _cube() -> xr.DataArray:
    """A (time, band, y, x) float cube with nodata and NaN, chunked."""
    rng = np.random.default_rng(42)
    data = rng.normal(0.5, 0.2, size=(2, 3, 14, 17))
    data[rng.random(data.shape) < 0.05] = -9999.0
    data[rng.random(data.shape) < 0.05] = np.nan
    da = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[ns]"),
            "band": [1, 2, 3],
            "y": 14.0 - np.arange(14) - 0.5,
            "x": np.arange(17) + 0.5,
        },
        name="v",
    )
    return da.rio.write_crs(UTM).rio.write_nodata(-9999.0).chunk({"y": 5, "x": 6})


POLYGONS = [
    shapely.box(1.3, 2.2, 9.7, 11.4),
    shapely.Point(8, 7).buffer(4.3, quad_segs=5),
    shapely.box(12.1, 0.4, 16.6, 6.9),
    shapely.Point(4.5, 3.5),
]


def _canonical(result: xr.Dataset) -> xr.DataArray:
    return result["v"].transpose("geometry", "time", "band", "zonal_statistics")


def test_every_order_of_time_band_y_x_gives_the_same_numbers():
    cube = _cube()
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    expected = _canonical(zonal(cube, geoms, STATS).compute())
    for order in itertools.permutations(("time", "band", "y", "x")):
        permuted = cube.transpose(*order)
        with raise_if_dask_computes():  # transposing stays lazy
            lazy = zonal(permuted, geoms, STATS)
        lead = [d for d in order if d not in ("y", "x")]
        assert lazy["v"].dims == ("geometry", *lead, "zonal_statistics"), order
        xr.testing.assert_identical(_canonical(lazy.compute()), expected)
    # and the numbers are exactextract's, layer by layer
    layer = cube.isel(time=1, band=2).compute()
    for i, ref in enumerate(_exactextract(layer, POLYGONS[:3], -9999.0)):
        for name in STATS:
            got = float(expected.isel(geometry=i, time=1, band=2).sel(zonal_statistics=name))
            assert got == pytest.approx(ref[EE[name]], rel=1e-6), (i, name)


def test_a_dataset_with_variables_in_different_orders():
    cube = _cube()
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    expected = _canonical(zonal(cube, geoms, STATS).compute())
    ds = xr.Dataset(
        {
            "a": cube.transpose("x", "time", "y", "band"),
            "b": cube.transpose("band", "y", "x", "time"),
        }
    ).rename(x="lon", y="lat")
    with raise_if_dask_computes():
        lazy = zonal(ds, geoms, STATS)
    result = lazy.compute()
    for name in ("a", "b"):
        got = result[name].transpose("geometry", "time", "band", "zonal_statistics")
        xr.testing.assert_identical(got.rename(name), expected.rename(name))


def test_an_x_y_ordered_array_is_not_read_as_y_x():
    layer = _cube().isel(time=0, band=0).drop_vars(["time", "band"])
    polygon = [shapely.box(0.5, 0.5, 16.5, 7.2)]
    truth = _exactextract(layer.compute(), polygon, -9999.0)[0]["mean"]
    got = zonal(layer.transpose("x", "y"), polygon, ["mean"], crs=UTM).compute()
    assert float(got["v"][0, 0]) == pytest.approx(truth, rel=1e-9)


@pytest.mark.parametrize(
    ("y", "x"), [("lat", "lon"), ("latitude", "longitude"), ("northing", "easting")]
)
def test_named_spatial_dims(y: str, x: str):
    cube = _cube()
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    expected = zonal(cube, geoms, STATS).compute()
    renamed = cube.rename(y=y, x=x).transpose("band", x, "time", y)
    given = {"x_dim": x, "y_dim": y} if y == "northing" else {}
    got = zonal(renamed, geoms, STATS, **given).compute()
    xr.testing.assert_identical(_canonical(got), _canonical(expected))
    by_accessor = renamed.cas.zonal(geoms, STATS, **given).compute()
    xr.testing.assert_identical(_canonical(by_accessor), _canonical(expected))


def test_spatial_dims_from_rioxarray_and_cf_metadata():
    cube = _cube().isel(time=0, band=0, drop=True)
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    expected = zonal(cube, geoms, ["mean"]).compute()["v"]
    renamed = cube.rename(y="row", x="col")
    by_rio = renamed.rio.set_spatial_dims(x_dim="col", y_dim="row")
    xr.testing.assert_identical(zonal(by_rio, geoms, ["mean"]).compute()["v"], expected)
    by_axis = renamed.assign_coords(
        col=renamed["col"].assign_attrs(axis="X"), row=renamed["row"].assign_attrs(axis="Y")
    )
    xr.testing.assert_identical(zonal(by_axis, geoms, ["mean"]).compute()["v"], expected)
    # CF units on a lon/lat grid under neutral names
    ll = cube.rio.write_crs("EPSG:4326", inplace=False).rename(y="j", x="i")
    ll = ll.assign_coords(
        i=ll["i"].assign_attrs(units="degrees_east"), j=ll["j"].assign_attrs(units="degrees_north")
    )
    plain = zonal(cube.rio.write_crs("EPSG:4326"), POLYGONS, ["mean"], crs="EPSG:4326")
    by_units = zonal(ll.transpose("i", "j"), POLYGONS, ["mean"], crs="EPSG:4326")
    xr.testing.assert_identical(by_units.compute()["v"], plain.compute()["v"])


def test_a_cube_without_recognisable_dims_or_crs_gets_a_cas_error():
    cube = _cube().rename(y="row", x="col")
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    with pytest.raises(errors.MissingDimensionError) as caught:
        zonal(cube, geoms)
    message = str(caught.value)
    assert all(d in message for d in ("time", "band", "row", "col", "x_dim=", "y_dim="))
    assert isinstance(caught.value, errors.CasError) and isinstance(caught.value, ValueError)
    with pytest.raises(errors.MissingDimensionError, match="'cols' is not a dimension"):
        zonal(cube, geoms, x_dim="cols", y_dim="row")
    fixed = zonal(cube, geoms, ["mean"], x_dim="col", y_dim="row").compute()
    expected = zonal(_cube(), geoms, ["mean"]).compute()
    xr.testing.assert_identical(_canonical(fixed), _canonical(expected))
    with pytest.raises(errors.MissingCRSError, match="raster has no CRS") as no_crs:
        zonal(_cube().drop_vars("spatial_ref"), geoms)
    assert isinstance(no_crs.value, ValueError)
    with pytest.raises(errors.MissingCRSError, match="geometries have no CRS"):
        zonal(_cube(), POLYGONS)


def _scaled_geotiff(path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    raw = rng.integers(700, 1000, size=(40, 50)).astype("int16")
    raw[rng.random(raw.shape) < 0.1] = -32768
    with rasterio.open(
        path, "w", driver="GTiff", width=50, height=40, count=1, dtype="int16", crs=UTM,
        transform=from_origin(0, 40, 1, 1), nodata=-32768, tiled=True, blockxsize=16,
        blockysize=16,
    ) as dst:  # fmt: skip
        dst.write(raw, 1)
        dst.scales = (0.01,)
        dst.offsets = (0.0,)
    return path, raw


SCALED_POLYGONS = [
    shapely.box(3.3, 2.6, 31.2, 27.9),
    shapely.Point(30, 20).buffer(9.5, quad_segs=6),
    shapely.box(0, 0, 50, 40),
]


def test_packed_int16_geotiff_equals_decoded_and_exactextract(tmp_path: Path):
    path, _ = _scaled_geotiff(tmp_path / "scaled.tif")
    packed = rioxarray.open_rasterio(path, chunks={"x": 16, "y": 16})  # defaults: packed
    assert packed.dtype == np.int16 and packed.attrs["scale_factor"] == 0.01
    decoded = rioxarray.open_rasterio(path, mask_and_scale=True, chunks={"x": 16, "y": 16})
    geoms = gpd.GeoSeries(SCALED_POLYGONS, crs=UTM)
    with raise_if_dask_computes():
        lazy = zonal(packed, geoms, STATS)
    from_packed = lazy.compute()["value"].isel(band=0)
    from_decoded = zonal(decoded, geoms, STATS).compute()["value"].isel(band=0)
    masked = rioxarray.open_rasterio(path, masked=True)  # masked, still packed
    assert masked.dtype.kind == "f" and masked.attrs["scale_factor"] == 0.01
    from_masked = zonal(masked, geoms, STATS).compute()["value"].isel(band=0)
    xr.testing.assert_allclose(from_masked, from_packed, rtol=1e-12)
    refs = exact_extract(str(path), _features(SCALED_POLYGONS), list(EE.values()))
    for i, ref in enumerate(r["properties"] for r in refs):
        for name in STATS:
            got = float(from_packed[i].sel(zonal_statistics=name))
            # decoded float32 values carry float32 rounding; GDAL's and ours are float64
            assert got == pytest.approx(float(from_decoded[i].sel(zonal_statistics=name)), 1e-6)
            assert got == pytest.approx(ref[EE[name]], rel=1e-6), (i, name)
    assert 7.0 < float(from_packed[0].sel(zonal_statistics="mean")) < 10.0


@pytest.mark.filterwarnings("ignore:(Scales|Offsets) differ across bands:UserWarning")
def test_per_band_scales_of_a_multiband_geotiff_equal_exactextract(tmp_path: Path):
    rng = np.random.default_rng(9)
    raw = rng.integers(100, 900, size=(2, 20, 24)).astype("int16")
    raw[rng.random(raw.shape) < 0.1] = -1
    path = tmp_path / "bands.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=24, height=20, count=2, dtype="int16", crs=UTM,
        transform=from_origin(0, 20, 1, 1), nodata=-1,
    ) as dst:  # fmt: skip
        dst.write(raw)
        dst.scales = (0.1, 0.01)
        dst.offsets = (0.0, 5.0)
    bands = rioxarray.open_rasterio(path, chunks={"x": 8, "y": 8})
    assert bands.attrs["scales"] == (0.1, 0.01) and "scale_factor" not in bands.attrs
    geoms = [shapely.box(1.3, 2.2, 17.5, 15.1), shapely.Point(3.5, 4.5)]
    got = zonal(bands.transpose("x", "band", "y"), geoms, ["mean", "count"], crs=UTM).compute()
    ref = exact_extract(str(path), _features(geoms[:1]), ["mean", "count"])[0]["properties"]
    for b in (1, 2):
        mean = float(got["value"].sel(band=b)[0].sel(zonal_statistics="mean"))
        assert mean == pytest.approx(ref[f"band_{b}_mean"], rel=1e-6)
    cell = raw[:, 15, 3].astype(float)  # the point: row 15 (y 4.5), column 3 (x 3.5)
    expected = np.where(cell == -1, np.nan, cell * [0.1, 0.01] + [0.0, 5.0])
    np.testing.assert_allclose(got["value"][1, :, 0].values, expected)
    with pytest.raises(errors.InvalidArgumentError, match="per-band scales"):
        zonal(bands.rename(band="time"), geoms, crs=UTM)


def test_cf_missing_values_and_packing_match_xarray_decoding():
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 200, size=(2, 12, 15)).astype("int16")
    raw[rng.random(raw.shape) < 0.1] = -1
    raw[rng.random(raw.shape) < 0.1] = -2
    attrs = {"_FillValue": -1, "missing_value": -2, "scale_factor": 0.5, "add_offset": 10.0}
    ds = xr.Dataset(
        {"t": (("time", "lat", "lon"), raw, attrs)},
        coords={"time": [0, 1], "lat": 12.0 - np.arange(12) - 0.5, "lon": np.arange(15) + 0.5},
    ).rio.write_crs("EPSG:4326")
    decoded = xr.decode_cf(ds)
    assert decoded["t"].dtype.kind == "f"
    geoms = [shapely.box(1.2, 1.7, 9.9, 10.1), shapely.Point(3.5, 4.5)]
    got = zonal(ds, geoms, STATS, crs="EPSG:4326").compute()
    want = zonal(decoded, geoms, STATS, crs="EPSG:4326").compute()
    xr.testing.assert_allclose(got["t"], want["t"], rtol=1e-12)
    xr.testing.assert_identical(got["t_pixel_count"], want["t_pixel_count"])
    hand = raw[0, 7, 3] * 0.5 + 10.0 if raw[0, 7, 3] >= 0 else np.nan  # lat 4.5, lon 3.5
    np.testing.assert_equal(float(got["t"][1, 0].sel(zonal_statistics="mean")), hand)


def test_uint64_nodata_is_compared_in_the_native_dtype():
    top = 2**63 - 1  # exactextract reads integers up to int64's maximum
    data = np.array(
        [[top, top - 1, 3, 5], [top - 2, 7, top, 9], [top - 3, 1, 2, top]], dtype=np.uint64
    )
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": [2.5, 1.5, 0.5], "x": np.arange(4) + 0.5}, name="v"
    )
    da = da.rio.write_crs(UTM).rio.write_nodata(np.uint64(top))
    polygons = [shapely.box(0, 0, 4, 3), shapely.box(0.5, 0.5, 1.9, 2.6)]
    ours = zonal(da, polygons, STATS, crs=UTM).compute()["v"]
    for i, ref in enumerate(_exactextract(da, polygons, np.uint64(top))):
        # not the median: statistics are float64, where top - 1 .. top - 3 are one value,
        # pooled with their summed weight, while exactextract pools them in uint64
        for name in ("min", "max"):
            assert float(ours[i].sel(zonal_statistics=name)) == float(ref[EE[name]]), (i, name)
        for name in ("mean", "sum", "count"):  # exactextract's coverage is float32
            got = float(ours[i].sel(zonal_statistics=name))
            assert got == pytest.approx(ref[EE[name]], rel=1e-6), (i, name)
    assert float(ours[0].sel(zonal_statistics="sum")) > 2 * 2**62  # top-1..top-3 kept


def test_uint64_values_next_to_a_nodata_of_2_to_the_64():
    # exactextract cannot read integers above 2**63 - 1 ("Value is too large to store as
    # 64-bit integer"), so the truth here is counted by hand: 2**64 - 1 is nodata, its
    # neighbours (2**64 in float64) are valid
    top = np.iinfo(np.uint64).max
    data = np.array([[top, top - 1], [top - 2, top]], dtype=np.uint64)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": [1.5, 0.5], "x": [0.5, 1.5]}, name="v")
    geoms = [shapely.box(0, 0, 2, 2), shapely.Point(1.5, 1.5), shapely.Point(0.5, 1.5)]
    for nodata in (np.uint64(top), float(top)):  # an attribute may hold its float64 image
        result = zonal(da.rio.write_crs(UTM).assign_attrs(_FillValue=nodata), geoms, STATS, crs=UTM)
        v = result.compute()["v"]
        assert int(result["pixel_count"][0]) == 2
        assert float(v[0].sel(zonal_statistics="sum")) == 2.0**65
        assert float(v[0].sel(zonal_statistics="count")) == 2.0
        assert float(v[1].sel(zonal_statistics="mean")) == 2.0**64  # the point on top - 1
        assert np.isnan(float(v[2].sel(zonal_statistics="mean")))  # the point on nodata


def _world(west: float = -180.0) -> xr.DataArray:
    """A global 1-degree grid, value 1000 * row + column-at-that-longitude (lon mod 360)."""
    lons = west + np.arange(360) + 0.5
    lats = 89.5 - np.arange(180)
    data = 1000.0 * np.arange(180)[:, None] + np.mod(np.floor(lons), 360)[None, :]
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": lats, "x": lons}, name="v")
    return da.rio.write_crs("EPSG:4326").chunk({"x": 90, "y": 90})


SPLIT = shapely.MultiPolygon(
    [shapely.box(178.25, -3.5, 180, 2.75), shapely.box(-180, -3.5, -176.5, 2.75)]
)
NORTH_CAP = shapely.box(-180, 60, 180, 90)
SOUTH_CAP = shapely.Polygon([(-180, -90), (-180, -75), (180, -75), (180, -90), (-180, -90)])


def test_antimeridian_rule_accepts_split_and_polar_geometries():
    crossing = shapely.Polygon([(179, 0), (-179, 0), (-179, 1), (179, 1), (179, 0)])
    assert crosses_antimeridian([SPLIT, NORTH_CAP, SOUTH_CAP, crossing, None]).tolist() == [
        False, False, False, True, False,
    ]  # fmt: skip
    request = AttributeRequest(geometry=SPLIT, dataset_ids=["sample:elevation"])
    assert request.geometry.type == "MultiPolygon"
    AttributeRequest(geometry=NORTH_CAP, dataset_ids=["sample:elevation"])
    with pytest.raises(errors.InvalidGeometryError, match="cross the antimeridian"):
        zonal(_world(), [crossing], crs="EPSG:4326")


def test_antimeridian_split_multipolygon_equals_the_projected_computation():
    world = _world()
    stats = ["mean", "sum", "count", "min", "max", "median"]
    geographic = zonal(world, [SPLIT, NORTH_CAP, SOUTH_CAP], stats, crs="EPSG:4326").compute()
    # the same numbers on the same grid labelled with a projected CRS: nothing geographic
    # (no antimeridian rule, no longitude matching) takes part
    planar = zonal(
        world.rio.write_crs(UTM), [SPLIT, NORTH_CAP, SOUTH_CAP], stats, crs=UTM
    ).compute()
    xr.testing.assert_allclose(geographic["v"], planar["v"], rtol=1e-12)
    np.testing.assert_array_equal(geographic["coverage_fraction"].values, [1.0, 1.0, 1.0])
    refs = _exactextract(world.compute(), [SPLIT, NORTH_CAP, SOUTH_CAP], None)
    for i, ref in enumerate(refs):
        for name in stats:
            got = float(geographic["v"][i].sel(zonal_statistics=name))
            assert got == pytest.approx(ref[EE[name]], rel=1e-9), (i, name)
    # by hand: the split box covers lon 178.25..180 (values 178, 179) and -180..-176.5
    # (values 180..183) down to row 93 (lat -4..-3)
    assert float(geographic["v"][0].sel(zonal_statistics="max")) == 93000 + 183
    assert float(geographic["v"][1].sel(zonal_statistics="min")) == 0.0


GEOMS_180 = [
    shapely.box(-10.25, 5.5, 10.75, 12.0),  # across the 0..360 grid's seam
    shapely.box(-100.5, -20.25, -90.0, -10.0),  # west: 259.5..270 on the 0..360 grid
    SPLIT,
    NORTH_CAP,
    shapely.Point(-10.5, 0.5),
    shapely.Point(179.5, 0.5),
]
GEOMS_360 = [  # the same places written in 0..360
    shapely.MultiPolygon([shapely.box(349.75, 5.5, 360, 12.0), shapely.box(0, 5.5, 10.75, 12.0)]),
    shapely.box(259.5, -20.25, 270.0, -10.0),
    shapely.box(178.25, -3.5, 183.5, 2.75),
    shapely.box(0, 60, 360, 90),
    shapely.Point(349.5, 0.5),
    shapely.Point(179.5, 0.5),
]


@pytest.mark.parametrize("geoms", [GEOMS_180, GEOMS_360], ids=["geoms-180", "geoms-360"])
def test_a_0_360_grid_equals_the_180_grid(geoms: list[shapely.Geometry]):
    stats = ["mean", "sum", "count", "min", "max", "median"]
    reference = zonal(_world(-180.0), GEOMS_180, stats, crs="EPSG:4326").compute()
    for west in (0.0, -180.0):
        got = zonal(_world(west), geoms, stats, crs="EPSG:4326").compute()
        np.testing.assert_allclose(got["v"].values, reference["v"].values, rtol=1e-12)
        np.testing.assert_allclose(got["coverage_fraction"].values, [1.0] * len(geoms), rtol=1e-12)
        np.testing.assert_array_equal(got["pixel_count"], reference["pixel_count"])
    # the polygon across 0 keeps both halves (nothing silently lost): 21 columns x 6.5 rows
    assert float(reference["v"][0].sel(zonal_statistics="count")) == pytest.approx(21 * 6.5)


@pytest.mark.parametrize(
    ("stats", "builtin", "message"),
    [
        (3, TypeError, "stats=3 (int)"),
        (["mean", 3], TypeError, "stats holds 3 (int)"),
        ({"mean": 1}, TypeError, "a statistic name or a list of names"),
        ([], ValueError, "stats is empty"),
        ("modal", ValueError, "unknown statistic 'modal'"),
    ],
)
def test_bad_stats_name_the_accepted_forms(stats: object, builtin: type, message: str):
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    with pytest.raises(errors.InvalidStatisticError, match=re.escape(message)) as err:
        zonal(_cube(), geoms, stats)  # type: ignore[arg-type]
    assert isinstance(err.value, builtin) and isinstance(err.value, errors.CasError)
    assert "'p10'" in str(err.value) and "median" in str(err.value)


def test_everything_zonal_raises_is_a_cas_error():
    da = _cube().isel(time=0, band=0, drop=True)
    box = gpd.GeoSeries([shapely.box(1, 1, 3, 3)], crs=UTM)
    rotated = da.rio.write_transform(da.rio.transform() * rasterio.Affine.rotation(10))
    bad = [
        (lambda: zonal(da, box, weights="fuzzy"), ValueError),
        (lambda: zonal(da, box, chunks=0), ValueError),
        (lambda: zonal(da, box, area_weighted=True), ValueError),
        (lambda: zonal(da, box, ["distribution"]), ValueError),
        (lambda: zonal(da, [{"type": "Polygon"}], crs=UTM), ValueError),
        (lambda: zonal(da, [None], crs=UTM), ValueError),
        (lambda: zonal(da, [shapely.LinearRing([(0, 0), (1, 1), (1, 0)])], crs=UTM), ValueError),
        (lambda: zonal(da, box, crs="EPSG:4326"), ValueError),
        (lambda: zonal(da.rename(y="a", x="b"), box), ValueError),
        (lambda: zonal(da, box, x_dim="x", y_dim="x"), ValueError),
        (lambda: zonal(rotated.drop_vars(["x", "y"]), box), ValueError),
        (lambda: zonal(xr.Dataset({"s": ((), 1.0)}).rio.write_crs(UTM), box), ValueError),
        (lambda: zonal(da, box, 3), TypeError),  # type: ignore[arg-type]
        (lambda: zonal(da, 3, crs=UTM), ValueError),
        (lambda: zonal(da, [shapely.box(1, 1, 3, 3)], crs="EPSG:nope"), ValueError),
        (lambda: zonal(da, {"type": "FeatureCollection", "features": [1]}, crs=UTM), ValueError),
        (lambda: zonal(da, box, ["distribution"], classes=["a"]), ValueError),
    ]
    for call, builtin in bad:
        with pytest.raises(errors.CasError) as err:
            call()
        assert isinstance(err.value, builtin), err.value
