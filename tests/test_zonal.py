"""zonal(): property-based agreement with exactextract, brute-force centre mode, laziness."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cas_xr
from cas_xr.testing import raise_if_dask_computes
from cas_xr.zonal import COVERAGE_NOISE, zonal

NODATA = -9999.0
CONTINUOUS = ["mean", "sum", "min", "max", "count", "median", "std"]
#: Cells covered by less than this are slivers: exactextract keeps or drops them depending
#: on its own floating point (it stores coverage as float32), and cas_xr drops those below
#: COVERAGE_NOISE, so the property test bounds, rather than equates, what they touch.
SLIVER = 1e-7
EE_NAMES = {"mean": "mean", "sum": "sum", "min": "min", "max": "max", "count": "count",
            "median": "median", "std": "stdev"}  # fmt: skip


def _raster(rng: np.random.Generator, *, integer: bool, ascending: bool) -> xr.DataArray:
    ny, nx = rng.integers(6, 40, size=2)
    res = float(rng.choice([1.0, 0.5, 30.0]))
    x0, y_top = float(rng.uniform(-1000, 1000)), float(rng.uniform(-1000, 1000))
    if integer:
        data = rng.integers(1, 6, size=(ny, nx)).astype("int16")
        data[rng.random((ny, nx)) < 0.1] = -1
        nodata: float = -1
    else:
        data = rng.normal(100, 20, size=(ny, nx)).astype("float32")
        data[rng.random((ny, nx)) < 0.05] = NODATA
        data[rng.random((ny, nx)) < 0.05] = np.nan
        nodata = NODATA
    ys = y_top - res * (np.arange(ny) + 0.5)
    xs = x0 + res * (np.arange(nx) + 0.5)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": ys, "x": xs}, name="v")
    if ascending:
        da = da.isel(y=slice(None, None, -1))
    da = da.rio.write_crs("EPSG:32633").rio.write_nodata(nodata)
    chunk = int(rng.integers(3, 12))
    return da.chunk({"y": chunk, "x": chunk})


def _polygons(rng: np.random.Generator, da: xr.DataArray, n: int) -> list[shapely.Geometry]:
    xmin, xmax = float(da.x.min()), float(da.x.max())
    ymin, ymax = float(da.y.min()), float(da.y.max())
    w, h = xmax - xmin, ymax - ymin
    out: list[shapely.Geometry] = []
    for _ in range(n):
        cx = rng.uniform(xmin - 0.2 * w, xmax + 0.2 * w)
        cy = rng.uniform(ymin - 0.2 * h, ymax + 0.2 * h)
        size = rng.uniform(0.05, 0.6) * min(w, h)
        kind = rng.integers(0, 5)
        if kind == 0:
            geom = shapely.box(cx - size, cy - size * rng.uniform(0.3, 1), cx + size, cy + size)
        elif kind == 1:
            pts = rng.normal(size=(12, 2)) * size + [cx, cy]
            geom = shapely.MultiPoint(pts).convex_hull
        elif kind == 2:  # a hole
            outer = shapely.Point(cx, cy).buffer(size, quad_segs=6)
            geom = outer.difference(shapely.Point(cx, cy).buffer(size * 0.4, quad_segs=5))
        elif kind == 3:  # two parts
            a = shapely.Point(cx, cy).buffer(size * 0.5, quad_segs=4)
            b = shapely.Point(cx + 1.5 * size, cy).buffer(size * 0.4, quad_segs=4)
            geom = shapely.MultiPolygon([a, b])
        else:  # a concave star
            angles = np.linspace(0, 2 * np.pi, 15, endpoint=False)
            radii = size * np.where(np.arange(15) % 2 == 0, 1.0, 0.45)
            geom = shapely.Polygon(
                np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
            )
        if geom.area > 0:
            out.append(geom)
    if len(out) > 1:
        out.append(out[0].buffer(-0.1 * min(w, h) * 0.05))  # nested in the first one
    return [g for g in out if not g.is_empty]


def _reference(da: xr.DataArray, polygons: list[shapely.Geometry], ops: list[str]) -> list[dict]:
    north_up = da if float(da.y[0]) > float(da.y[-1]) else da.isel(y=slice(None, None, -1))
    t = north_up.rio.transform()
    arr = np.asarray(north_up.values)
    ny, nx = arr.shape
    src = NumPyRasterSource(
        arr, t.c, t.f + ny * t.e, t.c + nx * t.a, t.f, nodata=arr.dtype.type(da.rio.nodata)
    )
    feats = [
        {"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in polygons
    ]
    return [r["properties"] for r in exact_extract(src, feats, ops, output="geojson")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    ascending=st.booleans(),
    window=st.sampled_from([8, 20, 1000]),
)
@example(seed=1360, ascending=False, window=8)  # a sliver ranked next to the median
def test_continuous_statistics_match_exactextract(seed: int, ascending: bool, window: int):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=False, ascending=ascending)
    polygons = _polygons(rng, da, int(rng.integers(1, 8)))
    geoms = gpd.GeoSeries(polygons, crs="EPSG:32633")
    result = zonal(da, geoms, CONTINUOUS, chunks=window).compute()
    ref = _reference(da, polygons, [*EE_NAMES.values(), "values", "coverage"])
    for i, r in enumerate(ref):
        ours = result["v"].isel(geometry=i)
        got = {name: float(ours.sel(zonal_statistics=name)) for name in EE_NAMES}
        values, cover = np.asarray(r["values"]), np.asarray(r["coverage"])
        solid = values[cover >= SLIVER]
        slivers = np.concatenate([values[cover < SLIVER], _true_slivers(da, polygons[i])])
        pixel_count = int(result["pixel_count"][i])
        if slivers.size:  # kept or dropped by either side's floating point: bounds only
            assert solid.size <= pixel_count <= solid.size + slivers.size
            if solid.size:
                candidates = np.concatenate([solid, slivers])
                assert candidates.min() <= got["min"] <= solid.min()
                assert solid.max() <= got["max"] <= candidates.max()
                # the weighted median interpolates by rank (as exactextract's), so a
                # sliver shifts it within the cells ranked around half the weight, a
                # sliver among them (seed 1360: one solid cell and a sliver above it)
                weights = np.concatenate([cover[cover >= SLIVER], np.zeros(slivers.size)])
                low, high = _around_half(candidates, weights)
                assert low <= got["median"] <= high
            for name in ("min", "max", "median"):
                got.pop(name)
        else:
            assert pixel_count == values.size
        if solid.size == 0:  # no valid cell: count and sum 0 (as exactextract), else NaN
            if slivers.size:  # ... or what slivers below SLIVER give, if cas_xr kept them
                kept = slivers[~np.isnan(slivers) & (slivers != NODATA)]
                top = float(np.abs(kept).max()) if kept.size else 0.0
                assert abs(got["count"]) <= SLIVER * slivers.size
                assert abs(got["sum"]) <= SLIVER * slivers.size * top + 1e-12
                if kept.size and not np.isnan(got["mean"]):
                    assert kept.min() - 1e-9 <= got["mean"] <= kept.max() + 1e-9
                continue
            for name, value in got.items():
                assert abs(value) < 1e-6 if name in {"count", "sum"} else np.isnan(value)
            continue
        spread = float(np.ptp(values))
        for name, value in got.items():  # a sliver's weight moves these by < 1e-7
            expected = r[EE_NAMES[name]]
            assert value == pytest.approx(expected, rel=1e-6, abs=1e-6 * (spread + 1)), (name, i)


def _around_half(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The values ranked just before and after the one where the weights reach half."""
    order = np.argsort(values)
    k = int(np.searchsorted(np.cumsum(weights[order]), weights.sum() / 2))
    ranked = values[order]
    return float(ranked[max(k - 1, 0)]), float(ranked[min(k + 1, ranked.size - 1)])


def _true_slivers(da: xr.DataArray, polygon: shapely.Geometry) -> np.ndarray:
    """Valid values of the cells ``polygon`` covers by less than SLIVER (shapely's areas)."""
    res = abs(float(da.x[1] - da.x[0]))
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    cells = shapely.box(xx - res / 2, yy - res / 2, xx + res / 2, yy + res / 2)
    cover = shapely.area(shapely.intersection(cells, polygon)) / res**2
    values = np.asarray(da.values, dtype=np.float64)
    valid = ~np.isnan(values) & (values != NODATA)
    return values[(cover > 0) & (cover < SLIVER) & valid]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), ascending=st.booleans())
def test_categorical_statistics_match_exactextract(seed: int, ascending: bool):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=True, ascending=ascending)
    polygons = _polygons(rng, da, int(rng.integers(1, 8)))
    geoms = gpd.GeoSeries(polygons, crs="EPSG:32633")
    stats = ["majority", "minority", "unique", "distribution", "count"]
    result = zonal(da, geoms, stats, classes=[1, 2, 3, 4, 5], chunks=17).compute()
    ref = _reference(da, polygons, ["frac", "unique", "variety", "count"])
    for i, r in enumerate(ref):
        fractions = dict(zip(r["unique"].tolist(), r["frac"].tolist(), strict=True))
        dist = dict(
            zip(
                result["class"].values.tolist(),
                result["distribution"][i].values.tolist(),
                strict=True,
            )
        )
        for code in range(1, 6):
            assert dist[code] == pytest.approx(fractions.get(code, 0.0), abs=1e-6)
        row = result["v"].isel(geometry=i)
        if not fractions:
            assert np.isnan(float(row.sel(zonal_statistics="majority")))
            continue
        assert float(row.sel(zonal_statistics="unique")) == r["variety"]
        top, bottom = max(fractions.values()), min(fractions.values())
        # ties (to exactextract's float32 precision) go to the smallest code
        assert float(row.sel(zonal_statistics="majority")) == min(
            c for c, f in fractions.items() if f >= top - 1e-6
        )
        assert float(row.sel(zonal_statistics="minority")) == min(
            c for c, f in fractions.items() if f <= bottom + 1e-6
        )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ascending=st.booleans())
def test_centre_mode_equals_brute_force(seed: int, ascending: bool):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=False, ascending=ascending)
    polygons = _polygons(rng, da, int(rng.integers(1, 6)))
    result = zonal(
        da, gpd.GeoSeries(polygons, crs="EPSG:32633"), ["sum", "count", "mean"], weights="center"
    ).compute()
    xx, yy = np.meshgrid(da.x.values, da.y.values)
    values = np.asarray(da.values, dtype=np.float64)
    valid = ~np.isnan(values) & (values != NODATA)
    for i, polygon in enumerate(polygons):
        inside = shapely.contains_xy(polygon, xx, yy) & valid
        row = result["v"].isel(geometry=i)
        assert int(result["pixel_count"][i]) == inside.sum()
        assert float(row.sel(zonal_statistics="count")) == inside.sum()
        assert float(row.sel(zonal_statistics="sum")) == pytest.approx(
            values[inside].sum(), rel=1e-12, abs=1e-9
        )


def test_all_touched_uses_every_cell_sharing_area():
    da = _raster(np.random.default_rng(7), integer=False, ascending=False)
    polygons = _polygons(np.random.default_rng(8), da, 5)
    result = zonal(
        da, gpd.GeoSeries(polygons, crs="EPSG:32633"), ["mean"], weights="all_touched"
    ).compute()
    ref = _reference(da, polygons, ["values", "coverage"])
    for i, r in enumerate(ref):
        kept = np.asarray(r["values"])[np.asarray(r["coverage"]) >= COVERAGE_NOISE]
        if kept.size:
            assert float(result["v"][i, 0]) == pytest.approx(kept.mean(), rel=1e-9)


def _grid(ascending: bool = False) -> xr.DataArray:
    data = np.arange(100, dtype="float64").reshape(10, 10)  # value = 10 * row + col
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": 9.5 - np.arange(10), "x": np.arange(10) + 0.5}, name="v"
    )
    if ascending:
        da = da.isel(y=slice(None, None, -1))
    return da.rio.write_crs("EPSG:32633")


@pytest.mark.parametrize("ascending", [False, True])
def test_points_take_the_containing_cell_with_the_edge_rule(ascending: bool):
    da = _grid(ascending)
    xs, ys = [2.5, 3.0, 3.0, 0.0, 50.0, 10.0, 5.0], [7.5, 7.5, 7.0, 10.0, 50.0, 5.0, 0.0]
    points = gpd.GeoSeries.from_xy(xs, ys, crs="EPSG:32633")
    result = zonal(da, points, ["mean"]).compute()
    # (2.5, 7.5): row 2, col 2; x=3.0 is the edge of cols 2|3 -> east (col 3);
    # y=7.0 is the edge of rows 2|3 -> south (row 3); (0, 10) is the top-left corner -> row 0, col 0
    assert result["v"][:, 0].values.tolist()[:4] == [22.0, 23.0, 33.0, 0.0]
    # (50, 50) is far out; (10, 5) and (5, 0) lie on the east / south edge of the grid, so
    # their cells (east / south of the edge) are outside it
    assert np.isnan(result["v"][4:, 0]).all()
    assert result["pixel_count"].values.tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert result["coverage_fraction"].values.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_overlapping_nested_and_outside_polygons():
    da = _grid()
    big = shapely.box(0, 0, 10, 10)
    nested = shapely.box(2, 2, 4, 4)
    overlap = shapely.box(3, 3, 6, 6)
    half_out = shapely.box(5, 5, 15, 15)
    outside = shapely.box(20, 20, 30, 30)
    result = zonal(
        da,
        gpd.GeoSeries([big, nested, overlap, half_out, outside], crs="EPSG:32633"),
        ["mean", "count", "sum"],
    ).compute()
    v = result["v"]
    assert float(v[0].sel(zonal_statistics="mean")) == pytest.approx(49.5)
    # rows 6..7 (y 2..4) and cols 2..3 -> values 62, 63, 72, 73
    assert float(v[1].sel(zonal_statistics="mean")) == pytest.approx(67.5)
    assert float(v[2].sel(zonal_statistics="count")) == pytest.approx(9.0)
    assert result["coverage_fraction"].values[:3].tolist() == [1.0, 1.0, 1.0]
    assert float(result["coverage_fraction"][3]) == pytest.approx(25 / 100)
    assert float(result["coverage_fraction"][4]) == 0.0 and np.isnan(float(v[4, 0]))


def test_area_weighting_on_a_geographic_grid():
    data = np.vstack([np.full((1, 4), 10.0), np.full((1, 4), 20.0)])
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": [70.0, 10.0], "x": [0.0, 1.0, 2.0, 3.0]}, name="v"
    )
    da = da.rio.write_crs("EPSG:4326")  # rows span lat 40..100?? no: 100..40 and 40..-20
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": [60.0, 0.0], "x": [0.5, 1.5, 2.5, 3.5]}, name="v"
    ).rio.write_crs("EPSG:4326")
    box = shapely.box(0, -30, 4, 90)
    plain = zonal(da, gpd.GeoSeries([box], crs="EPSG:4326"), ["mean", "sum"]).compute()
    weighted = zonal(
        da, gpd.GeoSeries([box], crs="EPSG:4326"), ["mean", "sum"], area_weighted=True
    ).compute()
    assert float(plain["v"][0, 0]) == pytest.approx(15.0)
    north = np.sin(np.radians(90)) - np.sin(np.radians(30))
    south = np.sin(np.radians(30)) - np.sin(np.radians(-30))
    assert float(weighted["v"][0, 0]) == pytest.approx((10 * north + 20 * south) / (north + south))
    assert float(weighted["v"][0, 1]) == float(plain["v"][0, 1])  # sum stays coverage-weighted
    with pytest.raises(ValueError, match="geographic"):
        zonal(_grid(), gpd.GeoSeries([box], crs="EPSG:32633"), area_weighted=True)


def test_output_is_an_xvec_cube_keeping_index_dims_and_attrs():
    data = np.stack([np.arange(100.0).reshape(10, 10) + 100 * t for t in range(3)])
    da = xr.DataArray(
        data, dims=("time", "y", "x"),
        coords={"time": np.array(["2022-01", "2022-02", "2022-03"], dtype="datetime64[ns]"),
                "y": 9.5 - np.arange(10), "x": np.arange(10) + 0.5},
        name="precip", attrs={"units": "mm", "license": "CC-BY-4.0"},
    ).rio.write_crs("EPSG:32633")  # fmt: skip
    geoms = gpd.GeoDataFrame(
        geometry=[shapely.box(0, 0, 2, 2), shapely.box(5, 5, 6, 6)],
        crs="EPSG:32633",
        index=["up", "down"],
    )
    result = zonal(da, geoms, ["mean", "p90"])
    assert result["precip"].dims == ("geometry", "time", "zonal_statistics")
    assert result.xindexes["geometry"].crs.to_epsg() == 32633
    assert result["index"].values.tolist() == ["up", "down"]
    assert (
        result["precip"].attrs["units"] == "mm" and result["precip"].attrs["license"] == "CC-BY-4.0"
    )
    assert result["zonal_statistics"].values.tolist() == ["mean", "p90"]
    means = result["precip"].sel(zonal_statistics="mean").compute()
    assert means.isel(geometry=0).values.tolist() == [85.5, 185.5, 285.5]  # cells 80, 81, 90, 91
    table = result.xvec.to_geodataframe()
    assert len(table) == 2 * 3 * 2


NAMES = {10: "tree", 20: "shrub", 30: "grass", 40: "crop", 50: "urban"}


def test_dataset_input_and_distribution_names():
    lc = xr.DataArray(np.tile([10, 20, 30, 40, 50], (10, 2)).astype("uint8"), dims=("y", "x"),
                      coords={"y": 9.5 - np.arange(10), "x": np.arange(10) + 0.5},
                      attrs={"class_names": NAMES})  # fmt: skip
    ds = xr.Dataset({"lc": lc, "h": lc.astype("float32") * 2}).rio.write_crs("EPSG:32633")
    box = gpd.GeoSeries([shapely.box(0, 0, 2.5, 10)], crs="EPSG:32633")
    result = zonal(
        ds,
        box,
        ["majority", "distribution"],
        classes=NAMES,
    ).compute()
    assert set(result.data_vars) >= {
        "lc",
        "lc_distribution",
        "lc_coverage_fraction",
        "lc_pixel_count",
        "h",
    }
    assert result["class_name"].values.tolist() == ["tree", "shrub", "grass", "crop", "urban"]
    assert result["lc_distribution"][0].values.tolist() == pytest.approx([0.4, 0.4, 0.2, 0.0, 0.0])
    assert float(result["lc"][0, 0]) == 10.0  # 10 and 20 tie at 0.4: the smaller code wins


def test_building_the_cube_computes_nothing():
    da = _raster(np.random.default_rng(1), integer=False, ascending=False)
    polygons = _polygons(np.random.default_rng(2), da, 6)
    with raise_if_dask_computes():
        lazy = zonal(da, gpd.GeoSeries(polygons, crs="EPSG:32633"), ["mean", "median"], chunks=10)
        lazy_accessor = da.cas.zonal(gpd.GeoSeries(polygons, crs="EPSG:32633"), ["mean"])
    assert lazy["v"].chunks is not None and lazy_accessor["v"].chunks is not None
    assert len(lazy.__dask_graph__()) > 1


def test_geometries_in_another_crs_are_reprojected_explicitly():
    da = _grid()
    import pyproj

    to_ll = pyproj.Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    box = shapely.box(2, 2, 4, 4)
    ll = shapely.transform(
        box.segmentize(0.1), lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1]))
    )
    native = zonal(da, gpd.GeoSeries([box], crs="EPSG:32633"), ["mean"]).compute()
    reprojected = zonal(da, gpd.GeoSeries([ll], crs="EPSG:4326"), ["mean"]).compute()
    assert float(reprojected["v"][0, 0]) == pytest.approx(float(native["v"][0, 0]), rel=1e-6)
    assert reprojected.xindexes["geometry"].crs.to_epsg() == 4326  # input geometries kept


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stats": ["modal"]}, ValueError, "unknown statistic 'modal'"),
        ({"weights": "fuzzy"}, ValueError, "weights must be one of"),
        ({"stats": ["distribution"]}, ValueError, "needs the class values"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], message: str):
    with pytest.raises(error, match=message):
        zonal(_grid(), gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs="EPSG:32633"), **kwargs)


def test_bad_geometries_and_crs():
    from cas_xr.errors import InvalidGeometryError, MissingCRSError, MissingDimensionError

    da = _grid()
    with pytest.raises(MissingCRSError, match="no CRS"):
        zonal(da, [shapely.box(0, 0, 1, 1)])
    with pytest.raises(InvalidGeometryError, match="LinearRing"):
        zonal(da, [shapely.LinearRing([(0, 0), (1, 1), (1, 0)])], crs="EPSG:32633")
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    with pytest.raises(InvalidGeometryError, match="make_valid"):
        zonal(da, [bowtie], crs="EPSG:32633")
    with pytest.raises(MissingCRSError, match="raster has no CRS"):
        zonal(da.drop_vars("spatial_ref"), [shapely.box(0, 0, 1, 1)], crs="EPSG:32633")
    across = shapely.box(-179.5, 0, 179.5, 1)
    with pytest.raises(InvalidGeometryError, match="antimeridian"):
        zonal(da.rio.write_crs("EPSG:4326"), [across], crs="EPSG:4326")
    with pytest.raises(MissingDimensionError, match="x_dim=..., y_dim="):
        zonal(da.rename(y="row", x="col"), [shapely.box(0, 0, 1, 1)], crs="EPSG:32633")


def test_same_numbers_on_a_distributed_local_cluster():
    import distributed

    da = _raster(np.random.default_rng(11), integer=False, ascending=False)
    geoms = gpd.GeoSeries(_polygons(np.random.default_rng(12), da, 8), crs="EPSG:32633")
    threaded = zonal(da, geoms, ["mean", "median", "count"], chunks=14).compute(scheduler="threads")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = client.compute(zonal(da, geoms, ["mean", "median", "count"], chunks=14)).result()
    xr.testing.assert_identical(threaded.drop_indexes("geometry"), remote.drop_indexes("geometry"))


def test_top_level_function_and_accessor_agree():
    da = _grid()
    geoms = gpd.GeoSeries([shapely.box(1.2, 1.3, 6.1, 7.7)], crs="EPSG:32633")
    direct = cas_xr.zonal(da, geoms, ["mean", "p10"]).compute()
    bound = da.cas.zonal(geoms, ["mean", "p10"]).compute()
    xr.testing.assert_identical(direct.drop_indexes("geometry"), bound.drop_indexes("geometry"))


def test_accessor_on_an_opened_sample_dataset_keeps_catalog_metadata():
    import cas_xr as cas

    connector = cas.get_connector("sample")
    box = shapely.box(-96.6, 39.0, -96.5, 39.1)
    cover = connector.open("land_cover", bbox=box.bounds)
    with raise_if_dask_computes():
        lazy = cover.cas.zonal(gpd.GeoSeries([box], crs="EPSG:4326"), ["majority", "distribution"])
    result = lazy.compute()
    assert result["class_name"].values.tolist()[3] == "cropland"
    assert float(result["distribution"].sum()) == pytest.approx(1.0)
    elevation = connector.open("elevation", bbox=box.bounds).cas.zonal(
        gpd.GeoSeries([box], crs="EPSG:4326")
    )
    assert elevation["elevation"].attrs["units"] == "m"
    assert elevation["elevation"].attrs["license"] == "MIT"
    assert set(elevation.attrs["cas_provenance"]["items"]) == {
        "elevation-K-west",
        "elevation-K-east",
    }


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_eager_small_path_agrees_with_the_graph(seed: int):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=bool(seed % 2), ascending=seed == 4)
    cube = xr.concat([da, da * 2], dim="layer")  # two layers, chunked like the raster
    shapes = [*_polygons(rng, da, 8), shapely.Point(float(da.x[2]), float(da.y[3]))]
    geometries = gpd.GeoSeries([*shapes, shapely.Polygon()], crs="EPSG:32633")
    stats = ["mean", "std", "median", "p90", "majority", "distribution"]
    classes = [1.0, 2.0, 3.0, 4.0, 5.0]
    lazy = zonal(cube, geometries, stats, classes=classes)
    with raise_if_dask_computes(max_computes=1):  # one computation: the reads and kernels
        eager = zonal(cube, geometries, stats, classes=classes, eager_cells=10**9)
    assert lazy["v"].chunks is not None and eager["v"].chunks is None  # computed, numpy
    lazy = lazy.compute()
    for name in lazy.data_vars:
        np.testing.assert_allclose(eager[name].values, lazy[name].values, rtol=0, atol=1e-12)
    small = zonal(cube, geometries, stats, classes=classes, eager_cells=1)  # too big: lazy
    assert small["v"].chunks is not None
