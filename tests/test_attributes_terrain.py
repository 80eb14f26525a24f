"""Derived terrain (slope, aspect) against hand-computed surfaces, and derived dataset ids.

Expected values come from the surfaces' construction, with cell lengths measured by
pyproj's geodesic (not by the code under test): a plane has the slope ``atan(gradient)``
everywhere, a cone faces away from its apex.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import cas_xr as cas
from cas_xr.attributes import aspect, gradient, slope, slope_m_per_km
from cas_xr.catalog import load_provider_file
from cas_xr.errors import ProviderDefinitionError, UnsupportedGridError
from cas_xr.sample import sample_catchments_path
from cas_xr.testing import raise_if_dask_computes

GEOD = pyproj.Geod(ellps="WGS84")


def geographic(z: np.ndarray, *, lat0: float, res: float, lon0: float = 10.0) -> xr.DataArray:
    """A north-up EPSG:4326 grid of ``z`` whose centre row is at ``lat0``."""
    rows, cols = z.shape
    lat = lat0 + (rows // 2 - np.arange(rows)) * res
    lon = lon0 + np.arange(cols) * res
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": lat, "x": lon})
    return da.rio.write_crs("EPSG:4326")


def projected(z: np.ndarray, *, res: float = 30.0) -> xr.DataArray:
    rows, cols = z.shape
    y = 5_000_000.0 - (np.arange(rows) + 0.5) * res
    x = 500_000.0 + (np.arange(cols) + 0.5) * res
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x})
    return da.rio.write_crs("EPSG:32632")


@pytest.mark.parametrize("lat0", [0.0, 45.0, 60.0, -70.0])
def test_slope_of_a_plane_at_a_known_latitude(lat0: float) -> None:
    res, rows, cols = 0.001, 9, 11
    # cell lengths at the centre row, measured by the geodesic
    dx = GEOD.inv(10.0, lat0, 10.0 + res, lat0)[2]
    dy = GEOD.inv(10.0, lat0 - res, 10.0, lat0 + res)[2] / 2
    a, b = 0.03, -0.04  # dz/d(east), dz/d(north): 50 m/km, facing north-east... downhill
    east_m = np.arange(cols) * dx
    north_m = (rows // 2 - np.arange(rows)) * dy
    z = a * east_m[None, :] + b * north_m[:, None]
    dem = geographic(z, lat0=lat0, res=res)
    centre = rows // 2
    got = slope(dem).values[centre, 1:-1]
    np.testing.assert_allclose(got, math.degrees(math.atan(math.hypot(a, b))), rtol=1e-6)
    np.testing.assert_allclose(slope_m_per_km(dem).values[centre, 1:-1], 50.0, rtol=1e-6)
    # downhill is against the gradient (-a, -b) = (west, north): azimuth atan2(-a, -b)
    expected_aspect = math.degrees(math.atan2(-a, -b)) % 360
    np.testing.assert_allclose(aspect(dem).values[centre, 1:-1], expected_aspect, atol=1e-6)


def test_east_west_cells_shrink_with_latitude() -> None:
    """z grows by the same height per cell eastward: the slope grows as cells get narrower."""
    res, rows, cols, lat0 = 0.01, 7, 5, 60.0
    dem = geographic(np.tile(np.arange(cols) * 1.0, (rows, 1)), lat0=lat0, res=res)
    got = slope_m_per_km(dem).values[1:-1, 2]
    lats = dem["y"].values[1:-1]
    widths = np.array([GEOD.inv(10.0, lat, 10.0 + res, lat)[2] for lat in lats])
    np.testing.assert_allclose(got, 1000.0 / widths, rtol=1e-6)
    assert np.all(np.diff(got) < 0)  # rows go south: wider cells, gentler slope


def test_slope_of_a_plane_on_a_projected_grid_everywhere_inside() -> None:
    y, x = np.mgrid[0:20, 0:30] * 30.0
    dem = projected(0.1 * x - 0.2 * (-y))  # rows go south: north_m = -y
    got = slope(dem).values
    assert np.isnan(got[0]).all() and np.isnan(got[-1]).all()
    assert np.isnan(got[:, 0]).all() and np.isnan(got[:, -1]).all()
    np.testing.assert_allclose(got[1:-1, 1:-1], math.degrees(math.atan(math.hypot(0.1, 0.2))))


def test_aspect_of_a_cone_faces_away_from_the_apex() -> None:
    n, res = 41, 10.0
    centre = n // 2
    rows, cols = np.mgrid[0:n, 0:n]
    east = (cols - centre) * res
    north = (centre - rows) * res
    dem = projected(1000.0 - np.hypot(east, north), res=res)
    got = aspect(dem).values
    # on the axes and diagonals Horn's stencil is symmetric: the exact compass direction
    for dr, dc, expected in [
        (-5, 0, 0.0), (-5, 5, 45.0), (0, 5, 90.0), (5, 5, 135.0),
        (5, 0, 180.0), (5, -5, 225.0), (0, -5, 270.0), (-5, -5, 315.0),
    ]:  # fmt: skip
        assert got[centre + dr, centre + dc] == pytest.approx(expected, abs=1e-9)
    # elsewhere (away from the apex) within a degree of the true azimuth
    azimuth = np.degrees(np.arctan2(east, north)) % 360
    far = (np.hypot(east, north) > 3 * res) & ~np.isnan(got)
    diff = (got - azimuth + 180) % 360 - 180
    assert np.abs(diff[far]).max() < 1.0
    # the cone's slope is 45 degrees away from the apex
    np.testing.assert_allclose(slope(dem).values[far], 45.0, atol=1.0)


def test_flat_has_no_aspect_and_nodata_spreads_one_cell() -> None:
    z = np.full((7, 7), 100.0)
    z[3, 3] = -9999.0
    dem = projected(z)
    dem.attrs["nodata"] = -9999.0
    s = slope(dem).values
    assert np.isnan(s[2:5, 2:5]).all()  # the nodata cell and its neighbours
    assert s[1, 1] == 0.0 and s[5, 5] == 0.0
    assert np.isnan(aspect(dem).values[1, 1])


@pytest.mark.parametrize("chunks", [5, 16])
def test_the_same_numbers_with_one_chunk_and_with_many(chunks: int) -> None:
    rng = np.random.default_rng(5)
    z = np.cumsum(np.cumsum(rng.normal(size=(33, 47)), axis=0), axis=1)
    dem = geographic(z, lat0=47.0, res=0.0005)
    whole = {f.__name__: f(dem.chunk(-1)).values for f in (slope, slope_m_per_km, aspect)}
    with raise_if_dask_computes():
        lazy = {f.__name__: f(dem.chunk(chunks)) for f in (slope, slope_m_per_km, aspect)}
    for name, da in lazy.items():
        assert da.chunks is not None
        np.testing.assert_array_equal(da.values, whole[name], err_msg=name)


def test_gradient_refuses_what_it_cannot_measure() -> None:
    dem = projected(np.zeros((5, 5)))
    with pytest.raises(UnsupportedGridError, match="no CRS"):
        gradient(xr.DataArray(np.zeros((5, 5)), dims=("y", "x")))
    with pytest.raises(UnsupportedGridError, match=r"\(y, x\)"):
        gradient(dem.expand_dims(band=[1]))
    feet = dem.rio.write_crs("EPSG:2227")  # California zone 3, US survey feet
    with pytest.raises(UnsupportedGridError, match="metres or degrees"):
        gradient(feet)


# -- derived datasets in the catalog -------------------------------------------------------

BOX = (-96.60, 39.00, -96.50, 39.10)


def test_a_derived_id_is_a_dataset_id() -> None:
    connector = cas.get_connector("sample")
    assert connector.dataset("slope").variables[0].units == "degree"
    derived = connector.open("slope_m_per_km", bbox=BOX)
    assert derived.attrs["cas_provenance"]["derived"]["from"] == "sample:elevation"
    assert derived.attrs["nodata"] == -9999.0 and not np.isnan(derived.values).any()
    assert (derived.values[0] == -9999.0).all()  # the outer rim of what was read
    # the requested box has its neighbours: no rim without values inside it
    inside = derived.sel(x=slice(BOX[0], BOX[2]), y=slice(BOX[3], BOX[1]))
    assert inside.size and not (inside.values == -9999.0).any()
    # computed from the elevation opened around it
    dem = connector.open("elevation", bbox=(-96.62, 38.98, -96.48, 39.12))
    near = {"method": "nearest", "tolerance": 1e-9}
    expected = slope_m_per_km(dem).sel(x=inside["x"].values, y=inside["y"].values, **near)
    np.testing.assert_allclose(inside.values, expected.values, rtol=1e-12)


def test_a_derived_dataset_is_the_same_with_any_chunking() -> None:
    connector = cas.get_connector("sample")
    big = connector.open("slope", bbox=BOX, chunks=2048)
    small = connector.open("slope", bbox=BOX, chunks=16)
    assert len(small.chunks[0]) > 1
    np.testing.assert_array_equal(big.values, small.values)


def test_zonal_statistics_of_a_derived_id() -> None:
    frame = gpd.read_file(sample_catchments_path())
    table = cas.extract_table(frame.iloc[:2], ["sample:slope", "sample:aspect"])
    assert (table["sample:slope_quality"] == "good").all()
    assert table["sample:slope_mean"].between(0, 90).all()
    assert table.attrs["cas_xr"]["datasets"]["sample:slope"]["units"] == "degree"


def write_provider(tmp_path: Path, derive: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        "slug: p\nprotocol: stac_static\nendpoint: c.json\ndatasets:\n"
        "  - {name: dem, variables: [{name: z, units: m}]}\n"
        f"  - {{name: s, derive: {derive}, variables: [{{name: s, units: degree}}]}}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("derive", "message"),
    [
        ("{function: slope, dataset: nope}", "derives from 'nope', which the provider lacks"),
        ("{function: curvature, dataset: dem}", "derive.function: Input should be"),
        ("{function: slope, dataset: s}", "which is derived or temporal"),
    ],
)
def test_bad_derived_definitions_are_refused(tmp_path: Path, derive: str, message: str) -> None:
    with pytest.raises(ProviderDefinitionError, match=message):
        load_provider_file(write_provider(tmp_path, derive))
