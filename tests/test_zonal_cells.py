"""Per-cell outputs (``cas_xr.zonal.cells``) against exactextract 0.3, live."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cas_xr.errors import ArgumentTypeError, InvalidArgumentError
from cas_xr.testing import raise_if_dask_computes
from cas_xr.zonal import cells
from tests.test_zonal import _polygons, _raster

#: Cells covered by less than this are slivers that exactextract (float32 coverage) and
#: cas_xr (drops below COVERAGE_NOISE) may keep or drop: only bounded, not equated.
SLIVER = 1e-7
PER_CELL = ["values", "coverage", "weights", "cell_id", "center_x", "center_y"]


def _source(da: xr.DataArray) -> NumPyRasterSource:
    north_up = da if float(da.y[0]) > float(da.y[-1]) else da.isel(y=slice(None, None, -1))
    t = north_up.rio.transform()
    arr = np.asarray(north_up.values)
    ny, nx = arr.shape
    nodata = da.rio.nodata
    return NumPyRasterSource(
        arr,
        t.c,
        t.f + ny * t.e,
        t.c + nx * t.a,
        t.f,
        nodata=None if nodata is None else arr.dtype.type(nodata),
    )


def _reference(
    da: xr.DataArray, weights: xr.DataArray, polygons: list[shapely.Geometry]
) -> list[dict]:
    feats = [
        {"type": "Feature", "properties": {}, "geometry": g.__geo_interface__} for g in polygons
    ]
    out = exact_extract(_source(da), feats, PER_CELL, weights=_source(weights), output="geojson")
    return [r["properties"] for r in out]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    integer=st.booleans(),
    ascending=st.booleans(),
    window=st.sampled_from([8, 1000]),
)
def test_per_cell_outputs_match_exactextract(
    seed: int, integer: bool, ascending: bool, window: int
):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=integer, ascending=ascending)
    weights = (da.copy(data=rng.uniform(0.5, 3.0, da.shape)) * 1.0).rio.write_nodata(None)
    polygons = _polygons(rng, da, int(rng.integers(1, 8)))
    table = cells(
        da, gpd.GeoSeries(polygons, crs="EPSG:32633"), chunks=window, weights_raster=weights
    ).compute()
    ny, nx = da.shape
    for i, ref in enumerate(_reference(da, weights, polygons)):
        mine = table.isel(cell=np.flatnonzero(table["geometry"].to_numpy() == i))
        rows, cols = np.divmod(mine["cell_id"].to_numpy(), nx)
        assert np.all(np.diff(mine["cell_id"].to_numpy()) > 0)  # row-major within a geometry
        if ascending:  # exactextract numbers the cells of the north-up grid
            rows = ny - 1 - rows
        ours = {
            int(k): (v, c, w, x, y)
            for k, v, c, w, x, y in zip(
                rows * nx + cols,
                mine["values"].to_numpy(),
                mine["coverage"].to_numpy(),
                mine["weights"].to_numpy(),
                mine["center_x"].to_numpy(),
                mine["center_y"].to_numpy(),
                strict=True,
            )
            if not np.isnan(v)  # exactextract leaves out missing cells
        }
        theirs = {
            int(k): (v, c, w, x, y)
            for k, v, c, w, x, y in zip(
                *(ref[name] for name in ["cell_id", *PER_CELL[:3]]),
                ref["center_x"],
                ref["center_y"],
                strict=True,
            )
        }
        for only, side in (
            (ours.keys() - theirs.keys(), ours),
            (theirs.keys() - ours.keys(), theirs),
        ):
            assert all(side[k][1] < SLIVER for k in only), (i, sorted(only))
        for k in ours.keys() & theirs.keys():
            got, want = np.asarray(ours[k]), np.asarray(theirs[k], dtype=np.float64)
            assert got[0] == pytest.approx(want[0], rel=1e-6), (i, k, "values")
            assert got[1] == pytest.approx(want[1], abs=1e-6), (i, k, "coverage")
            assert got[2] == pytest.approx(want[2], rel=1e-6), (i, k, "weights")
            assert got[3:] == pytest.approx(want[3:], rel=1e-9), (i, k, "centre")


def _grid() -> xr.DataArray:
    data = np.arange(30, dtype="float64").reshape(5, 6)
    data[2, 2] = np.nan
    da = xr.DataArray(
        data, dims=("y", "x"), coords={"y": 4.5 - np.arange(5), "x": 0.5 + np.arange(6)}
    )
    return da.rio.write_crs("EPSG:32633")


def test_hand_computed_table_with_points_layers_and_input_order():
    da = xr.concat([_grid(), _grid() * 10], dim="time").assign_coords(time=[1, 2])
    geoms = gpd.GeoSeries(
        [shapely.box(1.5, 2.0, 3.0, 3.0), shapely.Point(0.2, 4.9), shapely.box(10, 10, 11, 11)],
        index=["b", "p", "out"],
        crs="EPSG:32633",
    )
    with raise_if_dask_computes():
        table = cells(da.chunk({"x": 2, "y": 2}), geoms, chunks=2)
    table = table.compute()
    assert table["geometry"].to_numpy().tolist() == [0, 0, 1]
    assert table["index"].to_numpy().tolist() == ["b", "b", "p"]
    # row 2 (y 2..3): cell (2, 1) half covered, cell (2, 2) fully covered but NaN
    assert table["cell_id"].to_numpy().tolist() == [13, 14, 0]
    assert table["coverage"].to_numpy().tolist() == [0.5, 1.0, 1.0]
    assert table["center_x"].to_numpy().tolist() == [1.5, 2.5, 0.5]
    assert table["center_y"].to_numpy().tolist() == [2.5, 2.5, 4.5]
    assert table["values"].dims == ("time", "cell")
    np.testing.assert_array_equal(table["values"], [[13, np.nan, 0], [130, np.nan, 0]])
    frame = table.to_dataframe()
    assert len(frame) == 6 and {"values", "coverage", "cell_id"} <= set(frame.columns)


def test_weight_modes_and_dataset_names():
    ds = xr.Dataset({"a": _grid(), "b": _grid() + 1})
    geom = gpd.GeoSeries([shapely.box(1.5, 2.0, 3.0, 3.0)], crs="EPSG:32633")
    centre = cells(ds, geom, weights="center").compute()
    assert centre["cell_id"].to_numpy().tolist() == [14]  # (2, 1)'s centre is on the edge
    touched = cells(ds, geom, weights="all_touched").compute()
    assert touched["coverage"].to_numpy().tolist() == [1.0, 1.0]
    assert touched["b_values"].to_numpy().tolist()[0] == 14.0


def test_accessor_and_errors():
    da = _grid()
    geom = gpd.GeoSeries([shapely.box(1.5, 2.0, 3.0, 3.0)], crs="EPSG:32633")
    assert da.cas.cells(geom)["cell_id"].to_numpy().tolist() == [13, 14]
    with pytest.raises(InvalidArgumentError, match="weights must be one of"):
        cells(da, geom, weights="nearest")
    with pytest.raises(InvalidArgumentError, match="same grid"):
        cells(da, geom, weights_raster=da.isel(x=slice(1, None)))
    with pytest.raises(ArgumentTypeError, match="DataArray"):
        cells(da, geom, weights_raster=np.ones(da.shape))  # type: ignore[arg-type]
