"""zonal() on more of the cubes users bring: flipped and irregular axes, one row or cell,
no coordinates, CF grid mappings, every dtype and missing-value convention, floats that
still carry scale_factor, any chunking, Datasets on two grids, odd geometry indexes; each
against exactextract or numbers counted by hand, or a CasError that says what to do."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray
import shapely
import xarray as xr
from affine import Affine
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource

from cas_xr import errors
from cas_xr.zonal import zonal

UTM = "EPSG:32633"
STATS = ["mean", "sum", "count", "min", "max", "stdev", "majority", "median", "p10", "p90"]
EE = ["mean", "sum", "count", "min", "max", "stdev", "majority", "median", "quantile(q=0.1)",
      "quantile(q=0.9)"]  # fmt: skip
EE_KEYS = [*EE[:8], "quantile_10", "quantile_90"]
#: the statistics but the majority, whose ties a row of a few cells makes likely (cas_xr
#: takes the smallest value, exactextract the largest: docs/statistics.md)
UNTIED = [k for k, name in enumerate(STATS) if name != "majority"]
#: a north-up 10 x 12 grid of 1 m cells, its top-left corner at (0, 10)
LEFT, TOP, ROWS, COLS = 0.0, 10.0, 10, 12
GRID = Affine(1, 0, LEFT, 0, -1, TOP)
POLYGONS = [
    shapely.box(1.3, 2.1, 7.7, 8.9),
    shapely.Point(6.2, 5.4).buffer(3.3, quad_segs=6),
    shapely.Polygon([(0.6, 0.4), (11.3, 9.6), (10.8, 1.2)]),
]


def _values(seed: int = 0, dtype: str = "float64") -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 12, size=(ROWS, COLS)).astype(dtype)  # repeated values: a majority
    if arr.dtype.kind == "f":
        arr[rng.random(arr.shape) < 0.08] = np.nan
    return arr


def _cube(arr: np.ndarray, **attrs: object) -> xr.DataArray:
    """``arr`` north-up on the grid, cell-centre coordinates."""
    rows, cols = arr.shape
    coords = {"y": TOP - np.arange(rows) - 0.5, "x": LEFT + np.arange(cols) + 0.5}
    return xr.DataArray(arr, dims=("y", "x"), coords=coords, name="v", attrs=attrs).rio.write_crs(
        UTM
    )


def _exactextract(
    arr: np.ndarray,
    geoms: list[shapely.Geometry],
    *,
    grid: Affine = GRID,
    nodata: object = None,
    ops: list[str] = EE,
    keys: list[str] = EE_KEYS,
) -> np.ndarray:
    """exactextract on a north-up array with transform ``grid``: (geometry, statistic)."""
    rows, cols = arr.shape
    left, top, right, bottom = grid.c, grid.f, grid.c + cols * grid.a, grid.f + rows * grid.e
    src = NumPyRasterSource(arr, left, bottom, right, top, nodata=nodata)
    feats = [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in geoms]
    out = [r["properties"] for r in exact_extract(src, feats, ops)]
    return np.array([[np.nan if p[k] is None else float(p[k]) for k in keys] for p in out])


def _centre(arr: np.ndarray, geoms: list[shapely.Geometry]) -> np.ndarray:
    """Centre mode by hand: the valid cells whose centre is inside, weight 1 each."""
    rows, cols = arr.shape
    xs, ys = np.meshgrid(LEFT + np.arange(cols) + 0.5, TOP - np.arange(rows) - 0.5)
    out = []
    for g in geoms:
        v = arr[shapely.contains_xy(g, xs, ys)].astype(np.float64)
        v = v[~np.isnan(v)]
        codes, counts = np.unique(v, return_counts=True)
        out.append([v.mean(), v.sum(), v.size, v.min(), v.max(), v.std(), codes[counts.argmax()]])
    return np.array(out)


def _ours(result: xr.Dataset, stats: list[str] = STATS) -> np.ndarray:
    return np.asarray(result["v"].sel(zonal_statistics=stats).values, dtype=np.float64)


FLIPS = {
    "x-descending": {"x": slice(None, None, -1)},
    "both-flipped": {"x": slice(None, None, -1), "y": slice(None, None, -1)},
}


@pytest.mark.parametrize("chunks", [None, {"y": 4, "x": 5}], ids=["numpy", "dask"])
@pytest.mark.parametrize("flip", list(FLIPS))
def test_a_flipped_cube_gives_the_numbers_of_the_north_up_one(flip: str, chunks: dict | None):
    arr = _values()
    cube = _cube(arr).isel(FLIPS[flip])
    cube = cube.chunk(chunks) if chunks else cube
    assert cube.rio.transform().a < 0  # x runs west
    got = zonal(cube, POLYGONS, STATS, crs=UTM).compute()
    np.testing.assert_allclose(_ours(got), _exactextract(arr, POLYGONS), rtol=1e-6)
    centre = cube.cas.zonal(POLYGONS, STATS[:7], crs=UTM, weights="center").compute()
    np.testing.assert_allclose(_ours(centre, STATS[:7]), _centre(arr, POLYGONS), rtol=1e-12)
    point = zonal(cube, [shapely.Point(2.5, 6.5), shapely.Point(9.7, 1.2)], ["max"], crs=UTM)
    np.testing.assert_array_equal(point.compute()["v"].values.ravel(), [arr[3, 2], arr[8, 9]])


def _irregular(x: np.ndarray, at: int, value: float) -> np.ndarray:
    out = x.copy()
    out[at:] += value
    return out


XS = LEFT + np.arange(COLS) + 0.5
YS = TOP - np.arange(ROWS) - 0.5
IRREGULAR = {
    "gap": ("x", _irregular(XS, 5, 0.4), r"not evenly spaced \(steps from 1 to 1.4"),
    "gaussian": ("y", YS + 0.3 * np.sin(np.linspace(0, np.pi, ROWS)), "not evenly spaced"),
    "wrapped": ("x", np.roll(XS, 6), r"do not run one way \(position 5: 11.5, then 0.5\)"),
    "nan": (
        "x",
        np.where(np.arange(COLS) == 3, np.nan, XS),
        r"hold NaN or infinity \(at positions \[3\]",
    ),
    "repeated": ("x", np.where(np.arange(COLS) == 4, XS[3], XS), "do not run one way"),
}


@pytest.mark.parametrize("case", list(IRREGULAR))
def test_irregular_coordinates_raise_instead_of_a_mean_step(case: str):
    dim, values, message = IRREGULAR[case]
    cube = _cube(_values()).assign_coords({dim: values})
    with pytest.raises(errors.UnsupportedGridError, match=message) as caught:
        zonal(cube.rename(x="lon", y="lat"), POLYGONS, ["mean"], crs=UTM)
    assert isinstance(caught.value, ValueError) and "regrid" in str(caught.value)


def test_rounded_coordinates_are_read_as_rioxarray_reads_them():
    arr = _values()
    offset = 500_000.3  # float32 rounds eastings there to 1/32 m
    moved = [shapely.affinity.translate(g, offset) for g in POLYGONS]
    float32 = _cube(arr).assign_coords(x=(XS + offset).astype("float32"), y=YS.astype("float32"))
    jitter = np.random.default_rng(1).normal(0, 1e-6, COLS)  # float64 noise, 1e-6 of a cell
    for cube in (float32, _cube(arr).assign_coords(x=XS + offset + jitter)):
        got = zonal(cube, moved, STATS, crs=UTM).compute()
        want = _exactextract(arr, moved, grid=cube.rio.transform(recalc=True))
        np.testing.assert_allclose(_ours(got), want, rtol=1e-6)
    assert abs(float32.rio.transform(recalc=True).c - offset) < 1 / 32  # the rounding


def test_coordinates_are_cell_centres_as_rioxarray_reads_them():
    arr = _values()
    corners = _cube(arr).assign_coords(x=XS - 0.5, y=YS + 0.5)  # top-left corners, mislabelled
    grid = corners.rio.transform(recalc=True)
    assert grid == Affine(1, 0, -0.5, 0, -1, 10.5)  # half a cell off: nothing can tell
    got = zonal(corners, POLYGONS, STATS, crs=UTM).compute()
    np.testing.assert_allclose(_ours(got), _exactextract(arr, POLYGONS, grid=grid), rtol=1e-6)


CUTS = {"row": {"y": [4]}, "column": {"x": [6]}, "cell": {"y": [4], "x": [6]}}


@pytest.mark.parametrize("cut", list(CUTS))
def test_one_row_column_or_cell_takes_its_size_from_the_cubes_transform(cut: str):
    arr = _values(2)
    arr[4, 6] = 7.5
    full = _cube(arr).rio.write_transform(GRID)  # as rioxarray.open_rasterio labels a file
    (row,), (col,) = CUTS[cut].get("y", [0]), CUTS[cut].get("x", [0])
    grid = Affine(1, 0, LEFT + col, 0, -1, TOP - row)
    part = full.isel(CUTS[cut])
    want = _exactextract(np.asarray(part.values), POLYGONS, grid=grid)[:, UNTIED]
    got = zonal(part, POLYGONS, STATS, crs=UTM).compute()
    np.testing.assert_allclose(_ours(got)[:, UNTIED], want, rtol=1e-6)
    # a flipped cube keeps the transform it was read with: its x step is the wrong way
    mirrored = {d: [COLS - 1 - i for i in v] if d == "x" else v for d, v in CUTS[cut].items()}
    flipped = full.isel(x=slice(None, None, -1)).isel(mirrored)
    got = zonal(flipped, POLYGONS, STATS, crs=UTM).compute()
    np.testing.assert_allclose(_ours(got)[:, UNTIED], want, rtol=1e-6)
    with pytest.raises(errors.UnsupportedGridError, match="one cell along .* no transform"):
        zonal(_cube(arr).isel(CUTS[cut]), POLYGONS, ["mean"], crs=UTM)


def test_a_cube_without_coordinates_needs_its_transform():
    arr = _values(3)
    bare = xr.DataArray(arr, dims=("y", "x"), name="v").rio.write_crs(UTM)
    with pytest.raises(errors.UnsupportedGridError, match="no coordinates along x .* no transform"):
        zonal(bare, POLYGONS, ["mean"], crs=UTM)  # rioxarray would take cells of 1 at (0, 0)
    got = zonal(bare.rio.write_transform(GRID), POLYGONS, STATS, crs=UTM).compute()
    np.testing.assert_allclose(_ours(got), _exactextract(arr, POLYGONS), rtol=1e-6)


def test_a_coarsened_cube_cut_to_one_row_refuses_its_stale_transform():
    coarse = _cube(_values()).rio.write_transform(GRID).coarsen(x=2).mean()
    assert coarse.rio.transform().a == 1  # the source's cells, kept by coarsen
    with pytest.raises(
        errors.UnsupportedGridError,
        match=r"cells 1 apart along x \(east-west\) but its coordinates are 2 apart",
    ):
        zonal(coarse.isel(y=[4]), POLYGONS, ["mean"], crs=UTM)


def _ramp() -> xr.DataArray:
    """A 4 x 5 grid of 1 m cells, value 5 * row + column (row 0 at the top, y 3..4)."""
    coords = {"y": 3.5 - np.arange(4), "x": np.arange(5) + 0.5}
    data = np.arange(20.0).reshape(4, 5)
    return xr.DataArray(data, dims=("y", "x"), coords=coords, name="v").rio.write_crs(UTM)


ON_EDGES = [
    shapely.LineString([(2, 0.2), (2, 3.7)]),  # on the edge between columns 1 and 2
    shapely.LineString([(0.2, 2), (4.7, 2)]),  # on the edge between rows 1 and 2
    shapely.MultiPoint([(2, 0.5), (3, 1.5)]),
    shapely.Point(2, 2.5),
]


@pytest.mark.parametrize("weights", ["exact", "center", "all_touched"])
def test_edge_rules_hold_whichever_way_the_axes_run(weights: str):
    # east of a vertical edge, south of a horizontal one: column 2 from y 0.2 to 3.7 (cells
    # 17, 12, 7, 2 over 0.8, 1, 1, 0.7), row 2 from x 0.2 to 4.7; cells 17 and 13; cell 7
    by_length = {"exact": [34 / 3.5, (10 * 0.8 + 11 + 12 + 13 + 14 * 0.7) / 4.5, 15, 7]}
    want = by_length.get(weights, [(17 + 12 + 7 + 2) / 4, 12, 15, 7])
    for flip in (
        {},
        {"x": slice(None, None, -1)},
        {"y": slice(None, None, -1)},
        FLIPS["both-flipped"],
    ):
        got = zonal(_ramp().isel(flip), ON_EDGES, ["mean"], crs=UTM, weights=weights).compute()
        np.testing.assert_allclose(got["v"].values.ravel(), want, rtol=1e-12, err_msg=str(flip))


def _lonlat(arr: np.ndarray) -> xr.Dataset:
    """``arr`` on a lon/lat grid (0..12 E, 0..10 N) with a CF grid mapping variable."""
    coords = {"lat": YS, "lon": XS}
    v = xr.DataArray(arr, dims=("lat", "lon"), coords=coords, attrs={"grid_mapping": "crs"})
    sphere = {"semi_major_axis": 6378137.0, "inverse_flattening": 298.257223563}
    crs = xr.DataArray(0, attrs={"grid_mapping_name": "latitude_longitude", **sphere})
    return xr.Dataset({"v": v, "crs": crs})


def test_a_cf_grid_mapping_read_as_a_data_variable_gives_the_crs(tmp_path: Path):
    arr = _values(4)
    path = tmp_path / "cf.nc"
    _lonlat(arr).to_netcdf(path)
    want = _exactextract(arr, POLYGONS)
    with xr.open_dataset(path) as ds:  # decode_coords=True: 'crs' is a data variable
        assert "crs" in ds.data_vars and ds.rio.crs is None
        got = zonal(ds, POLYGONS, STATS, crs="EPSG:4326").compute()
        np.testing.assert_allclose(_ours(got), want, rtol=1e-6)
        with pytest.raises(errors.MissingCRSError, match="decode_coords='all'"):
            zonal(ds["v"], POLYGONS, crs="EPSG:4326")  # the variable alone lost it
    with xr.open_dataset(path, decode_coords="all") as ds:
        got = zonal(ds["v"], POLYGONS, STATS, crs="EPSG:4326").compute()
        np.testing.assert_allclose(_ours(got), want, rtol=1e-6)


def test_a_crs_set_on_the_accessor_only_survives_renaming_the_dims():
    arr = _values(5)
    cube = _cube(arr).drop_vars("spatial_ref").rename(x="lon", y="lat").transpose("lon", "lat")
    with pytest.warns(FutureWarning, match="write_crs"):  # rioxarray deprecates set_crs
        cube.rio.set_crs("EPSG:4326")
    got = cube.cas.zonal(POLYGONS, STATS, crs="EPSG:4326").compute()
    np.testing.assert_allclose(_ours(got), _exactextract(arr, POLYGONS), rtol=1e-6)


def _netcdf_fill(tmp_path: Path) -> tuple[xr.DataArray, np.ndarray, object]:
    arr = _values(6)
    arr[::3, ::4] = -999.0
    ds = _cube(arr).to_dataset()
    ds["v"].encoding["_FillValue"] = -999.0
    ds.to_netcdf(tmp_path / "fill.nc")
    raw = xr.open_dataset(tmp_path / "fill.nc", mask_and_scale=False, decode_coords="all")
    assert raw["v"].attrs["_FillValue"] == -999.0 and raw["v"].dtype == np.float64
    return raw["v"].load(), arr, -999.0


def _geotiff_flt_max(tmp_path: Path) -> tuple[xr.DataArray, np.ndarray, object]:
    import rasterio

    arr = _values(7, "float32")
    lowest = np.finfo(np.float32).min
    arr[1::4, ::3] = lowest
    profile = {"driver": "GTiff", "width": COLS, "height": ROWS, "count": 1, "crs": UTM}
    with rasterio.open(
        tmp_path / "f.tif", "w", dtype="float32", transform=GRID, nodata=float(lowest), **profile
    ) as dst:
        dst.write(np.nan_to_num(arr, nan=lowest), 1)
    opened = rioxarray.open_rasterio(tmp_path / "f.tif", mask_and_scale=False)
    return opened.squeeze("band", drop=True).rename("v"), np.nan_to_num(arr, nan=lowest), lowest


def _integers(dtype: str, low: int, **attrs: object) -> tuple[xr.DataArray, np.ndarray, object]:
    rng = np.random.default_rng(8)
    arr = (low + rng.integers(0, 6, size=(ROWS, COLS))).astype(dtype)
    nodata = attrs.get("nodata", attrs.get("_FillValue"))
    if "nodatavals" in attrs:
        nodata = attrs["nodatavals"][0]  # type: ignore[index]
    if nodata is None:
        return _cube(arr, **attrs), arr, None
    arr[::3, 1::4] = nodata
    return _cube(arr, **attrs), arr, arr.dtype.type(nodata)


DTYPES = {
    "bool": lambda _: (_cube(_values(9) > 6), (_values(9) > 6).astype("uint8"), None),
    "uint8-nodata-attr": lambda _: _integers("uint8", 0, nodata=255),
    "uint8-nodatavals": lambda _: _integers("uint8", 0, nodatavals=(255.0,)),
    "uint32-near-2**32": lambda _: _integers("uint32", 2**32 - 9),
    "int64-near-2**62": lambda _: _integers("int64", 2**62 + 3, _FillValue=-(2**63)),
    "float16": lambda _: (_cube(_values(10, "float16")), _values(10, "float32"), None),
    "int16-packed-one-element-attrs": lambda _: (
        _cube(_values(15, "int16"), scale_factor=np.array([0.5]), add_offset=np.array([1.0])),
        _values(15, "int16") * 0.5 + 1.0,
        None,
    ),
    "netcdf-fill-undecoded": _netcdf_fill,
    "geotiff-flt-max-undecoded": _geotiff_flt_max,
}


@pytest.mark.parametrize("case", list(DTYPES))
def test_every_dtype_and_missing_value_convention_gives_exactextracts_numbers(
    case: str, tmp_path: Path
):
    cube, arr, nodata = DTYPES[case](tmp_path)
    got = zonal(cube, POLYGONS, STATS, crs=UTM, quantile_dtype="raster").compute()
    want = _exactextract(arr, POLYGONS, nodata=nodata)  # integer quantiles rounded down
    np.testing.assert_allclose(_ours(got)[:, UNTIED], want[:, UNTIED], rtol=1e-6)


def test_valid_range_does_not_mask_cells_as_xarray_does_not():
    arr = _values(11)
    arr[2:5, 2:6] = 500.0
    cube = _cube(arr, valid_range=[0.0, 100.0], valid_min=0.0, valid_max=100.0)
    assert (xr.decode_cf(cube.to_dataset())["v"] == 500).any()  # xarray keeps them
    got = zonal(cube, POLYGONS, ["max", "mean"], crs=UTM).compute()
    want = _exactextract(arr, POLYGONS, ops=["max", "mean"], keys=["max", "mean"])
    np.testing.assert_allclose(_ours(got, ["max", "mean"]), want, rtol=1e-6)
    assert float(got["v"][0].sel(zonal_statistics="max")) == 500.0


def test_values_that_are_not_numbers_are_refused_at_once():
    dates = _cube(np.full((ROWS, COLS), np.datetime64("2020-01-01", "ns")))
    with pytest.raises(errors.InvalidArgumentError, match=r"dtype datetime64\[ns\]; cast"):
        zonal(dates, POLYGONS, ["mean"], crs=UTM)  # not when computed, in a task


def _layers() -> tuple[xr.DataArray, np.ndarray]:
    """A (time, member, y, x) cube and its layers' exactextract numbers."""
    data = np.stack([[_values(20 + 3 * t + m) for m in range(2)] for t in range(3)])
    cube = xr.DataArray(
        data,
        dims=("time", "member", "y", "x"),
        coords={"time": [2000, 2001, 2002], "member": ["a", "b"], "y": YS, "x": XS},
        name="v",
    ).rio.write_crs(UTM)
    refs = np.stack([[_exactextract(layer, POLYGONS) for layer in step] for step in data])
    return cube, refs


CHUNKS = {
    "uneven": {"y": (3, 5, 1, 1), "x": (7, 1, 4)},
    "ones": {"y": 1, "x": 1},
    "time-only": {"time": 1, "member": 1, "y": -1, "x": -1},
    "time-and-space": {"time": (2, 1), "member": 1, "y": 4, "x": 3},
}


@pytest.mark.parametrize("chunks", list(CHUNKS))
def test_any_chunking_gives_each_layers_numbers(chunks: str):
    cube, refs = _layers()
    cube = cube.transpose("x", "member", "y", "time").chunk(CHUNKS[chunks])
    got = zonal(cube, POLYGONS, STATS, crs=UTM)
    got = got.compute()["v"].transpose("time", "member", "geometry", "zonal_statistics")
    np.testing.assert_allclose(got.values[..., UNTIED], refs[..., UNTIED], rtol=1e-6)


def test_a_dataset_of_variables_with_different_dims():
    cube, refs = _layers()
    ds = xr.Dataset(
        {
            "v": cube.chunk({"y": 5}),
            "w": cube.isel(time=1, member=0, drop=True),
            "z": cube.isel(time=2, drop=True).transpose("member", "x", "y"),
            "steps": ("time", np.arange(3.0)),  # no spatial dims: not a raster, left out
        }
    )
    got = zonal(ds, POLYGONS, STATS, crs=UTM).compute()
    assert set(got.data_vars) >= {"v", "w", "z"} and "steps" not in got.data_vars
    assert got["w"].dims == ("geometry", "zonal_statistics")
    assert got["z"].dims == ("geometry", "member", "zonal_statistics")
    np.testing.assert_allclose(got["w"].values[:, UNTIED], refs[1, 0][:, UNTIED], rtol=1e-6)
    np.testing.assert_allclose(
        got["z"].sel(member="b").values[:, UNTIED], refs[2, 1][:, UNTIED], rtol=1e-6
    )


def test_a_dataset_with_variables_on_two_grids_is_refused_not_halved():
    fine = _cube(_values(14)).rename("fine")
    coarse = fine.coarsen(x=2, y=2).mean().rename(x="lon", y="lat").rename("coarse")
    bounds = xr.DataArray(np.zeros((ROWS, 2)), dims=("y", "nv"))  # CF bounds: not a grid
    ds = xr.Dataset({"fine": fine, "coarse": coarse, "y_bnds": bounds})
    with pytest.raises(errors.InvalidArgumentError, match=r"\['coarse'\] lie on other spatial"):
        zonal(ds, POLYGONS, ["mean"], crs=UTM)  # "coarse" was left out without a word
    got = zonal(ds[["fine", "y_bnds"]], POLYGONS, STATS, crs=UTM).compute()
    np.testing.assert_allclose(
        got["fine"].values[:, UNTIED], _exactextract(_values(14), POLYGONS)[:, UNTIED], rtol=1e-6
    )


@pytest.mark.parametrize("name", ["zonal_statistics", "time", "geometry", "v", "coverage_fraction"])
def test_an_index_named_like_a_part_of_the_result_is_refused(name: str):
    cube, _ = _layers()
    geoms = gpd.GeoSeries(POLYGONS, index=pd.Index([7, 8, 9], name=name), crs=UTM)
    with pytest.raises(errors.InvalidArgumentError, match=f"index is named '{name}'.*rename_axis"):
        zonal(cube, geoms, ["mean", "max"])  # it would relabel the statistics or the years


def test_repeated_and_multi_level_indexes_are_kept():
    arr = _values(12)
    want = _exactextract(arr, POLYGONS)[:, UNTIED]
    index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2), ("a", 1)], names=["basin", "n"])
    for labels in (["c", "a", "c"], index):
        geoms = gpd.GeoDataFrame(geometry=POLYGONS, index=labels, crs=UTM)
        got = zonal(_cube(arr), geoms, STATS).compute()
        np.testing.assert_allclose(_ours(got)[:, UNTIED], want, rtol=1e-6)
        assert list(got["index"].values) == list(labels)


def test_floats_with_scale_attributes_must_say_whether_they_are_packed(tmp_path: Path):
    import rasterio

    raw = np.random.default_rng(13).integers(700, 1000, size=(ROWS, COLS)).astype("int16")
    raw[::4, ::5] = -32768
    profile = {"driver": "GTiff", "width": COLS, "height": ROWS, "count": 1, "crs": UTM}
    with rasterio.open(
        tmp_path / "s.tif", "w", dtype="int16", transform=GRID, nodata=-32768, **profile
    ) as dst:
        dst.write(raw, 1)
        dst.scales, dst.offsets = (0.01,), (0.0,)
    want = _exactextract(np.where(raw == -32768, np.nan, raw * 0.01), POLYGONS)[:, UNTIED]
    stored = rioxarray.open_rasterio(tmp_path / "s.tif").squeeze("band", drop=True).rename("v")
    masked = stored.where(stored != stored.rio.nodata)  # still packed, attributes kept
    scaled = masked * stored.attrs["scale_factor"]  # physical, attributes kept all the same
    for ambiguous in (masked, scaled, xr.concat([stored, stored], "t").mean("t")):
        assert ambiguous.dtype.kind == "f" and ambiguous.attrs["scale_factor"] == 0.01
        with pytest.raises(errors.InvalidArgumentError, match=r"already scaled.*decode_cf"):
            zonal(ambiguous, POLYGONS, ["mean"], crs=UTM)  # scaled gave 1/100 of the mean
    scaled.attrs.pop("scale_factor"), scaled.attrs.pop("add_offset")
    decoded = xr.decode_cf(masked.to_dataset(name="v"))["v"]
    for cube in (stored, scaled, decoded):
        got = zonal(cube, POLYGONS, STATS, crs=UTM).compute()
        np.testing.assert_allclose(_ours(got)[:, UNTIED], want, rtol=1e-6)


def test_variables_with_different_grid_mappings_get_a_cas_error():
    arr = _values(16)
    a = _cube(arr).rename("a")
    b = _cube(arr).rio.write_crs("EPSG:32634", grid_mapping_name="other").rename("b")
    with pytest.raises(errors.MissingCRSError, match="Multiple grid mappings"):
        zonal(xr.Dataset({"a": a, "b": b}), POLYGONS, ["mean"], crs=UTM)  # was rioxarray's


def _scenes() -> xr.DataArray:
    """A (time, band, y, x) cube labelled as stackstac labels one: coordinates along dims."""
    rng = np.random.default_rng(7)
    cube = xr.DataArray(
        rng.random((2, 3, ROWS, COLS)),
        dims=("time", "band", "y", "x"),
        coords={
            "time": pd.to_datetime(["2021-05-01", "2021-05-11"]),
            "band": ["B02", "B03", "B04"],
            "common_name": ("band", ["blue", "green", "red"]),
            "eo:cloud_cover": ("time", [3.5, 41.0]),
            "id": ("time", ["S2A_1", "S2B_2"]),
            "y": TOP - np.arange(ROWS) - 0.5,
            "x": LEFT + np.arange(COLS) + 0.5,
            "northing": (("y", "x"), np.zeros((ROWS, COLS))),
        },
        name="refl",
    )
    return cube.rio.write_crs(UTM)


def test_coordinates_along_kept_dimensions_are_carried_as_xarray_reductions_carry_them():
    cube = _scenes()
    geoms = gpd.GeoSeries(POLYGONS, crs=UTM)
    bare = zonal(cube.drop_vars(["common_name", "eo:cloud_cover", "id", "northing"]), geoms)
    for order in [("time", "band", "y", "x"), ("x", "band", "y", "time")]:
        out = zonal(cube.transpose(*order), geoms, ["mean", "max"])
        assert out["common_name"].dims == ("band",)
        assert out["common_name"].values.tolist() == ["blue", "green", "red"]
        assert out["eo:cloud_cover"].values.tolist() == [3.5, 41.0]
        assert out["id"].values.tolist() == ["S2A_1", "S2B_2"]
        assert "northing" not in out.coords and "spatial_ref" not in out.coords  # spatial, scalar
        mean = out["refl"].sel(zonal_statistics="mean").transpose("geometry", "time", "band")
        np.testing.assert_array_equal(mean.values, bare["refl"].sel(zonal_statistics="mean"))
    # the result's own names win: an index named "id" labels the geometries, as before
    own = zonal(cube, geoms.rename_axis("id"), ["mean"])
    assert own["id"].dims == ("geometry",) and own["id"].values.tolist() == [0, 1, 2]
    points = zonal(cube, gpd.GeoSeries([shapely.Point(2.5, 3.5)], crs=UTM), ["mean"])
    assert points["common_name"].values.tolist() == ["blue", "green", "red"]
    from cas_xr.zonal import cells

    per_cell = cells(cube, geoms[:1])
    assert per_cell["eo:cloud_cover"].dims == ("time",) and "northing" not in per_cell.coords
