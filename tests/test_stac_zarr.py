"""The ``stac_zarr`` protocol: a Zarr store that is an asset of a STAC collection.

A small store shaped like Planetary Computer's ``daymet-daily-na`` (variables, units,
dims and grid mapping taken from the recorded collection metadata) is served over HTTP
with the collection JSON at the STAC API path ``collections/{id}``; the provider reads it
lazily, and extraction gives the hand-computed numbers.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
import yaml

import cas_xr as cas
from cas_xr.errors import MissingDependencyError, ProviderDefinitionError, SourceError
from cas_xr.testing import raise_if_dask_computes, serve_folder


def same_projection(a: Any, b: Any) -> bool:
    """Whether two CRSs put points of North America at the same x/y (to 1 mm)."""
    lon, lat = np.meshgrid(np.linspace(-170, -55, 12), np.linspace(15, 80, 12))
    xa, ya = pyproj.Transformer.from_crs(4326, pyproj.CRS(a), always_xy=True).transform(lon, lat)
    xb, yb = pyproj.Transformer.from_crs(4326, pyproj.CRS(b), always_xy=True).transform(lon, lat)
    return bool(np.allclose(xa, xb, rtol=0, atol=1e-3) and np.allclose(ya, yb, rtol=0, atol=1e-3))


FIXTURE = Path(__file__).parent / "fixtures" / "upstream" / "daymet-daily-na.template.json"
COLLECTION = json.loads(FIXTURE.read_text(encoding="utf-8"))
LCC = "lambert_conformal_conic"
# a 6 x 8 grid of 1 km cells, as Daymet's (x ascending, y descending), near lon -100
X = -2250.0 + 1000.0 * np.arange(8) + 500.0
Y = 2500.0 - 1000.0 * np.arange(6) - 500.0
TIMES = pd.date_range("2020-01-01T12:00", periods=10, freq="D")


def _variable(name: str, values: np.ndarray) -> xr.DataArray:
    attrs = dict(COLLECTION["cube:variables"][name]["attrs"])
    dims = COLLECTION["cube:variables"][name]["dimensions"]
    return xr.DataArray(values.astype("float32"), dims=dims, attrs=attrs)


def _store(path: Path) -> xr.Dataset:
    """A Daymet-shaped store: prcp = day index + cell index / 100, one nodata cell."""
    t, r, c = np.meshgrid(np.arange(10), np.arange(6), np.arange(8), indexing="ij")
    prcp = t + (r * 8 + c) / 100.0
    prcp[:, 0, 0] = -9999.0
    tmax = 20.0 + t - r
    ds = xr.Dataset(
        {"prcp": _variable("prcp", prcp), "tmax": _variable("tmax", tmax)},
        coords={
            "time": TIMES,
            "y": ("y", Y, {"units": "m", "standard_name": "projection_y_coordinate"}),
            "x": ("x", X, {"units": "m", "standard_name": "projection_x_coordinate"}),
            LCC: ((), 0, COLLECTION["cube:variables"][LCC]["attrs"]),
        },
    )
    encoding = {v: {"_FillValue": -9999.0, "chunks": (5, 3, 4)} for v in ("prcp", "tmax")}
    ds.to_zarr(path, consolidated=True, zarr_format=2, encoding=encoding)
    return ds


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, xr.Dataset]]:
    root = tmp_path_factory.mktemp("stac_zarr")
    ds = _store(root / "na.zarr")
    with serve_folder(root) as url:
        collection = json.loads(json.dumps(COLLECTION))
        collection["assets"]["zarr-https"]["href"] = url + "na.zarr"
        (root / "collections").mkdir()
        (root / "collections" / "daymet-daily-na").write_text(json.dumps(collection))
        yield url, ds


def _provider(tmp_path: Path, endpoint: str, **dataset: Any) -> None:
    definition = {
        "slug": "dm",
        "protocol": "stac_zarr",
        "endpoint": endpoint,
        "datasets": [
            {
                "name": name,
                "collection": "daymet-daily-na",
                "asset": "zarr-https",
                "array": name,
                "temporal": {"temporal_type": "daily"},
                "variables": [{"name": name, "units": units, "nodata_value": -9999.0}],
                **dataset,
            }
            for name, units in (("prcp", "mm/day"), ("tmax", "degC"))
        ],
    }
    path = tmp_path / "dm.yaml"
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    cas.configure(provider_files=[path], http_retries=0)


def _lonlat_box(x0: float, y0: float, x1: float, y1: float) -> gpd.GeoSeries:
    """A lon/lat polygon of the LCC box, densified so that it covers the same cells."""
    import shapely
    from shapely.ops import transform

    crs = pyproj.CRS(cas.get_connector("daymet").definition_of("prcp").crs)
    to_lonlat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    box = shapely.segmentize(shapely.box(x0, y0, x1, y1), 10.0)
    return gpd.GeoSeries([transform(to_lonlat.transform, box)], crs="EPSG:4326")


def test_opens_lazily_on_the_native_grid_with_the_store_crs(
    served: tuple[str, xr.Dataset], tmp_path: Path
) -> None:
    url, ds = served
    _provider(tmp_path, url)
    with raise_if_dask_computes():
        da = cas.open_dataset("dm:prcp")
    assert da.dims == ("time", "y", "x") and da.shape == (10, 6, 8)
    daymet_crs = cas.get_connector("daymet").definition_of("prcp").crs
    assert same_projection(da.rio.crs.to_wkt(), daymet_crs)  # the store's grid mapping
    assert da.attrs["nodata"] == -9999.0 and da.attrs["units"] == "mm/day"
    assert da.attrs["cas_provenance"]["asset"] == "zarr-https"
    np.testing.assert_array_equal(da.values, ds["prcp"].values)


def test_extract_gives_the_hand_computed_mean(
    served: tuple[str, xr.Dataset], tmp_path: Path
) -> None:
    url, _ = served
    _provider(tmp_path, url)
    # cells of rows 1-2, columns 2-4: x -250..2750, y 1500..-500 (whole cells)
    geometry = _lonlat_box(-250.0, -500.0, 2750.0, 1500.0)
    table = cas.extract_table(
        geometry,
        ["dm:prcp", "dm:tmax"],
        time_range=("2020-01-03", "2020-01-05T23:00"),
    )
    days = np.arange(2, 5)
    cells = [(r, c) for r in (1, 2) for c in (2, 3, 4)]
    expected = [np.mean([d + (r * 8 + c) / 100.0 for r, c in cells]) for d in days]
    np.testing.assert_allclose(table["dm:prcp_mean"].to_numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(
        table["dm:tmax_mean"].to_numpy(), [20.0 + d - 1.5 for d in days], rtol=1e-6
    )
    assert set(table["dm:prcp_quality"].astype(str)) == {"good"}


def test_a_missing_asset_or_collection_is_a_clear_error(
    served: tuple[str, xr.Dataset], tmp_path: Path
) -> None:
    url, _ = served
    _provider(tmp_path, url, asset="zarr-abfs-typo")
    with pytest.raises(SourceError, match=r"no asset 'zarr-abfs-typo'.*zarr-https"):
        cas.open_dataset("dm:prcp")
    _provider(tmp_path, url, collection="nope")
    with pytest.raises(SourceError, match="HTTP 404"):
        cas.open_dataset("dm:prcp")


@pytest.mark.skipif(
    importlib.util.find_spec("adlfs") is not None, reason="adlfs is installed: it would read"
)
def test_an_abfs_asset_without_adlfs_names_the_extra(
    served: tuple[str, xr.Dataset], tmp_path: Path
) -> None:
    url, _ = served
    _provider(tmp_path, url, asset="zarr-abfs")  # abfs://daymet-zarr/daily/na.zarr
    with pytest.raises(MissingDependencyError, match=r"abfs:// store.*adlfs.*cas-xr\[planetary\]"):
        cas.open_dataset("dm:prcp")


def test_options_are_checked(tmp_path: Path) -> None:
    _provider(tmp_path, "http://127.0.0.1:9/", options={"query": {}})
    with pytest.raises(ProviderDefinitionError, match="invalid stac_zarr options"):
        cas.get_connector("dm").source("prcp")


def test_a_point_health_test_over_a_time_range(
    served: tuple[str, xr.Dataset], tmp_path: Path
) -> None:
    """As the daymet provider's test: a point, the mean of a few days' tmax there."""
    url, _ = served
    _provider(tmp_path, url)
    definition = yaml.safe_load((tmp_path / "dm.yaml").read_text(encoding="utf-8"))
    crs = pyproj.CRS(cas.get_connector("daymet").definition_of("prcp").crs)
    lon, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(1250.0, 0.0)
    definition["health"] = {
        "dataset": "tmax",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "expected_range": [20.0, 30.0],
        "time_range": ["2020-01-02T00:00:00Z", "2020-01-04T23:59:59Z"],
    }
    (tmp_path / "dm.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    cas.configure(provider_files=[tmp_path / "dm.yaml"])
    (result,) = cas.check_providers_sync("dm")
    assert result.status is cas.ProviderStatus.HEALTHY, result
    # the cell of x 1250, y 0 is row 2: tmax = 20 + day - 2 over days 1..3
    assert result.test_value == pytest.approx(np.mean([20.0 + d - 2 for d in (1, 2, 3)]))


def test_a_point_reads_its_own_cell(served: tuple[str, xr.Dataset], tmp_path: Path) -> None:
    """A one-cell window keeps its grid (one coordinate has no spacing to recompute it from)."""
    url, ds = served
    _provider(tmp_path, url)
    crs = pyproj.CRS(cas.get_connector("daymet").definition_of("prcp").crs)
    to_lonlat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    for (x, y), (row, col) in [((1250.0, 0.0), (2, 3)), ((-1700.0, 2400.0), (0, 0))]:
        lon, lat = to_lonlat.transform(x, y)
        response = cas.extract_sync(
            {
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "dataset_ids": ["dm:tmax"],
                "time_range": ["2020-01-05", "2020-01-05T23:00"],
            }
        )
        (result,) = response.results
        assert result.value == pytest.approx(float(ds["tmax"][4, row, col]))
        assert result.pixel_count == 1
