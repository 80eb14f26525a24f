"""The small-request path's shortcuts label and compute exactly as the general route does."""

from __future__ import annotations

import dask.array as dsa
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine
from rioxarray.rioxarray import affine_to_coords

from cas_xr.sources._stac_common import _on_grid


def _labelled_by_rioxarray(data, transform, crs, nodata):
    rows, cols = data.shape
    coords = affine_to_coords(transform, cols, rows)
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": coords["y"], "x": coords["x"]})
    da = da.rio.write_crs(crs).rio.write_transform(transform)
    da.attrs["nodata"] = nodata
    return da


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32633", "ESRI:54009"])
@pytest.mark.parametrize(
    "transform",
    [Affine(0.001, 0, -96.7, 0, -0.001, 39.3), Affine(30, 0, 500_000, 0, -30, 4_000_000)],
)
def test_a_layer_read_by_tile_is_labelled_as_rioxarray_labels_it(crs: str, transform: Affine):
    data = dsa.zeros((50, 40), chunks=16)
    ours, theirs = (
        _on_grid(data, transform, crs, -9999.0),
        _labelled_by_rioxarray(data, transform, crs, -9999.0),
    )
    xr.testing.assert_identical(ours, theirs)
    assert ours.encoding == theirs.encoding
    assert ours.rio.crs == theirs.rio.crs
    assert ours.rio.transform() == theirs.rio.transform() == transform
    again = _on_grid(data, transform, crs, None)  # the CRS's attributes are shared, not mutated
    assert again.spatial_ref.attrs == theirs.spatial_ref.attrs
    assert again.attrs["nodata"] is None
