"""A user's own cubes beside catalog datasets in extract_table / extract_cube."""

from __future__ import annotations

from pathlib import Path

import dask.array
import numpy as np
import pytest
import rioxarray
import xarray as xr

import cas_xr as cas
from cas_xr.errors import (
    BatchFailureWarning,
    InvalidArgumentError,
    InvalidDatasetIdError,
    MissingDimensionError,
)
from tests import test_table
from tests.test_table import _polygons, _reference

grid = test_table.grid  # the fixture: synthetic rasters in a 'grid' provider


def _cube(path: Path) -> xr.DataArray:
    da = rioxarray.open_rasterio(path, chunks={"x": 128, "y": 128}).squeeze("band", drop=True)
    return da.rename("mine")


def test_a_cube_gives_the_numbers_of_the_same_file_in_the_catalog(grid: dict[str, Path]):
    frame = _polygons(20)
    table = cas.extract_table(frame, ["grid:a", {"mine": _cube(grid["a"])}], aggregation="mean")
    np.testing.assert_allclose(table["mine_mean"], _reference(grid["a"], frame), rtol=1e-9)
    np.testing.assert_allclose(table["mine_mean"], table["grid:a_mean"], rtol=1e-12)
    np.testing.assert_array_equal(table["mine_quality"], table["grid:a_quality"])
    np.testing.assert_array_equal(table["mine_pixel_count"], table["grid:a_pixel_count"])
    metadata = table.attrs["cas_xr"]["datasets"]["mine"]
    assert metadata["provenance"]["provider"] == "user" and metadata["units"] == ""


def test_a_cube_in_x_y_order_gives_the_same_numbers(grid: dict[str, Path]):
    frame = _polygons(10)
    cube = _cube(grid["a"])
    table = cas.extract_table(
        frame, {"yx": cube, "xy": cube.transpose("x", "y")}, aggregation=["mean", "max"]
    )
    np.testing.assert_allclose(table["xy_mean"], table["yx_mean"], rtol=1e-12)
    np.testing.assert_array_equal(table["xy_max"], table["yx_max"])


def test_a_dataset_gives_one_dataset_per_variable(grid: dict[str, Path]):
    frame = _polygons(5)
    cube = _cube(grid["a"])
    double = cube.where(cube != cube.rio.nodata) * 2.0  # nodata as NaN
    ds = xr.Dataset({"height": cube, "double": double})
    table = cas.extract_table(frame, {"ds": ds}, aggregation="max")
    assert set(table.attrs["cas_xr"]["datasets"]) == {"ds.height", "ds.double"}
    np.testing.assert_allclose(table["ds.double_max"], 2 * table["ds.height_max"], rtol=1e-12)


def test_a_cube_is_cached_by_its_token(grid: dict[str, Path]):
    frame = _polygons(8)
    cube = _cube(grid["a"])
    first = cas.extract_table(frame, [{"mine": cube}])
    again = cas.extract_table(frame, [{"mine": cube}])
    assert again.attrs["cas_xr"]["summary"]["cached"] == 8
    np.testing.assert_array_equal(again["mine_mean"], first["mine_mean"])
    other = cas.extract_table(frame, [{"mine": cube + 1.0}])  # same name, other cube
    assert other.attrs["cas_xr"]["summary"]["computed"] == 8
    np.testing.assert_allclose(other["mine_mean"], first["mine_mean"] + 1.0, rtol=1e-12)


def _failing(cube: xr.DataArray) -> xr.DataArray:
    def boom(block: np.ndarray) -> np.ndarray:
        raise OSError("the disk went away")

    data = dask.array.map_blocks(boom, cube.data, dtype=cube.dtype)
    return cube.copy(data=data)


def test_a_failing_cube_is_missing_and_the_rest_of_the_batch_succeeds(grid: dict[str, Path]):
    frame = _polygons(6)
    with pytest.warns(BatchFailureWarning, match=r"broken \(OSError\)"):
        table = cas.extract_table(frame, ["grid:a", {"broken": _failing(_cube(grid["a"]))}])
    assert (table["broken_quality"] == "missing").all() and table["broken_mean"].isna().all()
    assert (table["grid:a_quality"] != "missing").all()
    failures = table.attrs["cas_xr"]["failures"]
    assert failures[0]["dataset_id"] == "broken" and "disk went away" in failures[0]["message"]


def test_bad_cubes_are_refused_before_any_work(grid: dict[str, Path]):
    frame = _polygons(2)
    cube = _cube(grid["a"])
    with pytest.raises(TypeError, match="dataset id .*, an xarray.DataArray or an xarray.Dataset"):
        cas.extract_table(frame, [{"mine": np.zeros((2, 2))}])
    with pytest.raises(InvalidDatasetIdError, match="without ':'"):
        cas.extract_table(frame, [{"my:dem": cube}])
    with pytest.raises(MissingDimensionError, match="cannot tell which are x and y"):
        cas.extract_table(frame, [{"mine": xr.DataArray(np.zeros((4, 4)), dims=("r", "c"))}])
    with pytest.raises(InvalidArgumentError, match=r"'zonal_statistics'.*rename"):
        cas.extract_table(frame, [{"mine": cube.expand_dims(zonal_statistics=[1, 2])}])
    no_crs = xr.DataArray(np.zeros((4, 4)), dims=("y", "x"))
    with pytest.raises(ValueError, match="no CRS"):
        cas.extract_table(frame, [{"mine": no_crs}])


def test_a_packed_cube_is_unpacked_and_judged_in_its_units(grid: dict[str, Path]):
    frame = _polygons(6)
    cube = _cube(grid["a"])
    plain = cas.extract_table(frame, {"plain": cube.assign_attrs(valid_range=[0.0, 500.0])})
    packed = (cube.where(cube != cube.rio.nodata) * 100).round().fillna(-32768).astype("int32")
    packed = packed.rio.write_nodata(-32768).assign_attrs(
        scale_factor=0.01, add_offset=0.0, valid_range=[0, 50_000]
    )
    table = cas.extract_table(frame, {"packed": packed})
    np.testing.assert_allclose(table["packed_mean"], plain["plain_mean"], atol=0.005)  # rounding
    assert table["packed_quality"].tolist() == plain["plain_quality"].tolist()
    assert "suspect" in table["packed_quality"].tolist()  # some means lie above 500
