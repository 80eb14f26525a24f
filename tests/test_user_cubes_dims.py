"""A user's cube with other dimensions (band, member ...) in extract_table / extract_cube.

Each layer's numbers are checked against ``zonal()`` on that layer sliced out and against
exactextract on its values; the shapes, labels and names of the table and cube, the
cache (counted hits, one entry per geometry holding every layer in the cube's order),
failure isolation, and the names a dimension cannot take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource

import cas_xr as cas
from cas_xr.errors import (
    BatchFailureWarning,
    CasError,
    InvalidArgumentError,
    MissingDimensionError,
    QualityWarning,
)
from cas_xr.zonal import zonal
from tests import test_table
from tests.test_table import GRID, SIDE, _polygons, _reference
from tests.test_user_cubes import _failing

grid = test_table.grid  # the fixture: synthetic rasters in a 'grid' provider
zonal_calls = test_table.zonal_calls  # the fixture: the engine's zonal() calls

STATS = ["mean", "max", "count"]


def _raw(path: Path) -> xr.DataArray:
    """The file's values as stored (nodata -9999 in ``_FillValue``), chunked like it."""
    da = rioxarray.open_rasterio(path, chunks={"x": 128, "y": 128})
    return da.squeeze("band", drop=True)


def _bands(grid: dict[str, Path]) -> xr.DataArray:
    """Files a and b as the layers of a ``(band, y, x)`` cube, the band without labels."""
    return xr.concat([_raw(grid["a"]), _raw(grid["b"])], dim="band").rename("bands")


def _exactextract(arr: np.ndarray, frame: gpd.GeoDataFrame, ops: list[str]) -> np.ndarray:
    """exactextract on a north-up float array on the test grid, NaN missing: (geometry, op)."""
    left, top = GRID.c, GRID.f
    src = NumPyRasterSource(arr, left, top - SIDE * 30.0, left + SIDE * 30.0, top)
    feats = [{"type": "Feature", "properties": {}, "geometry": g.__geo_interface__}
             for g in frame.geometry]  # fmt: skip
    out = [r["properties"] for r in exact_extract(src, feats, ops)]
    return np.array([[p[op] for op in ops] for p in out], dtype=np.float64)


def _layer_numbers(cube: xr.DataArray, frame: gpd.GeoDataFrame, **at: Any) -> np.ndarray:
    """``zonal()`` on one layer sliced out of ``cube``: (geometry, statistic)."""
    one = zonal(cube.isel(at), frame.geometry, STATS).compute()
    return np.asarray(one[cube.isel(at).name].values, dtype=np.float64)


def test_a_band_cube_gives_each_bands_numbers(grid: dict[str, Path]):
    frame = _polygons(12)
    cube = _bands(grid)
    table = cas.extract_table(frame, ["grid:a", {"mine": cube}], aggregation=STATS)
    # long: one row per (geometry, band), the band labelled by position as xarray does
    assert table.index.names == ["cid", "band"] and len(table) == 2 * len(frame)
    assert table.index.get_level_values("band").tolist() == [0, 1] * len(frame)
    assert table.index.get_level_values("cid").tolist() == np.repeat(frame.index, 2).tolist()
    assert list(table.columns) == [
        "name", *(f"grid:a_{s}" for s in STATS), "grid:a_coverage_fraction",
        "grid:a_pixel_count", "grid:a_quality", *(f"mine_{s}" for s in STATS),
        "mine_coverage_fraction", "mine_pixel_count", "mine_quality", "geometry",
    ]  # fmt: skip
    assert (table["name"].to_numpy() == np.repeat(frame["name"].to_numpy(), 2)).all()
    for band, key in enumerate("ab"):
        rows = table.xs(band, level="band")
        want = _layer_numbers(cube, frame, band=band)
        np.testing.assert_allclose(rows[[f"mine_{s}" for s in STATS]], want, rtol=1e-12)
        np.testing.assert_allclose(rows["mine_mean"], _reference(grid[key], frame), rtol=1e-9)
        assert set(rows["mine_quality"].astype(str)) == {"good"}
    # the static catalog dataset repeats along the band, as along time
    np.testing.assert_array_equal(table.xs(0, level="band")["grid:a_mean"],
                                  table.xs(1, level="band")["grid:a_mean"])  # fmt: skip
    np.testing.assert_allclose(table.xs(0, level="band")["grid:a_mean"],
                               table.xs(0, level="band")["mine_mean"], rtol=1e-12)  # fmt: skip

    got = cas.extract_cube(frame, ["grid:a", {"mine": cube}], aggregation=STATS)
    assert got["mine"].dims == ("geometry", "band", "zonal_statistics")
    assert got["mine_quality"].dims == ("geometry", "band")
    assert got["grid:a"].dims == ("geometry", "zonal_statistics")
    assert got["band"].values.tolist() == [0, 1]
    np.testing.assert_array_equal(
        got["mine"].sel(zonal_statistics="mean").values.ravel(), table["mine_mean"]
    )


def _packed(grid: dict[str, Path]) -> tuple[xr.DataArray, np.ndarray]:
    """A CF-packed int16 ``(x, member, time, y)`` cube, and its layers unpacked (float, NaN)."""
    base = _raw(grid["a"]).values.astype(np.float64)
    base[base == -9999] = np.nan
    phys = np.stack([[base * (1 + 0.1 * t) + 7 * m for m in range(2)] for t in range(3)])
    scale, offset, fill = 0.1, 50.0, -32768
    packed = np.where(np.isnan(phys), fill, np.round((phys - offset) / scale)).astype(np.int16)
    unpacked = np.where(packed == fill, np.nan, packed * scale + offset)
    ref = _raw(grid["a"])
    cube = xr.DataArray(
        packed,
        dims=("time", "member", "y", "x"),
        coords={
            "time": pd.date_range("2020-01-01", periods=3, freq="MS"),
            "member": ["m0", "m1"],
            "y": ref["y"].values,
            "x": ref["x"].values,
        },
        name="packed",
        attrs={"scale_factor": scale, "add_offset": offset, "_FillValue": fill, "units": "m"},
    ).rio.write_crs(ref.rio.crs)
    return cube.transpose("x", "member", "time", "y").chunk({"x": 100, "y": 128}), unpacked


def test_a_packed_4d_cube_in_any_order_gives_each_layers_numbers(
    grid: dict[str, Path], zonal_calls: list[int]
):
    frame = _polygons(10)
    cube, unpacked = _packed(grid)
    assert cube.dtype == np.int16 and cube.dims == ("x", "member", "time", "y")
    table = cas.extract_table(frame, ["grid:a", {"packed": cube}], aggregation=STATS)
    assert len(zonal_calls) == 2  # one per dataset: every layer of the cube in one call
    assert table.index.names == ["cid", "time", "member"] and len(table) == 6 * len(frame)
    assert table.index.get_level_values("member").tolist()[:6] == ["m0", "m1"] * 3
    assert table.attrs["cas_xr"]["datasets"]["packed"]["units"] == "m"
    by_layer = table[[f"packed_{s}" for s in STATS]].to_numpy().reshape(len(frame), 3, 2, -1)
    for t in range(3):
        for m in range(2):
            want = _layer_numbers(cube, frame, time=t, member=m)
            np.testing.assert_allclose(by_layer[:, t, m], want, rtol=1e-12)
            oracle = _exactextract(unpacked[t, m], frame, STATS)
            np.testing.assert_allclose(by_layer[:, t, m], oracle, rtol=1e-6)  # count: float noise
    assert (table["packed_quality"] == "good").all()
    static = table["grid:a_mean"].to_numpy().reshape(len(frame), 6)
    assert (static == static[:, :1]).all()  # repeated along time and member

    got = cas.extract_cube(frame, {"packed": cube}, aggregation=STATS)
    assert got["packed"].dims == ("geometry", "time", "member", "zonal_statistics")
    assert got["packed_coverage_fraction"].dims == ("geometry", "time", "member")
    assert got["member"].values.tolist() == ["m0", "m1"]
    np.testing.assert_array_equal(got["time"].values, cube["time"].values)
    np.testing.assert_array_equal(got["packed"].values, by_layer)


def test_a_time_range_keeps_the_other_dimensions_over_several_batches(grid: dict[str, Path]):
    frame = _polygons(7)
    cube, _ = _packed(grid)
    table = cas.extract_table(
        frame, {"packed": cube}, time_range=("2020-02-01", "2020-03-31"), batch_size=3
    )
    assert table.index.names == ["cid", "time", "member"] and len(table) == 4 * len(frame)
    for t, stamp in ((1, "2020-02-01"), (2, "2020-03-01")):
        for m, member in enumerate(["m0", "m1"]):
            want = _layer_numbers(cube, frame, time=t, member=m)[:, 0]
            at = (pd.Timestamp(stamp), member)
            got = table.xs(at, level=("time", "member"))["packed_mean"]
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_an_end_given_as_a_date_keeps_that_days_step_stamped_at_noon(grid: dict[str, Path]):
    """Daymet-like steps at 12:00: ``end="2020-01-03"`` means through that day."""
    frame = _polygons(4)
    days = pd.date_range("2020-01-01T12:00", periods=4, freq="D")
    raw = _raw(grid["a"])
    cube = xr.concat([raw + k for k in range(4)], dim="time").assign_coords(time=days)
    cube = cube.rename("daily")
    through = cas.extract_table(frame, {"daily": cube}, time_range=("2020-01-01", "2020-01-03"))
    assert sorted(set(through.index.get_level_values("time"))) == list(days[:3])
    for k in range(3):
        want = _layer_numbers(cube, frame, time=k)[:, 0]
        got = through.xs(days[k], level="time")["daily_mean"]
        np.testing.assert_allclose(got, want, rtol=1e-12)
    midnight = cas.extract_table(
        frame, {"daily": cube}, time_range=("2020-01-01", "2020-01-03T00:00")
    )  # a time given is kept: the step at noon that day is after it
    assert sorted(set(midnight.index.get_level_values("time"))) == list(days[:2])


def test_coordinates_along_steps_and_layers_reach_the_cube_and_the_table(grid: dict[str, Path]):
    """As zonal() carries them; placed on the result's axes, missing where a cube has none."""
    frame = _polygons(5)
    cube, _ = _packed(grid)
    cube = cube.assign_coords(
        ensemble=("member", ["ctrl", "warm"]), issued=("time", ["jan", "feb", "mar"])
    )
    other = cube.isel(member=[1]).assign_coords(ensemble=("member", ["WARM"]), member=["m2"])
    datasets = {"packed": cube, "more": other}
    with pytest.warns(QualityWarning, match="no valid cell"):  # each cube's others' members
        got = cas.extract_cube(frame, datasets, time_range=("2020-02-01", "2020-03-31"))
    assert got["ensemble"].dims == ("member",) and got["member"].values.tolist() == [
        "m0", "m1", "m2"
    ]  # fmt: skip
    assert got["ensemble"].values.tolist()[:2] == ["ctrl", "warm"]  # the first cube's
    assert pd.isna(got["ensemble"].values[2])  # m2 is not one of its members
    assert got["issued"].values.tolist() == ["feb", "mar"]  # the steps kept
    table = cas.extract_table(frame, {"packed": cube}, time_range=("2020-02-01", "2020-03-31"))
    assert list(table.columns[:3]) == ["name", "ensemble", "issued"]
    levels = table.index.to_frame(index=False)
    np.testing.assert_array_equal(
        table["ensemble"], levels["member"].map({"m0": "ctrl", "m1": "warm"})
    )
    np.testing.assert_array_equal(
        table["issued"], levels["time"].map({pd.Timestamp("2020-02-01"): "feb",
                                             pd.Timestamp("2020-03-01"): "mar"})
    )  # fmt: skip
    again = cas.extract_table(frame, {"packed": cube}, time_range=("2020-02-01", "2020-03-31"))
    assert again.attrs["cas_xr"]["summary"]["computed"] == 0  # from the cache: the same table
    pd.testing.assert_frame_equal(again.drop(columns="geometry"), table.drop(columns="geometry"))


def test_a_second_call_is_a_cache_hit_and_labels_are_not_confused(grid: dict[str, Path]):
    frame = _polygons(8)
    cube = _bands(grid).assign_coords(band=["a", "b"])
    first = cas.extract_table(frame, {"mine": cube})
    assert first.attrs["cas_xr"]["summary"]["computed"] == 8
    again = cas.extract_table(frame, {"mine": cube})
    summary = again.attrs["cas_xr"]["summary"]
    assert (summary["cached"], summary["computed"]) == (8, 0)
    pd.testing.assert_frame_equal(again.drop(columns="geometry"), first.drop(columns="geometry"))
    # the same layers labelled the other way, or in another order, are other cubes
    swapped = cas.extract_table(frame, {"mine": cube.assign_coords(band=["b", "a"])})
    assert swapped.attrs["cas_xr"]["summary"]["computed"] == 8
    np.testing.assert_array_equal(swapped.xs("b", level="band")["mine_mean"],
                                  first.xs("a", level="band")["mine_mean"])  # fmt: skip
    reordered = cas.extract_table(frame, {"mine": cube.isel(band=[1, 0])})
    assert reordered.attrs["cas_xr"]["summary"]["computed"] == 8
    for band in ("a", "b"):
        np.testing.assert_array_equal(reordered.xs(band, level="band")["mine_mean"],
                                      first.xs(band, level="band")["mine_mean"])  # fmt: skip
    cube_again = cas.extract_cube(frame, {"mine": cube})  # the cube view shares the cache
    assert '"cached": 8' in cube_again.attrs["cas_summary"]


def test_two_cubes_share_a_dimension_on_the_union_of_their_labels(grid: dict[str, Path]):
    frame = _polygons(5)
    cube = _bands(grid).assign_coords(band=[10, 20])
    with pytest.warns(QualityWarning, match="missing"):
        table = cas.extract_table(frame, {"both": cube, "first": cube.isel(band=[0])})
    assert table.index.get_level_values("band").tolist() == [10, 20] * 5
    np.testing.assert_array_equal(table.xs(10, level="band")["first_mean"],
                                  table.xs(10, level="band")["both_mean"])  # fmt: skip
    lacking = table.xs(20, level="band")
    assert lacking["first_mean"].isna().all() and lacking["first_coverage_fraction"].isna().all()
    assert (lacking["first_quality"] == "missing").all()


def test_a_distribution_is_given_per_layer(grid: dict[str, Path]):
    frame = _polygons(6)
    zones = _raw(grid["c"])  # int16 zones, nodata -1
    shifted = zones.where(zones == -1, zones + 1000)  # nodata stays -1
    cube = xr.concat([zones, shifted], dim="band").rename("zones")
    table = cas.extract_table(frame, {"z": cube}, aggregation=["majority", "distribution"])
    np.testing.assert_array_equal(table.xs(1, level="band")["z_majority"],
                                  table.xs(0, level="band")["z_majority"] + 1000)  # fmt: skip
    shares = table.filter(like="z_distribution_")
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    assert (shares.xs(0, level="band").filter(regex=r"_1\d{3}$").to_numpy() == 0).all()


def test_a_failing_cube_is_missing_in_every_layer_and_the_rest_succeeds(
    grid: dict[str, Path],
):
    frame = _polygons(4)
    with pytest.warns(BatchFailureWarning, match=r"broken \(OSError\)"):
        table = cas.extract_table(frame, ["grid:a", {"broken": _failing(_bands(grid))}])
    assert len(table) == 8 and (table["broken_quality"] == "missing").all()
    assert (table["grid:a_quality"] == "good").all()


@pytest.mark.parametrize(
    ("dim", "where"),
    [
        ("name", "table"),  # an input column the table keeps
        ("cid", "both"),  # the input index
        ("mine_extra", "both"),  # a column of the dataset: mine_<...>
        ("grid:a", "both"),  # another dataset
        ("zonal_statistics", "both"),
        ("geometry", "both"),
        ("index", "both"),
        ("class", "both"),
        ("coverage_fraction", "both"),
    ],
)
def test_a_dimension_named_like_a_part_of_the_result_is_refused(
    grid: dict[str, Path], dim: str, where: str, zonal_calls: list[int]
):
    frame = _polygons(3)
    cube = _bands(grid).rename(band=dim)
    entries = ["grid:a", {"mine": cube}]
    with pytest.raises(InvalidArgumentError, match=f"'{dim}'.*rename") as caught:
        cas.extract_table(frame, entries)
    assert isinstance(caught.value, CasError) and isinstance(caught.value, ValueError)
    if where == "both":
        with pytest.raises(InvalidArgumentError, match=f"'{dim}'"):
            cas.extract_cube(frame, entries)
    else:  # a cube keeps no input columns
        assert cas.extract_cube(frame, entries)["mine"].dims[1] == dim
    assert len(zonal_calls) == (0 if where == "both" else 2)  # refused before any work


def test_refusals_name_what_to_change(grid: dict[str, Path]):
    frame = _polygons(2)
    cube = _bands(grid)
    no_xy = xr.DataArray(np.zeros((2, 4, 4)), dims=("band", "row", "col"))
    with pytest.raises(MissingDimensionError, match=r"cannot tell which are x and y.*rename"):
        cas.extract_table(frame, {"mine": no_xy})
    with pytest.raises(InvalidArgumentError, match="band.* repeat"):
        cas.extract_table(frame, {"mine": cube.assign_coords(band=[1, 1])})
    with pytest.raises(InvalidArgumentError, match="empty"):
        cas.extract_table(frame, {"mine": cube.isel(band=[])})
    with pytest.raises(InvalidArgumentError, match=r"weights_raster .*\['band'\].*isel"):
        cas.extract_table(frame, "grid:a", aggregation="weighted_mean", weights_raster=cube)


def test_a_weights_raster_weighs_every_layer(grid: dict[str, Path]):
    frame = _polygons(5)
    cube = _bands(grid)
    weights = _raw(grid["b"])
    table = cas.extract_table(frame, {"mine": cube}, aggregation="weighted_mean",
                              weights_raster=weights)  # fmt: skip
    for band in (0, 1):
        layer = cube.isel(band=band)
        want = zonal(layer, frame.geometry, ["weighted_mean"], weights_raster=weights).compute()
        np.testing.assert_allclose(
            table.xs(band, level="band")["mine_weighted_mean"],
            want[layer.name].values.ravel(), rtol=1e-12,
        )  # fmt: skip


def test_cache_entries_keep_the_layers_of_each_step():
    from cas_xr.engine._entries import Block, decode, encode

    rng = np.random.default_rng(3)
    times = np.array(["2020-01-01", "2020-02-01"], dtype="datetime64[ns]")
    layered = Block(
        positions=np.array([5, 2]), stats=rng.random((2, 6, 2)), coverage=rng.random((2, 6)),
        pixels=rng.integers(0, 9, (2, 6)), dist=np.zeros((2, 6, 0)), times=times,
        classes=np.empty(0), layers=3,
    )  # fmt: skip
    flat = Block(  # the same times, one layer: two rows
        positions=np.array([7, 1]), stats=layered.stats[:, :2], coverage=layered.coverage[:, :2],
        pixels=layered.pixels[:, :2], dist=np.zeros((2, 2, 0)), times=times, classes=np.empty(0),
    )  # fmt: skip
    back = decode([5, 2, 7, 1], encode(layered) + encode(flat))
    assert [b.layers for b in back] == [3, 1]  # one block per layer count
    for block, want in zip(back, (layered, flat), strict=True):
        for name in ("positions", "stats", "coverage", "pixels", "times"):
            np.testing.assert_array_equal(getattr(block, name), getattr(want, name))
