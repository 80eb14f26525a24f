"""The local source (GeoTIFF/COG, tile globs, Zarr, NetCDF) and ``cas_xr.open_dataset``.

Reference values come from reading the files directly (rasterio, rioxarray, xarray) and
from exactextract, never from our own code.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import odc.geo.xr  # noqa: F401  (registers .odc)
import pandas as pd
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from exactextract import exact_extract

import cas_xr as cas
from cas_xr.catalog import load_provider_file
from cas_xr.errors import (
    InvalidDatasetIdError,
    InvalidRequestError,
    MissingDependencyError,
    ProviderDefinitionError,
    SourceError,
    SourceWarning,
    UnknownDatasetError,
    UnknownProviderError,
)
from cas_xr.models import TimeRange
from cas_xr.sources._local import LocalSource, from_definition
from cas_xr.testing import make_cog, raise_if_dask_computes, serve_folder

# 40 x 20 cells of 0.01 degree over lon 10.0..10.4, lat 50.0..50.2; a few nodata holes
GRID = Affine(0.01, 0.0, 10.0, 0.0, -0.01, 50.2)
VALUES = (100.0 + np.arange(800, dtype="float32").reshape(20, 40) / 8).astype("float32")
VALUES[3:5, 7:9] = -9999.0
BOXES = [
    (10.033, 50.052, 10.071, 50.097),  # inside, off the cell edges
    (10.0, 50.0, 10.4, 50.2),  # the whole grid
    (9.5, 49.5, 10.0151, 50.0151),  # the south-west corner only
    (10.2049, 50.1011, 10.5, 50.6),  # past the north-east corner
]


@pytest.fixture
def cog(tmp_path: Path) -> Path:
    return make_cog(
        tmp_path / "height.tif", VALUES, transform=GRID, crs="EPSG:4326", nodata=-9999.0
    )


def _grid_dataset(lat: np.ndarray, lon: np.ndarray, data: np.ndarray, **dims: Any) -> xr.Dataset:
    """A CF dataset on lat/lon with a grid_mapping variable and a second, 1-D variable."""
    names = (*dims, "lat", "lon")
    ds = xr.Dataset(
        {"t2m": (names, data), "station_count": (("lat",), np.arange(lat.size))},
        coords={**dims, "lat": lat, "lon": lon},
    )
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": rasterio.crs.CRS.from_epsg(4326).to_wkt()})
    ds["t2m"].attrs["grid_mapping"] = "crs"
    ds["t2m"].encoding["_FillValue"] = -9999.0
    return ds


def _read(path: Path | str, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


# -- GeoTIFF ------------------------------------------------------------------------------


def test_geotiff_opens_lazily_on_its_native_grid(cog: Path) -> None:
    with raise_if_dask_computes():
        da = LocalSource(str(cog), provider="mine").open(chunks=16)
    assert da.dims == ("y", "x")
    assert da.chunks == ((16, 4), (16, 16, 8))
    assert da.dtype == np.float32
    assert da.rio.crs == "EPSG:4326"
    assert da.rio.transform() == GRID
    assert da.attrs["nodata"] == -9999.0
    assert da.rio.nodata == -9999.0  # nodata kept as a value, not masked
    assert da.attrs["cas_provenance"] == {"protocol": "local", "path": str(cog)}
    np.testing.assert_array_equal(da.values, _read(cog))


def test_band_selects_one_band_of_a_multiband_file(tmp_path: Path) -> None:
    bands = np.stack([VALUES, VALUES * 2, VALUES * 3])
    path = make_cog(tmp_path / "three.tif", bands, transform=GRID, crs="EPSG:4326")
    da = LocalSource(str(path), band=2).open(bbox=BOXES[0])
    expected = rioxarray.open_rasterio(path).sel(band=2).rio.clip_box(*BOXES[0])
    np.testing.assert_array_equal(da.values, expected.values)
    with pytest.raises(SourceError, match="band 4 requested but .* has 3 band") as err:
        LocalSource(str(path), band=4).open()
    assert err.value.kind == "definition"


@pytest.mark.parametrize("bbox", BOXES)
def test_bbox_snapping_equals_rioxarray_clip_box(cog: Path, bbox: tuple[float, ...]) -> None:
    da = LocalSource(str(cog)).open(bbox=bbox, chunks=7)
    expected = rioxarray.open_rasterio(cog).sel(band=1).rio.clip_box(*bbox)
    assert da.shape == expected.shape
    np.testing.assert_array_equal(da.values, expected.values)
    np.testing.assert_allclose(da.x, expected.x)
    np.testing.assert_allclose(da.y, expected.y)
    assert da.rio.transform(recalc=True).almost_equals(expected.rio.transform(recalc=True))


def test_projected_grid_is_clipped_with_the_box_transformed_to_its_crs(tmp_path: Path) -> None:
    utm = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_550_000.0)  # 30 m cells, UTM 33N
    values = np.arange(200 * 300, dtype="int16").reshape(200, 300)
    path = make_cog(tmp_path / "utm.tif", values, transform=utm, crs="EPSG:32633", nodata=-1)
    bbox = (15.01, 50.02, 15.06, 50.05)
    da = LocalSource(str(path)).open(bbox=bbox)
    expected = rioxarray.open_rasterio(path).sel(band=1).rio.clip_box(*bbox, crs="EPSG:4326")
    assert da.rio.crs == "EPSG:32633"
    assert da.dtype == np.int16
    assert da.shape == expected.shape
    np.testing.assert_array_equal(da.values, expected.values)


def test_glob_of_tiles_is_one_lazy_mosaic_across_the_seam(tmp_path: Path) -> None:
    west, east = VALUES[:, :20], VALUES[:, 20:]
    make_cog(tmp_path / "t_a.tif", west, transform=GRID, crs="EPSG:4326", nodata=-9999.0)
    east_grid = GRID @ Affine.translation(20, 0)
    make_cog(tmp_path / "t_b.tif", east, transform=east_grid, crs="EPSG:4326", nodata=-9999.0)
    bbox = (10.153, 50.04, 10.262, 50.13)  # across the seam at lon 10.2
    with raise_if_dask_computes():
        da = LocalSource(str(tmp_path / "t_*.tif")).open(bbox=bbox, chunks=8)
    whole = make_cog(tmp_path / "whole.tif", VALUES, transform=GRID, crs="EPSG:4326")
    expected = rioxarray.open_rasterio(whole).sel(band=1).rio.clip_box(*bbox)
    np.testing.assert_array_equal(da.values, expected.values)
    np.testing.assert_allclose(da.x, expected.x)
    assert da.attrs["cas_provenance"]["files"] == [
        str(tmp_path / n) for n in ("t_a.tif", "t_b.tif")
    ]


def test_overlapping_tiles_first_file_wins_and_its_nodata_shows_the_next(tmp_path: Path) -> None:
    first = np.full((4, 4), 1.0, "float32")
    first[0, 0] = -9999.0
    second = np.full((4, 4), 2.0, "float32")
    grid = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 4.0)
    make_cog(tmp_path / "a.tif", first, transform=grid, crs="EPSG:4326", nodata=-9999.0)
    shifted = grid @ Affine.translation(2, 0)
    make_cog(tmp_path / "b.tif", second, transform=shifted, crs="EPSG:4326", nodata=-9999.0)
    values = LocalSource(str(tmp_path / "*.tif")).open().values
    assert values.shape == (4, 6)
    np.testing.assert_array_equal(values[:, 4:], 2.0)  # only b covers these
    np.testing.assert_array_equal(values[1:, :4], 1.0)  # a wins where both cover
    assert values[0, 0] == -9999.0  # a's hole, and b does not reach there


def test_glob_of_misaligned_tiles_is_refused(tmp_path: Path) -> None:
    make_cog(tmp_path / "a.tif", VALUES, transform=GRID, crs="EPSG:4326")
    shifted = GRID @ Affine.translation(40.5, 0)
    make_cog(tmp_path / "b.tif", VALUES, transform=shifted, crs="EPSG:4326")
    with pytest.raises(SourceError, match="not aligned") as err:
        LocalSource(str(tmp_path / "*.tif")).open()
    assert err.value.kind == "definition"


def test_geotiff_url_is_read_lazily_through_vsicurl(cog: Path) -> None:
    with serve_folder(cog.parent) as url:
        with raise_if_dask_computes():
            da = LocalSource(url + cog.name).open(bbox=BOXES[0], chunks=4)
        assert da.attrs["cas_provenance"]["path"] == url + cog.name
        expected = rioxarray.open_rasterio(cog).sel(band=1).rio.clip_box(*BOXES[0])
        np.testing.assert_array_equal(da.values, expected.values)
        with pytest.raises(SourceError) as err:
            LocalSource(url + "missing.tif").open()
    assert err.value.kind == "not_found"


# -- Zarr and NetCDF ----------------------------------------------------------------------

LAT_DOWN = 50.2 - 0.01 * (np.arange(20) + 0.5)
LON = 10.0 + 0.01 * (np.arange(40) + 0.5)
TIMES = pd.date_range("2021-01-01", periods=4, freq="MS")
CUBE = np.stack([VALUES + 1000 * k for k in range(4)])


def test_zarr_opens_the_chosen_array_with_its_cf_crs(tmp_path: Path) -> None:
    store = tmp_path / "cube.zarr"
    _grid_dataset(LAT_DOWN, LON, CUBE, time=TIMES).to_zarr(store, zarr_format=2)
    with raise_if_dask_computes():
        da = LocalSource(str(store), array="t2m", temporal=True).open(bbox=BOXES[0])
    expected = xr.open_zarr(store, mask_and_scale=False)["t2m"].sel(
        lat=slice(50.1, 50.05), lon=slice(10.03, 10.08)
    )
    assert da.dims == ("time", "y", "x")
    assert da.rio.crs == "EPSG:4326"
    assert da.attrs["nodata"] == -9999.0
    np.testing.assert_array_equal(da.values, expected.values)
    np.testing.assert_array_equal(da.time.values, TIMES.values)


def test_zarr_time_range_selects_steps_and_a_static_single_step_is_dropped(
    tmp_path: Path,
) -> None:
    store = tmp_path / "cube.zarr"
    _grid_dataset(LAT_DOWN, LON, CUBE, time=TIMES).to_zarr(store, zarr_format=2)
    period = TimeRange(start="2021-02-01T00:00:00Z", end="2021-03-15T00:00:00Z")
    da = LocalSource(str(store), temporal=True).open(time_range=period)
    np.testing.assert_array_equal(da.time.values, TIMES[1:3].values)
    np.testing.assert_array_equal(da.values, CUBE[1:3])
    single = tmp_path / "single.zarr"
    _grid_dataset(LAT_DOWN, LON, CUBE[:1], time=TIMES[:1]).to_zarr(single, zarr_format=2)
    assert LocalSource(str(single)).open().dims == ("y", "x")
    with pytest.raises(SourceError, match="no time step") as err:
        LocalSource(str(store), temporal=True).open(
            time_range=TimeRange(start="2030-01-01", end="2030-02-01")
        )
    assert err.value.kind == "no_data"


def test_netcdf_without_a_variable_choice_names_the_candidates(tmp_path: Path) -> None:
    path = tmp_path / "two.nc"
    ds = _grid_dataset(LAT_DOWN, LON, VALUES)
    ds["precip"] = ds["t2m"] * 2
    ds.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(SourceError, match=r"among \['precip', 't2m'\]"):
        LocalSource(str(path)).open()
    with pytest.raises(SourceError, match="'nope' is not in the data"):
        LocalSource(str(path), array="nope").open()
    da = LocalSource(str(path), array="precip").open(chunks=8)
    assert da.chunks == ((8, 8, 4), (8, 8, 8, 8, 8))
    np.testing.assert_array_equal(da.values, VALUES * 2)


def test_ascending_latitude_netcdf_keeps_its_order_and_needs_a_crs(tmp_path: Path) -> None:
    lat_up = LAT_DOWN[::-1]
    path = tmp_path / "up.nc"
    data = VALUES[::-1].copy()
    xr.Dataset(
        {"t2m": (("latitude", "longitude"), data)}, coords={"latitude": lat_up, "longitude": LON}
    ).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(SourceError, match="declare no CRS") as err:
        LocalSource(str(path)).open()
    assert err.value.kind == "definition"
    bbox = BOXES[0]
    with raise_if_dask_computes():
        da = LocalSource(str(path), crs="EPSG:4326").open(bbox=bbox)
    assert da.dims == ("y", "x")
    assert (np.diff(da.y) > 0).all()
    north_up = make_cog(path.with_suffix(".tif"), VALUES, transform=GRID, crs="EPSG:4326")
    flipped = rioxarray.open_rasterio(north_up).sel(band=1).rio.clip_box(*bbox)
    np.testing.assert_array_equal(da.values[::-1], flipped.values)
    np.testing.assert_allclose(da.y[::-1], flipped.y)
    assert da.odc.crs == "EPSG:4326"


# -- errors -------------------------------------------------------------------------------


def test_missing_files_are_not_found_naming_the_path(tmp_path: Path) -> None:
    for name in ("nope.tif", "nope.nc", "nope.zarr", "no_*.tif"):
        with pytest.raises(SourceError) as err:
            LocalSource(str(tmp_path / name), provider="mine").open()
        assert err.value.kind == "not_found"
        assert str(tmp_path / name) in str(err.value)
        assert "provider 'mine'" in str(err.value)


def test_corrupt_and_truncated_files_are_source_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff" * 100)
    with pytest.raises(SourceError, match="corrupt or truncated") as err:
        LocalSource(str(junk)).open()
    assert err.value.kind == "read"
    big = np.random.default_rng(1).random((600, 600)).astype("float32")
    whole = make_cog(tmp_path / "big.tif", big, transform=GRID, crs="EPSG:4326")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    da = LocalSource(str(truncated), provider="mine").open(chunks=256)  # intact header: lazy
    with pytest.raises(SourceError, match="cannot read rows") as err:
        da.compute()
    assert err.value.kind == "read" and err.value.provider == "mine"
    assert str(truncated) in str(err.value) and "provider 'mine'" in str(err.value)
    bad_nc = tmp_path / "bad.nc"
    bad_nc.write_bytes(b"garbage" * 50)
    with pytest.raises(SourceError, match="corrupt or truncated") as err:
        LocalSource(str(bad_nc)).open()
    assert err.value.kind == "read"


def test_a_missing_netcdf_engine_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grid.nc"
    _grid_dataset(LAT_DOWN, LON, VALUES).to_netcdf(path, engine="h5netcdf")
    monkeypatch.setattr(xr.backends, "list_engines", lambda: {})
    with pytest.raises(MissingDependencyError, match="pip install h5netcdf h5py"):
        LocalSource(str(path)).open()


def test_box_outside_the_data_and_unknown_suffix(cog: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not intersect") as err:
        LocalSource(str(cog)).open(bbox=(20.0, 10.0, 21.0, 11.0))
    assert err.value.kind == "no_data"
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"")
    with pytest.raises(SourceError, match="set the dataset option 'format'") as err:
        LocalSource(str(odd)).open()
    assert err.value.kind == "definition"


# -- provider files, the facade and open_dataset ------------------------------------------


def _provider(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "provider.yaml"
    path.write_text(body, encoding="utf-8")
    return path


LOCAL_YAML = """\
slug: mine
protocol: local
endpoint: data
license: CC0-1.0
datasets:
  - name: height
    path: height.tif
    resolution_m: 1000
    variables:
      - name: height
        units: m
        nodata_value: -9999
        valid_range: [0, 1000]
  - name: gone
    path: gone.tif
    variables:
      - {name: gone, units: m}
  - name: t2m
    path: cube.nc
    array: t2m
    temporal: {temporal_type: monthly}
    options: {engine: h5netcdf}
    variables:
      - {name: t2m, units: degC, valid_range: [-60, 60]}
"""


@pytest.fixture
def local_provider(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    make_cog(data / "height.tif", VALUES, transform=GRID, crs="EPSG:4326", nodata=-9999.0)
    _grid_dataset(LAT_DOWN, LON, CUBE, time=TIMES).to_netcdf(data / "cube.nc", engine="h5netcdf")
    path = _provider(tmp_path, LOCAL_YAML)
    cas.configure(provider_files=[path])
    return path


TRIANGLE = {
    "type": "Polygon",
    "coordinates": [
        [[10.0213, 50.0312], [10.1877, 50.0544], [10.0921, 50.1783], [10.0213, 50.0312]]
    ],
}


@pytest.mark.parametrize(("ours", "theirs"), [("mean", "mean"), ("min", "min"), ("max", "max")])
def test_local_provider_through_the_facade_equals_exactextract(
    local_provider: Path, ours: str, theirs: str
) -> None:
    response = cas.extract_sync(
        {"geometry": TRIANGLE, "dataset_ids": ["mine:height"], "aggregation": ours}
    )
    (result,) = response.results
    assert result.quality is cas.QualityFlag.GOOD, response.warnings
    feature = {"type": "Feature", "properties": {}, "geometry": TRIANGLE}
    cog = local_provider.parent / "data" / "height.tif"
    expected = exact_extract(str(cog), [feature], [theirs], output="geojson")
    assert result.value == pytest.approx(expected[0]["properties"][theirs], abs=1e-6)
    assert result.units == "m"
    assert result.provenance["protocol"] == "local"


def test_missing_file_is_missing_with_an_error_through_the_facade(local_provider: Path) -> None:
    with pytest.warns(SourceWarning, match=r"mine:gone \(not_found\)"):
        response = cas.extract_sync(
            {"geometry": TRIANGLE, "dataset_ids": ["mine:gone", "mine:height"]}
        )
    gone, height = response.results
    assert gone.quality is cas.QualityFlag.MISSING
    assert gone.value is None
    assert gone.error is not None
    assert gone.error.kind == "not_found"
    assert "gone.tif" in gone.error.message
    assert height.quality is cas.QualityFlag.GOOD
    assert any("mine:gone" in w for w in response.warnings)


def test_open_dataset_is_lazy_with_catalog_attrs(local_provider: Path) -> None:
    with raise_if_dask_computes():
        da = cas.open_dataset("mine:height", bbox={"min_lon": 10.03, "min_lat": 50.05,
                                                   "max_lon": 10.07, "max_lat": 50.09})  # fmt: skip
    assert da.name == "height"
    assert da.attrs["units"] == "m"
    assert da.attrs["valid_range"] == [0, 1000]
    assert da.attrs["license"] == "CC0-1.0"
    assert da.attrs["nodata"] == -9999.0
    assert da.shape == (4, 4)
    cube = cas.open_dataset("mine:t2m", time_range=("2021-02-01", "2021-02-28"), chunks=5)
    assert cube.dims == ("time", "y", "x")
    assert cube.sizes["time"] == 1
    assert cube.chunks[1:] == ((5, 5, 5, 5), (5,) * 8)


def test_open_dataset_validates_before_opening(local_provider: Path) -> None:
    with pytest.raises(InvalidDatasetIdError):
        cas.open_dataset("no colon")
    with pytest.raises(UnknownProviderError):
        cas.open_dataset("nobody:height")
    with pytest.raises(UnknownDatasetError):
        cas.open_dataset("mine:nothing")
    with pytest.raises(InvalidRequestError, match="min_lon"):
        cas.open_dataset("mine:height", bbox=(10.1, 50.0, 10.0, 50.1))
    with pytest.raises(InvalidRequestError, match="after its end"):
        cas.open_dataset("mine:t2m", time_range=("2021-03-01", "2021-02-01"))
    with pytest.raises(ValueError, match="positive"):
        cas.open_dataset("mine:height", chunks=0)
    with pytest.raises(SourceError) as err:
        cas.open_dataset("mine:gone")
    assert err.value.kind == "not_found"


def test_zarr_protocol_resolves_paths_against_the_endpoint_folder(tmp_path: Path) -> None:
    (tmp_path / "stores").mkdir()
    store = tmp_path / "stores" / "cube.zarr"
    _grid_dataset(LAT_DOWN, LON, CUBE, time=TIMES).to_zarr(store, consolidated=False)  # Zarr v3
    path = _provider(
        tmp_path,
        """\
slug: cube
protocol: zarr
endpoint: stores
datasets:
  - name: t2m
    path: cube.zarr
    temporal: {temporal_type: monthly}
    options: {consolidated: false}
    variables: [{name: t2m, units: degC}]
""",
    )
    definition = load_provider_file(path)
    source = from_definition(definition, definition.datasets[0])
    assert source.path == str(store)
    assert source.file_format == "zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "consolidated metadata" fallback
        da = source.open(bbox=BOXES[0])
    assert da.attrs["cas_provenance"] == {"protocol": "zarr", "path": source.path}
    assert da.sizes["time"] == 4


def test_options_are_validated_naming_the_dataset(tmp_path: Path) -> None:
    path = _provider(
        tmp_path,
        """\
slug: odd
protocol: local
endpoint: .
options: {colour: red}
datasets:
  - name: height
    path: height.tif
    variables: [{name: height, units: m}]
""",
    )
    definition = load_provider_file(path)
    with pytest.raises(ProviderDefinitionError, match="'height' of provider 'odd'.*colour"):
        from_definition(definition, definition.datasets[0])


def test_explicit_crs_is_a_fallback_and_urls_are_kept(tmp_path: Path) -> None:
    path = _provider(
        tmp_path,
        """\
slug: web
protocol: local
endpoint: https://example.org/data/
options: {gdal: {GDAL_HTTP_TIMEOUT: 5, AWS_NO_SIGN_REQUEST: YES}}
datasets:
  - name: plain
    path: plain.tif
    variables: [{name: v, units: m}]
  - name: projected
    path: /abs/proj.nc
    crs: EPSG:3035
    options: {storage_options: {anon: true}}
    variables: [{name: v, units: m}]
""",
    )
    definition = load_provider_file(path)
    plain, projected = (from_definition(definition, d) for d in definition.datasets)
    assert plain.path == "https://example.org/data/plain.tif"
    assert plain.crs is None  # the schema's default CRS is never assumed
    assert plain.gdal == {"GDAL_HTTP_TIMEOUT": "5", "AWS_NO_SIGN_REQUEST": "YES"}  # not "True"
    assert projected.path == "/abs/proj.nc"
    assert projected.crs == "EPSG:3035"
    assert projected.storage_options == {"anon": True}
