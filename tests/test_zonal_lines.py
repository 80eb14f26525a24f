"""Lines, point sets and collections in zonal(): shapely lengths, exactextract, modes."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from affine import Affine
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cas_xr.errors import CasError, InvalidArgumentError, InvalidGeometryError
from cas_xr.zonal import zonal
from cas_xr.zonal._codes import MODE_ALL_TOUCHED, MODE_EXACT
from cas_xr.zonal._coverage import cell_weights, geometry_rings
from cas_xr.zonal._inputs import cell_units
from cas_xr.zonal._lines import weighted_lines

CRS = "EPSG:32633"
#: A grid whose cell units are exact in binary: lines on cell edges stay on them.
DYADIC = Affine(2.0, 0.0, 100.0, 0.0, -0.5, 50.0)
SHAPE = (12, 9)  # rows, cols


def _raster(transform: Affine, shape: tuple[int, int], data: np.ndarray | None = None):
    rows, cols = shape
    values = np.arange(rows * cols, dtype="float64").reshape(shape) if data is None else data
    xs = transform.c + transform.a * (np.arange(cols) + 0.5)
    ys = transform.f + transform.e * (np.arange(rows) + 0.5)
    da = xr.DataArray(values, dims=("y", "x"), coords={"y": ys, "x": xs}, name="v")
    return da.rio.write_crs(CRS)


def _weights(geom: shapely.Geometry, transform: Affine, shape: tuple[int, int], mode: int):
    """The kernel's weight of every cell of the grid for one geometry."""
    rings = geometry_rings([geom], cell_units(transform), (transform.a, transform.e))
    rings = weighted_lines(*rings, shape, 1e-9)
    buf = np.empty(shape)
    cell_weights(buf, 0, 0, *rings[:2], rings[2][0], rings[2][1], mode, 1e-9)
    return buf


def _owned_lengths(line: shapely.Geometry, transform: Affine, shape: tuple[int, int]):
    """Shapely's length of each segment of the line in each cell, summed over segments.

    Each pass of a line that runs over itself counts (a line integral, as exactextract
    0.3). A cell's length is that in the closed cell, less what runs along the edges the
    cell does not own: the east edge (the cell east of a vertical edge owns it) and the
    south edge (the cell south of a horizontal edge owns it), as for points.
    """
    rows, cols = shape
    out = np.zeros(shape)
    xy = shapely.get_coordinates(line)
    parts = shapely.get_parts(line)
    ends = np.cumsum([len(shapely.get_coordinates(p)) for p in parts])
    segments = [shapely.LineString(xy[i : i + 2]) for i in range(len(xy) - 1) if i + 1 not in ends]
    for r in range(rows):
        for c in range(cols):
            (x0, y0), (x1, y1) = transform * (c, r), transform * (c + 1, r + 1)
            box = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            east = shapely.LineString([(x1, y0), (x1, y1)])
            south = shapely.LineString([(x0, y1), (x1, y1)])
            for segment in segments:
                out[r, c] += (
                    segment.intersection(box).length
                    - segment.intersection(east).length
                    - segment.intersection(south).length
                )
    return out


def _on_grid(u: float, v: float, transform: Affine = DYADIC) -> tuple[float, float]:
    return transform * (u, v)


# vertices in cell units: integers (grid vertices and edges), halves, and anything,
# within and beyond the grid (lines leaving the raster)
_coordinate = st.one_of(
    st.integers(-2, 14).map(float),
    st.integers(-4, 28).map(lambda k: k / 2),
    st.floats(-3.0, 15.0, allow_nan=False),
)


@st.composite
def _lines(draw: st.DrawFn) -> shapely.LineString:
    n = draw(st.integers(2, 8))
    uv = [(draw(_coordinate), draw(_coordinate)) for _ in range(n)]
    for i in range(1, n):  # vertical, horizontal and zero-length segments
        how = draw(st.sampled_from(["free", "free", "vertical", "horizontal", "repeat"]))
        if how == "vertical":
            uv[i] = (uv[i - 1][0], uv[i][1])
        elif how == "horizontal":
            uv[i] = (uv[i][0], uv[i - 1][1])
        elif how == "repeat":
            uv[i] = uv[i - 1]
    line = shapely.LineString([_on_grid(u, v) for u, v in uv])
    if line.length == 0:  # a zero-length line is invalid; move its last vertex
        line = shapely.LineString([*line.coords[:-1], _on_grid(uv[-1][0] + 1.5, uv[-1][1])])
    return line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=_lines())
def test_line_weights_are_shapely_lengths_per_cell(line: shapely.LineString):
    ours = _weights(line, DYADIC, SHAPE, MODE_EXACT)
    reference = _owned_lengths(line, DYADIC, SHAPE)
    tol = 1e-9 * max(line.length, 1.0)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=tol)
    # every cell with length is touched, with weight 1, in all_touched mode
    np.testing.assert_array_equal(_weights(line, DYADIC, SHAPE, MODE_ALL_TOUCHED), ours > 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_line_statistics_and_coverage_match_shapely(seed: int):
    rng = np.random.default_rng(seed)
    transform = Affine(30.0, 0.0, 600_000.0, 0.0, -30.0, 5_000_000.0)
    shape = (15, 11)
    data = rng.normal(10, 3, size=shape)
    data[rng.random(shape) < 0.1] = np.nan
    da = _raster(transform, shape, data)
    lines = []
    for _ in range(4):
        uv = rng.uniform(-3, 16, size=(int(rng.integers(2, 6)), 2))
        lines.append(shapely.LineString([transform * tuple(p) for p in uv]))
    lines.append(shapely.MultiLineString(lines[:2]))
    out = zonal(da, gpd.GeoSeries(lines, crs=CRS), ["count", "sum", "mean"]).compute()
    for i, line in enumerate(lines):
        lengths = _owned_lengths(line, transform, shape)
        valid = ~np.isnan(data)
        count = lengths[valid].sum()
        total = float(np.sum(np.where(valid, lengths * data, 0.0)))
        got = out["v"].values[i]
        np.testing.assert_allclose(got[0], count, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got[1], total, rtol=1e-9, atol=1e-9)
        if count > 0:
            np.testing.assert_allclose(got[2], total / count, rtol=1e-9)
        coverage = float(out["coverage_fraction"].values[i])
        np.testing.assert_allclose(coverage, min(count / line.length, 1.0), rtol=1e-9, atol=1e-9)
        assert out["pixel_count"].values[i] == np.sum(valid & (lengths > 1e-9 * 30))


def _exactextract(da: xr.DataArray, geoms: list[shapely.Geometry], ops: list[str]) -> list:
    t = da.rio.transform()
    arr = np.asarray(da.values)
    ny, nx = arr.shape
    src = NumPyRasterSource(arr, t.c, t.f + ny * t.e, t.c + nx * t.a, t.f)
    feats = [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in geoms]
    return [r["properties"] for r in exact_extract(src, feats, ops, output="geojson")]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_lines_match_exactextract(seed: int):
    """Lines in general position (exactextract 0.3 drops lines whose box has no height)."""
    rng = np.random.default_rng(seed)
    res = float(rng.choice([1.0, 30.0, 0.25]))
    transform = Affine(res, 0.0, float(rng.uniform(-500, 500)), 0.0, -res, 1000.0)
    shape = (int(rng.integers(5, 20)), int(rng.integers(5, 20)))
    da = _raster(transform, shape, rng.normal(50, 10, size=shape))
    lines = []
    for _ in range(5):
        uv = rng.uniform(-2, max(shape) + 2, size=(int(rng.integers(2, 7)), 2))
        lines.append(shapely.LineString([transform * tuple(p) for p in uv]))
    lines.append(shapely.MultiLineString(lines[:2]))
    # (not majority: many cells of a line hold equal lengths, so its ties are float noise)
    names = {"count": "count", "sum": "sum", "mean": "mean", "min": "min", "max": "max",
             "median": "median", "std": "stdev", "unique": "variety"}  # fmt: skip
    reference = _exactextract(da, lines, [*names.values(), "cell_id", "coverage"])
    out = zonal(da, gpd.GeoSeries(lines, crs=CRS), list(names))
    got = out["v"].values
    for i, (line, ref) in enumerate(zip(lines, reference, strict=True)):
        # exactextract stores coverage (lengths here) as float32: 1e-6 relative
        expected = [np.nan if ref[k] is None else ref[k] for k in names.values()]
        if ref["count"] == 0:  # no cell: exactextract's variety is 0, cas_xr's unique NaN
            expected[-1] = np.nan
        np.testing.assert_allclose(got[i], expected, rtol=1e-6, atol=1e-6 * res)
        weights = _weights(line, transform, shape, MODE_EXACT).ravel()
        ours = {int(k): weights[k] for k in np.flatnonzero(weights)}
        theirs = dict(zip(map(int, ref["cell_id"]), ref["coverage"], strict=True))
        assert ours.keys() == {k for k, w in theirs.items() if w > 1e-6 * res}
        np.testing.assert_allclose(
            [ours[k] for k in sorted(ours)], [theirs[k] for k in sorted(ours)], rtol=1e-6
        )


def test_exactextract_drops_a_horizontal_line_that_cas_xr_measures():
    """A documented divergence: exactextract 0.3 gives nothing for a zero-height box."""
    da = _raster(Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0), (4, 4))
    line = shapely.LineString([(5, 35), (25, 35)])
    (ref,) = _exactextract(da, [line], ["count"])
    assert ref["count"] == 0
    out = zonal(da, gpd.GeoSeries([line], crs=CRS), ["count", "sum"]).compute()
    np.testing.assert_allclose(out["v"].values[0], [20.0, 5 * 0 + 10 * 1 + 5 * 2])


def test_cells_of_lines_in_centre_and_all_touched_modes():
    da = _raster(Affine(1.0, 0.0, 0.0, 0.0, -1.0, 4.0), (4, 4))  # cell (r, c) holds 4r + c
    geoms = gpd.GeoSeries(
        [
            shapely.LineString([(0, 4), (2, 2)]),  # through the vertex (1, 3): no corner cells
            shapely.LineString([(0.5, 3), (2.5, 3)]),  # on the edge y=3: the row south of it
            shapely.LineString([(1, 3.5), (1, 1.5)]),  # on the edge x=1: the column east of it
            shapely.LineString([(0.2, 3.8), (0.2, 3.8), (0.6, 3.9)]),  # in one cell
        ],
        crs=CRS,
    )
    touched = [{0, 5}, {4, 5, 6}, {1, 5, 9}, {0}]
    thin = [{0, 5, 10}, {4, 5, 6}, {1, 5, 9}, {0}]  # GDAL's line: also the end's cell
    for weights, expected_cells in (("all_touched", touched), ("center", thin)):
        out = zonal(da, geoms, ["count", "sum", "min", "max"], weights=weights).compute()
        for i, cells in enumerate(expected_cells):
            np.testing.assert_allclose(
                out["v"].values[i], [len(cells), sum(cells), min(cells), max(cells)]
            )
            assert out["pixel_count"].values[i] == len(cells)
            assert out["coverage_fraction"].values[i] == 1.0
    exact = zonal(da, geoms, ["count", "sum"]).compute()
    np.testing.assert_allclose(exact["v"].values[0], [2 * np.sqrt(2), np.sqrt(2) * 5])
    np.testing.assert_allclose(exact["v"].values[1], [2.0, 0.5 * 4 + 5 + 0.5 * 6])


def test_a_line_leaving_the_raster_covers_its_share():
    da = _raster(Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0), (4, 4))
    line = gpd.GeoSeries([shapely.LineString([(5, 35), (55, 35)])], crs=CRS)
    exact = zonal(da, line, ["count"]).compute()
    assert exact["v"].values[0, 0] == pytest.approx(35.0)
    assert exact["coverage_fraction"].values[0] == pytest.approx(0.7)
    centre = zonal(da, line, ["count"], weights="center").compute()
    assert centre["coverage_fraction"].values[0] == pytest.approx(4 / 6)  # 4 of 6 cells
    outside = gpd.GeoSeries([shapely.LineString([(100, 100), (200, 150)])], crs=CRS)
    far = zonal(da, outside, ["count", "mean"]).compute()
    assert far["v"].values[0, 0] == 0 and np.isnan(far["v"].values[0, 1])
    assert far["coverage_fraction"].values[0] == 0 and far["pixel_count"].values[0] == 0


def test_point_sets_count_each_point():
    da = _raster(Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0), (4, 4))
    geoms = gpd.GeoSeries(
        [
            shapely.MultiPoint([(5, 35), (6, 36), (15, 25), (100, 100)]),  # two in one cell
            shapely.MultiPoint([(10, 30)]),  # on a vertex: the cell east and south, as a Point
            shapely.Point(10, 30),
            shapely.GeometryCollection([shapely.Point(5, 35), shapely.MultiPoint([(15, 25)])]),
        ],
        crs=CRS,
    )
    exact = zonal(da, geoms, ["count", "sum", "mean", "median"]).compute()
    # values 0 (two points) and 5 (one): exactextract's weighted median interpolates
    np.testing.assert_allclose(exact["v"].values[0], [3, 5, 5 / 3, 2.5])
    assert exact["pixel_count"].values[0] == 2
    assert exact["coverage_fraction"].values[0] == pytest.approx(3 / 4)
    np.testing.assert_allclose(exact["v"].values[1], exact["v"].values[2])  # cell 5
    np.testing.assert_allclose(exact["v"].values[1], [1, 5, 5, 5])
    np.testing.assert_allclose(exact["v"].values[3], [2, 5, 2.5, 2.5])
    centre = zonal(da, geoms, ["count", "sum", "mean"], weights="center").compute()
    np.testing.assert_allclose(centre["v"].values[0], [2, 5, 2.5])  # a cell counts once
    assert centre["coverage_fraction"].values[0] == pytest.approx(2 / 3)  # 2 of 3 cells


def test_collections_of_one_kind_and_mixed_ones():
    da = _raster(Affine(1.0, 0.0, 0.0, 0.0, -1.0, 6.0), (6, 6))
    a, b = shapely.box(0.5, 0.5, 3.5, 3.5), shapely.box(2, 2, 5, 5)
    lines = [shapely.LineString([(0.1, 0.2), (5.3, 4.1)]), shapely.LineString([(1, 5), (4, 5)])]
    geoms = gpd.GeoSeries(
        [
            shapely.GeometryCollection([a, b]),
            shapely.union(a, b),
            shapely.GeometryCollection(lines),
            shapely.MultiLineString(lines),
            shapely.GeometryCollection(),
        ],
        crs=CRS,
    )
    out = zonal(da, geoms, ["count", "mean", "max"]).compute()
    v = out["v"].values
    np.testing.assert_allclose(v[0], v[1])  # polygons of a collection are dissolved
    np.testing.assert_allclose(v[2], v[3])  # lines are kept, like a MultiLineString
    assert v[4, 0] == 0 and np.isnan(v[4, 1]) and out["coverage_fraction"].values[4] == 0
    mixed = gpd.GeoSeries([shapely.GeometryCollection([a, lines[0]])], crs=CRS)
    with pytest.raises(InvalidGeometryError, match="explode") as err:
        zonal(da, mixed, "mean")
    assert isinstance(err.value, CasError) and isinstance(err.value, ValueError)


def test_bad_lines_are_refused_and_empty_ones_are_empty():
    da = _raster(Affine(1.0, 0.0, 0.0, 0.0, -1.0, 6.0), (6, 6))
    zero = gpd.GeoSeries([shapely.LineString([(1, 1), (1, 1)])], crs=CRS)
    with pytest.raises(InvalidGeometryError, match="invalid"):
        zonal(da, zero, "mean")
    empty = zonal(da, gpd.GeoSeries([shapely.LineString()], crs=CRS), ["count", "mean"])
    assert empty["v"].values[0, 0] == 0 and np.isnan(empty["v"].values[0, 1])
    geographic = da.rio.write_crs("EPSG:4326")
    line = gpd.GeoSeries([shapely.LineString([(1, 1), (2, 3)])], crs="EPSG:4326")
    with pytest.raises(InvalidArgumentError, match="area_weighted"):
        zonal(geographic, line, "mean", area_weighted=True)


def test_lines_and_point_sets_do_not_depend_on_chunks():
    rng = np.random.default_rng(7)
    transform = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 40.0)
    da = _raster(transform, (40, 40), rng.normal(0, 1, size=(40, 40)))
    geoms = [
        shapely.LineString(rng.uniform(-2, 42, size=(30, 2))),
        shapely.MultiLineString([rng.uniform(0, 40, size=(5, 2)) for _ in range(3)]),
        shapely.MultiPoint(rng.uniform(0, 40, size=(20, 2))),
        shapely.box(3, 3, 17.5, 12.2),
    ]
    series = gpd.GeoSeries(geoms, crs=CRS)
    stats = ["count", "sum", "mean", "median", "std", "min", "max"]
    base = zonal(da, series, stats).compute()
    for cube, chunks in ((da.chunk({"y": 7, "x": 9}), None), (da, 5), (da.chunk(13), 3)):
        for weights in ("exact", "all_touched"):
            out = zonal(cube, series, stats, chunks=chunks, weights=weights).compute()
            ref = base if weights == "exact" else zonal(da, series, stats, weights=weights)
            for name in ("v", "coverage_fraction", "pixel_count"):
                np.testing.assert_allclose(out[name].values, ref[name].values, rtol=1e-12)


def test_a_river_network_is_walked_quickly():
    """Many segments over a large grid: cost follows the cells the lines cross."""
    import time

    rng = np.random.default_rng(3)
    steps = rng.normal(0, 0.8, size=(20_000, 2)).cumsum(axis=0) + 1000
    river = shapely.LineString(steps)
    transform = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 2000.0)
    _weights(river, transform, (8, 8), MODE_EXACT)  # compiled
    start = time.perf_counter()
    weights = _weights(river, transform, (2000, 2000), MODE_EXACT)
    assert time.perf_counter() - start < 2.0
    inside = shapely.intersection(river, shapely.box(0, 0, 2000, 2000)).length
    assert weights.sum() == pytest.approx(inside, rel=1e-9)


def test_lines_and_point_sets_on_a_0_360_grid_match_their_minus_180_180_twins():
    lons = np.arange(360) + 0.5
    lats = 89.5 - np.arange(180)
    data = 1000.0 * np.arange(180)[:, None] + np.arange(360)[None, :]
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": lats, "x": lons}, name="v")
    da = da.rio.write_crs("EPSG:4326")
    across = shapely.LineString([(-10.5, 5.2), (-3.0, 7.7), (12.25, 11.1)])  # over the seam
    along = shapely.LineString([(0.0, 1.5), (0.0, 3.5)])  # on the seam itself
    points = shapely.MultiPoint([(-0.5, 1.5), (0.0, 1.5), (359.5, 1.5)])
    east = [
        shapely.MultiLineString(
            [
                [(349.5, 5.2), (357.0, 7.7), (360.0, 7.7 + 3 * 3.4 / 15.25)],
                [(0.0, 7.7 + 3 * 3.4 / 15.25), (12.25, 11.1)],
            ]
        ),
        along,
        shapely.MultiPoint([(359.5, 1.5), (0.0, 1.5), (359.5, 1.5)]),
    ]
    stats = ["count", "sum", "min", "max"]
    ours = zonal(da, gpd.GeoSeries([across, along, points], crs="EPSG:4326"), stats).compute()
    twins = zonal(da, gpd.GeoSeries(east, crs="EPSG:4326"), stats).compute()
    np.testing.assert_allclose(ours["v"].values, twins["v"].values, rtol=1e-9)
    np.testing.assert_allclose(ours["v"].values[0, 0], across.length, rtol=1e-9)
    # on the seam: column 0 (east of it), rows 86..88 (latitudes 3.5..1.5)
    np.testing.assert_allclose(ours["v"].values[1], [2.0, 174_000.0, 86_000.0, 88_000.0])
    np.testing.assert_allclose(ours["coverage_fraction"].values, 1.0)


def test_a_line_across_the_antimeridian_is_refused():
    da = _raster(Affine(1.0, 0.0, -180.0, 0.0, -1.0, 90.0), (180, 360)).rio.write_crs("EPSG:4326")
    line = gpd.GeoSeries([shapely.LineString([(179.5, 0.5), (-179.5, 1.5)])], crs="EPSG:4326")
    with pytest.raises(InvalidGeometryError, match="antimeridian"):
        zonal(da, line, "mean")


def test_lines_flow_through_extract_table_and_extract():
    import cas_xr as cas

    da = _raster(Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0), (4, 4))
    geoms = [
        shapely.LineString([(1, 39), (39, 1)]),
        shapely.MultiPoint([(5, 35), (6, 36), (15, 25)]),
        shapely.GeometryCollection([shapely.LineString([(5, 35), (25, 35)])]),
        shapely.box(0, 0, 20, 20),
    ]
    frame = gpd.GeoDataFrame({"name": list("abcd")}, geometry=geoms, crs=CRS)
    table = cas.extract_table(frame, {"mine": da}, aggregation=["mean", "sum", "count"])
    cube = zonal(da, frame, ["mean", "sum", "count"]).compute()
    np.testing.assert_allclose(
        table[["mine_mean", "mine_sum", "mine_count"]].to_numpy(), cube["v"].values, rtol=1e-12
    )
    np.testing.assert_allclose(table["mine_coverage_fraction"], 1.0)
    assert list(table["mine_quality"]) == ["good"] * 4

    line = {"type": "LineString", "coordinates": [[-96.59, 39.01], [-96.52, 39.08]]}
    request = cas.AttributeRequest(geometry=line, dataset_ids=["sample:elevation"])
    result = cas.extract_sync(request).results[0]
    assert result.quality == "good" and result.coverage_fraction == pytest.approx(1.0)
    assert np.isfinite(result.value)


def test_edge_rules_hold_whichever_way_the_y_axis_runs():
    da = _raster(Affine(1.0, 0.0, 0.0, 0.0, -1.0, 6.0), (6, 6))
    geoms = gpd.GeoSeries(
        [
            shapely.LineString([(0.5, 3), (4.5, 3)]),  # on a row edge: the row south of it
            shapely.LineString([(2, 0), (2, 6)]),  # on a column edge, the whole grid high
            shapely.LineString([(0, 0), (6, 6)]),  # through every corner on the diagonal
            shapely.LineString([(0, 6), (6, 6), (6, 0)]),  # the north and east borders
            shapely.MultiPoint([(1, 1), (3, 3), (3, 3), (6, 6)]),
        ],
        crs=CRS,
    )
    stats = ["count", "sum", "min", "max"]
    for weights in ("exact", "center"):
        north_up = zonal(da, geoms, stats, weights=weights).compute()
        south_up = zonal(da.isel(y=slice(None, None, -1)), geoms, stats, weights=weights)
        for name in ("v", "coverage_fraction", "pixel_count"):
            np.testing.assert_allclose(north_up[name].values, south_up[name].values, rtol=1e-12)
    exact = zonal(da, geoms, stats).compute()["v"].values
    np.testing.assert_allclose(exact[0], [4.0, 0.5 * 18 + 19 + 20 + 21 + 0.5 * 22, 18, 22])
    np.testing.assert_allclose(exact[1][[0, 2, 3]], [6.0, 2, 32])  # column 2, rows 0..5
    np.testing.assert_allclose(exact[2][[0, 2, 3]], [6 * np.sqrt(2), 5, 30])  # anti-diagonal
    # the north border belongs to row 0; the east border to a column beyond the grid
    np.testing.assert_allclose(exact[3][[0, 2, 3]], [6.0, 0, 5])


def test_lines_stay_lazy_and_the_accessor_takes_them():
    from cas_xr.testing import raise_if_dask_computes

    da = _raster(Affine(1.0, 0.0, 0.0, 0.0, -1.0, 20.0), (20, 20)).chunk(6)
    geoms = gpd.GeoSeries(
        [shapely.LineString([(1, 1), (18.5, 13.2)]), shapely.MultiPoint([(2, 3), (15, 15)])],
        crs=CRS,
    )
    for weights in ("exact", "center"):
        with raise_if_dask_computes():
            lazy = da.cas.zonal(geoms, ["mean", "count"], weights=weights)
        np.testing.assert_allclose(
            lazy.compute()["v"].values,
            zonal(da.compute(), geoms, ["mean", "count"], weights=weights)["v"].values,
        )


def test_request_models_take_lines_and_point_sets():
    import pydantic

    import cas_xr as cas

    for geometry in (
        {"type": "LineString", "coordinates": [[-96.5, 39.0], [-96.4, 39.1]]},
        {"type": "MultiLineString", "coordinates": [[[-96.5, 39.0], [-96.4, 39.1]]]},
        {"type": "MultiPoint", "coordinates": [[-96.5, 39.0], [-96.5, 39.0]]},
    ):
        request = cas.AttributeRequest(geometry=geometry, dataset_ids=["sample:elevation"])
        assert request.geometry.to_shapely().geom_type == geometry["type"]
    across = {"type": "LineString", "coordinates": [[179.5, 0.0], [-179.5, 1.0]]}
    with pytest.raises(pydantic.ValidationError, match="crosses the antimeridian"):
        cas.AttributeRequest(geometry=across, dataset_ids=["sample:elevation"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_lines_and_point_sets_match_rasterstats_in_centre_and_all_touched_modes(seed: int):
    """rasterstats burns lines with GDAL: thin without all_touched, every cell crossed with."""
    from rasterstats import zonal_stats

    rng = np.random.default_rng(seed)
    res = float(rng.choice([1.0, 30.0]))
    transform = Affine(res, 0.0, float(rng.uniform(-500, 500)), 0.0, -res, 1000.0)
    shape = (int(rng.integers(5, 25)), int(rng.integers(5, 25)))
    data = rng.normal(50, 10, size=shape)
    da = _raster(transform, shape, data)
    geoms = []
    for _ in range(4):  # within the raster: rasterstats crops its window to the raster
        uv = rng.uniform(0.01, np.array(shape[::-1]) - 0.01, size=(int(rng.integers(2, 6)), 2))
        geoms.append(shapely.LineString([transform * tuple(p) for p in uv]))
    geoms.append(shapely.MultiLineString(geoms[:2]))
    uv = rng.uniform(0.01, np.array(shape[::-1]) - 0.01, size=(6, 2))
    geoms.append(shapely.MultiPoint([transform * tuple(p) for p in [*uv, uv[0]]]))
    stats = ["count", "sum", "mean", "min", "max"]
    for weights, all_touched in (("center", False), ("all_touched", True)):
        ours = zonal(da, gpd.GeoSeries(geoms, crs=CRS), stats, weights=weights)["v"].values
        theirs = zonal_stats(
            geoms, data, affine=transform, stats=stats, all_touched=all_touched, nodata=-1e9
        )
        expected = [[row[k] for k in stats] for row in theirs]
        np.testing.assert_allclose(ours, expected, rtol=1e-9)


def test_cells_and_user_reductions_take_lines_and_point_sets():
    from cas_xr.zonal import cells

    da = _raster(Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0), (4, 4))  # cell k holds k
    geoms = gpd.GeoSeries(
        [
            shapely.LineString([(1, 39), (39, 1)]),
            shapely.MultiPoint([(5, 35), (6, 36), (15, 25)]),
            shapely.box(0, 0, 20, 20),
        ],
        crs=CRS,
    )
    table = cells(da, geoms).compute()
    line = table.isel(cell=np.flatnonzero(table["geometry"].to_numpy() == 0))
    assert line["cell_id"].to_numpy().tolist() == [0, 5, 10, 15]
    root2 = np.sqrt(2)
    np.testing.assert_allclose(line["coverage"], [9 * root2, 10 * root2, 10 * root2, 9 * root2])
    points = table.isel(cell=np.flatnonzero(table["geometry"].to_numpy() == 1))
    assert points["cell_id"].to_numpy().tolist() == [0, 5]
    np.testing.assert_allclose(points["coverage"], [2.0, 1.0])  # two points in cell 0
    centre = cells(da, geoms, weights="center").compute()
    assert np.all(centre["coverage"].to_numpy() == 1.0)

    def weighted_mean(values, coverage):
        return float(np.sum(values * coverage) / np.sum(coverage))

    out = zonal(da, geoms, ["mean", weighted_mean]).compute()["v"].values
    np.testing.assert_allclose(out[:, 1], out[:, 0], rtol=1e-12)
