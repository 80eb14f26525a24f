"""``point_query`` against rasterstats' ``point_query`` (bilinear and nearest), live."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterstats import point_query as rs_point_query

from cas_xr.errors import InvalidArgumentError, InvalidGeometryError
from cas_xr.testing import raise_if_dask_computes
from cas_xr.zonal import point_query
from tests.test_zonal import _raster

CRS = "EPSG:32633"


def _points(rng: np.random.Generator, da: xr.DataArray, n: int) -> list[shapely.Point]:
    res = abs(float(da.x[1] - da.x[0]))
    x0, x1 = float(da.x.min()) - res, float(da.x.max()) + res
    y0, y1 = float(da.y.min()) - res, float(da.y.max()) + res
    xs, ys = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    # some on cell centres and edges, where rounding decides the window
    snap = rng.random(n) < 0.3
    xs[snap] = np.round(xs[snap] / (res / 2)) * (res / 2)
    ys[snap] = np.round(ys[snap] / (res / 2)) * (res / 2)
    return list(shapely.points(xs, ys))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    integer=st.booleans(),
    interpolate=st.sampled_from(["bilinear", "nearest"]),
)
def test_point_query_matches_rasterstats(seed: int, integer: bool, interpolate: str):
    rng = np.random.default_rng(seed)
    da = _raster(rng, integer=integer, ascending=False)
    if not integer:  # rasterstats masks the nodata value only, not NaN
        da = da.fillna(da.rio.nodata)
    pts = _points(rng, da, 30)
    arr = da.to_numpy()
    ref = rs_point_query(
        pts, arr, affine=da.rio.transform(), nodata=da.rio.nodata, interpolate=interpolate
    )
    ours = point_query(da, gpd.GeoSeries(pts, crs=CRS), interpolate=interpolate).compute()
    expected = np.array([np.nan if r is None else r for r in ref], dtype=np.float64)
    np.testing.assert_allclose(ours["v"], expected, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_hand_computed_bilinear_layers_ascending_grid_and_laziness():
    data = np.array([[0.0, 10.0, 20.0], [30.0, 40.0, 50.0], [60.0, 70.0, -1.0]])
    da = xr.DataArray(
        np.stack([data, np.where(data == -1, -1, data * 2)]), dims=("band", "y", "x"),
        coords={"band": [1, 2], "y": [2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5]}, name="v",
    ).rio.write_crs(CRS).rio.write_nodata(-1)  # fmt: skip
    pts = gpd.GeoSeries(
        [shapely.Point(1.0, 2.0), shapely.Point(1.25, 1.5), shapely.Point(1.9, 0.9),
         shapely.Point(9, 9), shapely.Point()],
        index=["a", "b", "c", "d", "e"], crs=CRS,
    )  # fmt: skip
    with raise_if_dask_computes():
        lazy = point_query(da.chunk({"x": 2, "y": 2}), pts)
    out = lazy.compute()
    assert out["v"].dims == ("geometry", "band")
    assert out["index"].to_numpy().tolist() == list("abcde")
    # (1, 2) is between the centres of 0, 10, 30, 40; (1.25, 1.5) on row 1, 3/4 of the way
    # from 30 to 40; (1.9, 0.9) has the nodata cell among its four: the nearest (70) is taken
    np.testing.assert_allclose(out["v"][:, 0], [20.0, 37.5, 70.0, np.nan, np.nan])
    np.testing.assert_allclose(out["v"][:, 1], [40.0, 75.0, 140.0, np.nan, np.nan])
    flipped = point_query(da.isel(y=slice(None, None, -1)), pts).compute()
    np.testing.assert_allclose(flipped["v"], out["v"])
    nearest = da.cas.point_query(pts, interpolate="nearest").compute()
    np.testing.assert_allclose(nearest["v"][:, 0], [40.0, 40.0, 70.0, np.nan, np.nan])


def test_point_query_errors():
    da = _raster(np.random.default_rng(1), integer=False, ascending=False)
    with pytest.raises(InvalidArgumentError, match="'bilinear' or 'nearest'"):
        point_query(da, gpd.GeoSeries([shapely.Point(0, 0)], crs=CRS), interpolate="cubic")
    with pytest.raises(InvalidGeometryError, match="takes points"):
        point_query(da, gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=CRS))
