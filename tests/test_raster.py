"""Raster mode and the mosaic functions, checked against GDAL's own command-line tools.

Every mosaic is compared with ``gdalbuildvrt`` + ``gdal_translate`` (native grid) or
``gdalwarp`` (other resolution or CRS) over the same bounds, resolution and resampling,
the VRT listing the tiles from lowest to highest precedence (GDAL paints later sources
over earlier ones, skipping their nodata cells). Nearest results must be pixel-identical;
bilinear, cubic and average results must have the same nodata cells and values within
1e-6 relative (the CLI and rasterio may bundle different GDAL versions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pystac
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine

import cas_xr as cas
from cas_xr import mosaic
from cas_xr.errors import (
    InvalidArgumentError,
    InvalidRequestError,
    LimitExceededError,
    MissingDependencyError,
    RequestTimeoutError,
    SourceError,
    UnknownDatasetError,
    UnknownProviderError,
)
from cas_xr.sources._stac_common import precedence
from cas_xr.testing import (
    MapServerNotFoundError,
    StacApiServerError,
    StacCollectionSpec,
    StacItemSpec,
    find_mapserv,
    make_cog,
    make_stac_catalog,
    raise_if_dask_computes,
    read_static_collection,
    serve_folder,
    serve_stac_api,
    serve_wcs,
)

SAMPLE = Path(cas.__file__).parent / "sample" / "data"
U_TILES = sorted(SAMPLE.glob("elevation/elevation-U-*/*.tif"))  # north, south
K_TILES = sorted(SAMPLE.glob("elevation/elevation-K-*/*.tif"))  # east, west
U_BOX = (-112.05, 41.95, -111.95, 42.05)  # across the seam at lat 42.0
K_BOX = (-96.75, 38.82, -96.50, 38.95)  # across the seam at -96.55, west of the data, 2 holes
METHODS = ["nearest", "bilinear", "cubic", "average"]

UTM = "EPSG:32633"
RES = 10.0
X0, Y0 = 500_000.0, 5_000_000.0
NODATA = -9999.0
# (id, year, first row, first column, rows, columns): b and c overlap a and each other;
# b (2022) has a nodata hole over a (2020); b and c (both 2022) tie on time, b wins by id
TILES = [
    ("a-2020", 2020, 0, 0, 60, 60),
    ("b-2022", 2022, 20, 40, 60, 60),
    ("c-2022", 2022, 50, 20, 60, 50),
]
B_HOLE = (slice(25, 35), slice(45, 55))  # global rows/columns, inside a
LOW_TO_HIGH = {"stac": ["a-2020", "c-2022", "b-2022"], "local": ["c-2022", "b-2022", "a-2020"]}


def _ci_or_skip(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def gdal() -> None:
    missing = [t for t in ("gdalbuildvrt", "gdal_translate", "gdalwarp") if not shutil.which(t)]
    if missing:
        _ci_or_skip(f"GDAL's command-line tools are missing: {missing} (apt install gdal-bin)")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def _vrt(path: Path, low_to_high: list[Path], extent: tuple[float, ...]) -> Path:
    """A VRT mosaic over ``extent`` (so cells past the data are nodata cells, as ours)."""
    _run("gdalbuildvrt", "-q", "-te", *map(repr, extent), str(path), *map(str, low_to_high))
    return path


def _bounds(result: cas.RasterResult) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = result.transform
    rows, cols = result.shape
    return (c, f + rows * e, c + cols * a, f)


def _gdal_reference(vrt: Path, result: cas.RasterResult, resampling: str, native: bool) -> Path:
    """What GDAL's tools give for the bounds, cell size and CRS of ``result``."""
    out = vrt.with_name(f"ref_{Path(result.path).name}")
    xmin, ymin, xmax, ymax = _bounds(result)
    if native:
        win = [repr(v) for v in (xmin, ymax, xmax, ymin)]
        _run("gdal_translate", "-q", "-projwin", *win, str(vrt), str(out))
    else:
        a, e = result.transform[0], result.transform[4]
        _run(
            "gdalwarp", "-q", "-overwrite", "-ovr", "NONE", "-t_srs", result.crs,
            "-te", *map(repr, (xmin, ymin, xmax, ymax)), "-tr", repr(a), repr(-e),
            "-r", "near" if resampling == "nearest" else resampling, str(vrt), str(out),
        )  # fmt: skip
    return out


def _read(path: str | Path) -> tuple[np.ndarray, Any]:
    with rasterio.open(path) as src:
        return src.read(), src.profile


def _assert_equals_gdal(result: cas.RasterResult, reference: Path, resampling: str) -> np.ndarray:
    ours, profile = _read(result.path)
    theirs, ref_profile = _read(reference)
    assert profile["transform"].almost_equals(ref_profile["transform"], precision=1e-9)
    assert pyproj.CRS(profile["crs"]) == pyproj.CRS(ref_profile["crs"])
    assert (profile["nodata"], profile["dtype"]) == (ref_profile["nodata"], ref_profile["dtype"])
    assert ours.shape[1:] == result.shape
    if resampling == "nearest":
        np.testing.assert_array_equal(ours, theirs)
    else:
        nodata = profile["nodata"]
        np.testing.assert_array_equal(ours == nodata, theirs == nodata)
        valid = ours != nodata
        np.testing.assert_allclose(ours[valid], theirs[valid], rtol=1e-6)
    return ours


# -- the sample provider --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tiles", "bbox"), [(U_TILES, U_BOX), (K_TILES, K_BOX)], ids=["U-seam", "K-partly-outside"]
)
def test_sample_mosaic_on_native_grid_equals_gdal(
    gdal: None, tmp_path: Path, tiles: list[Path], bbox: tuple[float, ...]
):
    result = cas.extract_raster_sync("sample:elevation", bbox, tmp_path)
    assert Path(result.path) == tmp_path / "sample_elevation.tif"
    assert (result.crs, result.nodata, result.license) == ("EPSG:4326", NODATA, "MIT")
    assert result.transform[::4] == pytest.approx((0.001, -0.001))
    assert result.elapsed_ms > 0 and result.provenance["dataset"] == "sample:elevation"
    assert sorted(result.provenance["items"]) == sorted(p.stem for p in tiles)
    xmin, ymin, xmax, ymax = _bounds(result)  # snapped outward: contains the box, by < 1 cell
    eps = 1e-9
    assert xmin - eps <= bbox[0] < xmin + 0.001 and ymin - eps <= bbox[1] < ymin + 0.001
    assert xmax - 0.001 < bbox[2] <= xmax + eps and ymax - 0.001 < bbox[3] <= ymax + eps
    # same time: precedence by id, so GDAL gets the tiles in reverse id order
    vrt = _vrt(tmp_path / "m.vrt", tiles[::-1], (xmin - 1, ymin - 1, xmax + 1, ymax + 1))
    ours = _assert_equals_gdal(result, _gdal_reference(vrt, result, "nearest", True), "nearest")
    if bbox == K_BOX:  # west of -96.70 is outside the data; two nodata holes inside
        west = round((-96.70 - xmin) / 0.001)
        assert (ours[0, :, :west] == NODATA).all()
        assert (ours[0, :, west:] == NODATA).sum() > 100
    else:
        assert (ours != NODATA).all()


@pytest.mark.parametrize("resampling", METHODS)
@pytest.mark.parametrize(
    ("resolution", "crs"),
    [(0.0025, None), (0.0007, None), (100.0, "EPSG:32614"), (None, "EPSG:3857")],
    ids=["coarser", "finer", "utm", "web-mercator-fit"],
)
def test_sample_resampled_or_reprojected_equals_gdalwarp(
    gdal: None, tmp_path: Path, resampling: str, resolution: float | None, crs: str | None
):
    result = cas.extract_raster_sync(
        "sample:elevation", K_BOX, tmp_path, target_resolution=resolution,
        resampling=resampling, target_crs=crs,
    )  # fmt: skip
    assert result.crs == (crs or "EPSG:4326")
    if resolution is not None:
        assert result.transform[0] == pytest.approx(resolution)
    assert result.provenance["resampling"] == resampling
    vrt = _vrt(tmp_path / "m.vrt", K_TILES[::-1], (-97.0, 38.5, -96.0, 39.5))
    ours = _assert_equals_gdal(result, _gdal_reference(vrt, result, resampling, False), resampling)
    assert (ours == NODATA).any() and (ours != NODATA).any()


def test_target_grid_anchors(tmp_path: Path):
    native = cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path, filename="n.tif")
    coarse = cas.extract_raster_sync(
        "sample:elevation", U_BOX, tmp_path, target_resolution=0.004, filename="c.tif"
    )
    # native edges lie on multiples of 0.001 degrees: the output's on multiples of 0.004
    for edge in (coarse.transform[2], coarse.transform[5]):
        assert edge / 0.004 == pytest.approx(round(edge / 0.004), abs=1e-6)
    assert _bounds(coarse)[0] <= _bounds(native)[0] and _bounds(coarse)[2] >= _bounds(native)[2]
    utm = cas.extract_raster_sync(
        "sample:elevation", U_BOX, tmp_path, target_crs="EPSG:32612", target_resolution=30,
        filename="u.tif",
    )  # fmt: skip
    assert utm.transform[2] % 30 == pytest.approx(0) and utm.transform[5] % 30 == pytest.approx(0)
    # the box was transformed with densified edges: every point of its edges is inside
    to_utm = pyproj.Transformer.from_crs(4326, 32612, always_xy=True)
    xmin, ymin, xmax, ymax = _bounds(utm)
    lons = np.linspace(U_BOX[0], U_BOX[2], 50)
    lats = np.linspace(U_BOX[1], U_BOX[3], 50)
    for lon, lat in [(x, y) for x in lons for y in (U_BOX[1], U_BOX[3])] + [
        (x, y) for x in (U_BOX[0], U_BOX[2]) for y in lats
    ]:
        x, y = to_utm.transform(lon, lat)
        assert xmin <= x <= xmax and ymin <= y <= ymax


def test_temporal_dataset_writes_one_band_per_step(gdal: None, tmp_path: Path):
    box = (-112.05, 41.95, -111.95, 42.05)
    spring = cas.extract_raster_sync(
        "sample:precipitation", box, tmp_path, time_range=("2022-01-01", "2022-03-31")
    )
    months = ["2022-01", "2022-02", "2022-03"]
    assert spring.provenance["items"] == [f"precipitation-U-{m}" for m in months]
    assert spring.provenance["times"] == [f"{m}-01T00:00:00Z" for m in months]
    with rasterio.open(spring.path) as src:
        assert src.count == 3 and src.descriptions == tuple(spring.provenance["times"])
        ours = src.read()
    for band, month in enumerate(months):
        tif = SAMPLE / "precipitation" / f"precipitation-U-{month}" / f"precipitation-U-{month}.tif"
        vrt = _vrt(tmp_path / f"{month}.vrt", [tif], (-113.0, 41.0, -111.0, 43.0))
        ref = _gdal_reference(vrt, spring, "nearest", True)
        np.testing.assert_array_equal(ours[band], _read(ref)[0][0])
    latest = cas.extract_raster_sync("sample:precipitation", box, tmp_path, filename="latest.tif")
    assert latest.provenance["items"] == ["precipitation-U-2022-12"]
    with rasterio.open(latest.path) as src:
        assert src.count == 1 and src.descriptions == ("2022-12-01T00:00:00Z",)


def test_geotiff_is_a_compressed_cog_with_metadata(tmp_path: Path):
    result = cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path)
    with rasterio.open(result.path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.compression.value == "DEFLATE" and src.block_shapes == [(512, 512)]
        assert src.units == ("m",) and src.tags()["dataset_id"] == "sample:elevation"
        assert src.tags()["license"] == "MIT"
        assert "elevation-U-north" in src.tags()["cas_provenance"]
    big = _cube(np.ones((1500, 1200), dtype="float32"), nodata=-1.0)
    with rasterio.open(mosaic.write_raster(big, tmp_path / "big.tif")) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.overviews(1) == [2, 4]


# -- tiles served by local servers ------------------------------------------------------


def _tile_values(row0: int, col0: int, rows: int, cols: int, base: float) -> np.ndarray:
    r, c = np.mgrid[row0 : row0 + rows, col0 : col0 + cols].astype("float64")
    return (base + 2.0 * r + 0.5 * c + 40.0 * np.sin(c / 7.0) * np.cos(r / 9.0)).astype("float32")


@dataclass(frozen=True)
class Tiles:
    root: Path
    files: dict[str, Path]
    catalog: Path


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Tiles:
    root = tmp_path_factory.mktemp("tiles")
    (root / "tiles").mkdir()
    files, items = {}, []
    for i, (tile_id, year, row0, col0, rows, cols) in enumerate(TILES):
        values = _tile_values(row0, col0, rows, cols, 1000.0 * (i + 1))
        if tile_id == "b-2022":
            values[B_HOLE[0].start - row0 : B_HOLE[0].stop - row0,
                   B_HOLE[1].start - col0 : B_HOLE[1].stop - col0] = NODATA  # fmt: skip
        transform = Affine(RES, 0, X0, 0, -RES, Y0) @ Affine.translation(col0, row0)
        files[tile_id] = make_cog(
            root / "tiles" / f"{tile_id}.tif", values, transform=transform, crs=UTM,
            nodata=NODATA, blocksize=16,
        )  # fmt: skip
        items.append(
            StacItemSpec(id=tile_id, href=files[tile_id], datetime=dt.datetime(year, 6, 1))
        )
    catalog = make_stac_catalog(root / "tiles", [StacCollectionSpec("tiles", "overlaps", items)])
    return Tiles(root, files, catalog)


@dataclass(frozen=True)
class Servers:
    files: str
    api: str


@pytest.fixture(scope="module")
def servers(tiles: Tiles) -> Iterator[Servers]:
    with ExitStack() as stack:
        files = stack.enter_context(serve_folder(tiles.root))
        collection, items = read_static_collection(
            tiles.catalog, "tiles", base_url=f"{files}tiles/"
        )
        try:
            api = stack.enter_context(serve_stac_api(collection, items))
        except (MissingDependencyError, StacApiServerError) as err:
            _ci_or_skip(f"the STAC API server could not be started: {err}")
        yield Servers(files, api)


def _provider(tmp_path: Path, protocol: str, endpoint: str, dataset: str, options: str = "") -> str:
    path = tmp_path / f"{protocol}.yaml"
    path.write_text(
        f"""slug: tiles
protocol: {protocol}
endpoint: {endpoint}
license: CC0-1.0
{options}
datasets:
  - name: dem
{dataset}    variables:
      - {{name: height, units: m, nodata_value: {NODATA}}}
""",
        encoding="utf-8",
    )
    cas.configure(provider_files=[path])
    return "tiles:dem"


SOURCES = ["stac_api", "stac_static_http", "local_glob"]


def _source(name: str, tmp_path: Path, servers: Servers, tiles: Tiles) -> tuple[str, list[Path]]:
    """Register the tiles as a provider of this kind; the tiles in GDAL's (low-to-high) order."""
    if name == "stac_api":
        dataset_id = _provider(tmp_path, "stac_cog", servers.api, "    collection: tiles\n")
    elif name == "stac_static_http":
        catalog = f"{servers.files}tiles/catalog.json"
        dataset_id = _provider(tmp_path, "stac_static", catalog, "    collection: tiles\n")
    else:
        dataset_id = _provider(tmp_path, "local", str(tiles.root / "tiles"), "    path: '*.tif'\n")
    order = LOW_TO_HIGH["local" if name == "local_glob" else "stac"]
    return dataset_id, [tiles.files[t] for t in order]


def _lonlat_box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    to_lonlat = pyproj.Transformer.from_crs(UTM, 4326, always_xy=True)
    return to_lonlat.transform_bounds(x0, y0, x1, y1)


# a box across every overlap, reaching past the data to the west and north
OVERLAP_BOX = _lonlat_box(X0 - 155, Y0 - 1_050, X0 + 905, Y0 + 95)


def _cell(data: np.ndarray, result: cas.RasterResult, row: int, col: int) -> float:
    """The value of cell (row, col) of the tiles' grid in ``result``."""
    _, _, c, _, _, f = result.transform
    return float(data[0, row - round((Y0 - f) / RES), col - round((c - X0) / RES)])


def _tile_value(tile: str, row: int, col: int) -> float:
    i, (_, _, row0, col0, rows, cols) = next((i, t) for i, t in enumerate(TILES) if t[0] == tile)
    return float(_tile_values(row0, col0, rows, cols, 1000.0 * (i + 1))[row - row0, col - col0])


# which tile shows at cells covered by several: STAC newest first (ties by id), local globs
# in file-name order; (30, 50) is in b's nodata hole, so the next tile shows
WINNERS = {
    "stac": {(60, 50): "b-2022", (30, 50): "a-2020", (55, 30): "c-2022", (55, 50): "b-2022"},
    "local": {(60, 50): "b-2022", (30, 50): "a-2020", (55, 30): "a-2020", (55, 50): "a-2020"},
}


@pytest.mark.parametrize("name", SOURCES)
def test_served_tiles_mosaic_equals_gdal_with_documented_precedence(
    gdal: None, tmp_path: Path, servers: Servers, tiles: Tiles, name: str
):
    dataset_id, low_to_high = _source(name, tmp_path, servers, tiles)
    result = cas.extract_raster_sync(dataset_id, OVERLAP_BOX, tmp_path)
    assert result.crs == UTM and result.transform[0] == RES
    vrt = _vrt(tmp_path / "m.vrt", low_to_high, (X0 - 1000, Y0 - 2000, X0 + 2000, Y0 + 1000))
    ours = _assert_equals_gdal(result, _gdal_reference(vrt, result, "nearest", True), "nearest")
    for (row, col), tile in WINNERS["local" if name == "local_glob" else "stac"].items():
        assert _cell(ours, result, row, col) == _tile_value(tile, row, col), (row, col)
    assert (ours[0, 0, :] == NODATA).all() and (ours[0, :, 0] == NODATA).all()  # outside: nodata


@pytest.mark.parametrize("resampling", METHODS)
def test_served_tiles_resampled_equal_gdalwarp(
    gdal: None, tmp_path: Path, servers: Servers, tiles: Tiles, resampling: str
):
    dataset_id, low_to_high = _source("stac_api", tmp_path, servers, tiles)
    result = cas.extract_raster_sync(
        dataset_id, OVERLAP_BOX, tmp_path, target_resolution=25.0, resampling=resampling
    )
    vrt = _vrt(tmp_path / "m.vrt", low_to_high, (X0 - 1000, Y0 - 2000, X0 + 2000, Y0 + 1000))
    _assert_equals_gdal(result, _gdal_reference(vrt, result, resampling, False), resampling)


@pytest.fixture(scope="module")
def half_pixel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Two tiles abutting at x = X0 + 405, on a grid offset by half a cell from round numbers."""
    root = tmp_path_factory.mktemp("half")
    origin = Affine(RES, 0, X0 + RES / 2, 0, -RES, Y0 - RES / 2)
    paths, items = [], []
    for i, name in enumerate(("west", "east")):
        values = _tile_values(0, 40 * i, 50, 40, 500.0 + 100 * i)
        path = make_cog(
            root / f"{name}.tif", values, transform=origin @ Affine.translation(40 * i, 0),
            crs=UTM, nodata=NODATA, blocksize=16,
        )  # fmt: skip
        paths.append(path)
        items.append(StacItemSpec(id=name, href=path, datetime=dt.datetime(2021, 1, 1)))
    return make_stac_catalog(root, [StacCollectionSpec("half", "offset grid", items)]), paths


@pytest.mark.parametrize(
    ("resampling", "resolution"), [("nearest", None), ("bilinear", 25.0), ("cubic", 7.0)]
)
def test_half_pixel_grid_and_seam_leave_no_unfilled_edge(
    gdal: None,
    tmp_path: Path,
    half_pixel: tuple[Path, list[Path]],
    resampling: str,
    resolution: float | None,
):
    catalog, (west, east) = half_pixel
    dataset_id = _provider(tmp_path, "stac_static", str(catalog), "    collection: half\n")
    box = _lonlat_box(X0 + 103, Y0 - 397, X0 + 702, Y0 - 98)  # inside the data, across the seam
    result = cas.extract_raster_sync(
        dataset_id, box, tmp_path, target_resolution=resolution, resampling=resampling
    )
    if resolution is None:  # the native, offset lattice
        assert (result.transform[2] - X0) % RES == pytest.approx(RES / 2)
    extent = (X0 - 995, Y0 - 2005, X0 + 2005, Y0 + 995)  # on the tiles' lattice
    vrt = _vrt(tmp_path / "m.vrt", [east, west], extent)
    reference = _gdal_reference(vrt, result, resampling, resolution is None)
    ours = _assert_equals_gdal(result, reference, resampling)
    assert (ours != NODATA).all()  # no nodata row/column at the edges or along the seam


def test_wcs_tiles_equal_gdal(gdal: None, tmp_path: Path, tiles: Tiles):
    try:
        find_mapserv()
    except MapServerNotFoundError as err:
        _ci_or_skip(f"the WCS test server cannot start: {err}")
    tif = tiles.files["a-2020"]
    with serve_wcs({"dem": tif}) as wcs:
        dataset_id = _provider(
            tmp_path, "wcs", wcs.url, "    coverage: dem\n", options="options: {tile_size: 16}"
        )
        box = _lonlat_box(X0 - 95, Y0 - 455, X0 + 333, Y0 + 45)  # past the coverage's corner
        native = cas.extract_raster_sync(dataset_id, box, tmp_path, filename="n.tif")
        coarse = cas.extract_raster_sync(
            dataset_id, box, tmp_path, filename="c.tif", target_resolution=15.0,
            resampling="bilinear",
        )  # fmt: skip
    assert native.provenance["protocol"] == "wcs" and native.provenance["tiles"] > 1
    vrt = _vrt(tmp_path / "m.vrt", [tif], (X0 - 1000, Y0 - 2000, X0 + 2000, Y0 + 1000))
    ours = _assert_equals_gdal(native, _gdal_reference(vrt, native, "nearest", True), "nearest")
    assert (ours[0, 0] == NODATA).all() and (ours[0, :, 0] == NODATA).all()  # past the corner
    assert (ours[0, -1] != NODATA).any() and (ours[0, :, -1] != NODATA).any()
    _assert_equals_gdal(coarse, _gdal_reference(vrt, coarse, "bilinear", False), "bilinear")


# -- Zarr, files, atomicity -------------------------------------------------------------


def test_zarr_output_matches_the_geotiff(tmp_path: Path):
    tif = cas.extract_raster_sync("sample:elevation", K_BOX, tmp_path)
    store = cas.extract_raster_sync("sample:elevation", K_BOX, tmp_path, format="zarr")
    assert Path(store.path) == tmp_path / "sample_elevation.zarr" and Path(store.path).is_dir()
    assert (store.transform, store.shape, store.crs, store.nodata) == (
        tif.transform,
        tif.shape,
        tif.crs,
        tif.nodata,
    )
    raw = xr.open_zarr(store.path, mask_and_scale=False)
    assert raw.attrs["dataset_id"] == "sample:elevation" and raw["elevation"].attrs["units"] == "m"
    np.testing.assert_array_equal(raw["elevation"].values, _read(tif.path)[0][0])
    assert raw["elevation"].attrs["_FillValue"] == NODATA
    assert raw["elevation"].rio.crs.to_epsg() == 4326
    assert raw["elevation"].rio.transform().almost_equals(Affine(*tif.transform))
    masked = xr.open_zarr(store.path)["elevation"]
    assert int(masked.isnull().sum()) == int((raw["elevation"] == NODATA).sum()) > 0
    with pytest.raises(FileExistsError):
        cas.extract_raster_sync(
            "sample:elevation", K_BOX, tmp_path, filename="sample_elevation.zarr"
        )
    again = cas.extract_raster_sync(
        "sample:elevation", U_BOX, tmp_path, format="zarr", overwrite=True
    )
    assert xr.open_zarr(again.path)["elevation"].shape == again.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sample_elevation.tif",
        "sample_elevation.zarr",
    ]


def test_overwrite_and_file_names(tmp_path: Path):
    first = cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        cas.extract_raster_sync("sample:elevation", K_BOX, tmp_path)
    assert _read(first.path)[0].shape[1:] == first.shape  # untouched
    second = cas.extract_raster_sync("sample:elevation", K_BOX, tmp_path, overwrite=True)
    assert second.path == first.path and _read(second.path)[0].shape[1:] == second.shape
    named = cas.extract_raster_sync("sample:clay_0-5cm", U_BOX, tmp_path, filename="clay.tif")
    assert Path(named.path).name == "clay.tif" and named.nodata == -32768
    assert _read(named.path)[1]["dtype"] == "int16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clay.tif", "sample_elevation.tif"]


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def half_then_fail(da: xr.DataArray, path: Path, **kwargs: Any) -> None:
        Path(path).write_bytes(b"II*\x00 half a tiff")
        raise OSError("disk full")

    monkeypatch.setattr("cas_xr.frontends._raster.write_geotiff", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_timed_out_call_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import cas_xr.frontends._raster

    compute = cas_xr.frontends._raster._compute

    def slow(da: xr.DataArray) -> xr.DataArray:
        time.sleep(1.0)
        return compute(da)

    monkeypatch.setattr("cas_xr.frontends._raster._compute", slow)
    cas.configure(request_timeout_s=0.2)
    with pytest.raises(RequestTimeoutError, match="request_timeout_s"):
        cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path)
    time.sleep(2.0)  # the worker thread finishes in the background, then discards its file
    assert list(tmp_path.iterdir()) == []


def test_sync_twin_refuses_a_running_loop(tmp_path: Path):
    async def inside() -> None:
        with pytest.raises(RuntimeError, match="await cas_xr.extract_raster"):
            cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path)
        result = await cas.extract_raster("sample:elevation", U_BOX, tmp_path)
        assert result.shape == (100, 100)

    asyncio.run(inside())


DEM = "sample:elevation"
BAD_INPUT = {
    "inverted": ((DEM, (-111.95, 41.95, -112.05, 42.05)), {}, InvalidRequestError, "min_lon"),
    "out-of-range": ((DEM, (-112.0, 41.9, -111.9, 95.0)), {}, InvalidRequestError, "max_lat"),
    "three-numbers": ((DEM, (1, 2, 3)), {}, InvalidRequestError, "4 numbers"),
    "unknown-dataset": (("sample:curve", U_BOX), {}, UnknownDatasetError, "no dataset 'curve'"),
    "unknown-provider": (("nowhere:dem", U_BOX), {}, UnknownProviderError, "nowhere"),
    "bad-resampling": ((DEM, U_BOX), {"resampling": "lanczos"}, ValueError, "unknown resampling"),
    "bad-resolution": ((DEM, U_BOX), {"target_resolution": -1.0}, ValueError, "positive"),
    "bad-crs": ((DEM, U_BOX), {"target_crs": "EPSG:0"}, ValueError, "not recognised"),
    "bad-format": ((DEM, U_BOX), {"format": "netcdf"}, ValueError, "unknown format"),
    "bad-filename": ((DEM, U_BOX), {"filename": "../up.tif"}, ValueError, "plain file name"),
    "suffix-vs-format": (
        (DEM, U_BOX), {"filename": "a.tif", "format": "zarr"}, ValueError, "names a geotiff"
    ),
    "no-data-there": ((DEM, (10.0, 10.0, 11.0, 11.0)), {}, SourceError, "intersects"),
}  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), BAD_INPUT.values(), ids=BAD_INPUT)
def test_bad_input_is_a_clear_error_and_leaves_no_file(
    tmp_path: Path,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
):
    with pytest.raises(error, match=match):
        cas.extract_raster_sync(*args, tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("resampling", ["bilinear", "cubic", "average"])
@pytest.mark.parametrize("resolution", [None, 0.01])
def test_categorical_data_refuse_interpolation(
    tmp_path: Path, resampling: str, resolution: float | None
):
    with pytest.raises(ValueError, match="would invent class codes in categorical data"):
        cas.extract_raster_sync(
            "sample:land_cover", U_BOX, tmp_path, resampling=resampling,
            target_resolution=resolution,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    result = cas.extract_raster_sync(
        "sample:land_cover", U_BOX, tmp_path, target_resolution=resolution
    )
    values = set(np.unique(_read(result.path)[0]).tolist())
    assert values <= {0, 10, 20, 30, 40, 50, 60, 80, 90}  # nearest keeps class codes


def test_every_bbox_form_gives_the_same_raster(tmp_path: Path):
    forms = {
        "tuple": U_BOX,
        "list": list(U_BOX),
        "dict": dict(zip(("min_lon", "min_lat", "max_lon", "max_lat"), U_BOX, strict=True)),
        "model": cas.BoundingBox.model_validate(U_BOX),
    }
    results = [
        cas.extract_raster_sync(DEM, box, tmp_path, filename=f"{name}.tif")
        for name, box in forms.items()
    ]
    assert len({(r.transform, r.shape) for r in results}) == 1
    for result in results[1:]:
        np.testing.assert_array_equal(_read(result.path)[0], _read(results[0].path)[0])


def test_missing_output_dir_is_created(tmp_path: Path):
    folder = tmp_path / "out" / "rasters"  # parents included, as CAS does
    result = cas.extract_raster_sync("sample:elevation", U_BOX, str(folder))
    assert Path(result.path) == folder / "sample_elevation.tif"
    assert _read(result.path)[0].shape == (1, *result.shape)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for where in (afile, afile / "below"):
        with pytest.raises(InvalidArgumentError, match="is \\(or lies under\\) a file"):
            cas.extract_raster_sync("sample:elevation", U_BOX, where)


def test_unwritable_output_dir(tmp_path: Path):
    if os.geteuid() == 0:  # root writes anywhere but in sysfs
        locked = Path("/sys")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
    with pytest.raises(PermissionError, match="choose a writable folder"):
        cas.extract_raster_sync("sample:elevation", U_BOX, locked)
    assert not (locked / "sample_elevation.tif").exists()
    assert not [p for p in locked.iterdir() if p.name.startswith(".sample_elevation")]
    with pytest.raises(PermissionError, match="cannot create output_dir .* writable folder"):
        cas.extract_raster_sync("sample:elevation", U_BOX, locked / "cas_xr_out" / "deeper")


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [({}, "output"), ({"target_resolution": 0.05}, "source window")],
    ids=["output", "source-window"],
)
def test_pixel_limit_is_checked_before_reading(tmp_path: Path, kwargs: dict[str, Any], what: str):
    cas.configure(max_raster_pixels=5_000)  # the box holds 100 x 100 native cells
    with raise_if_dask_computes(), pytest.raises(LimitExceededError, match=what):
        cas.extract_raster_sync("sample:elevation", U_BOX, tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_precedence_newest_first_then_id():
    def item(item_id: str, when: dt.datetime | None, **props: str) -> pystac.Item:
        return pystac.Item(item_id, None, None, when, props)

    items = [
        item("b", dt.datetime(2021, 1, 1)),
        item("z-old", dt.datetime(2019, 1, 1)),
        item("a", dt.datetime(2021, 1, 1, tzinfo=dt.UTC)),
        item("range", None, start_datetime="2022-01-01T00:00:00Z", end_datetime="2023-01-01"),
    ]
    assert [it.id for it in sorted(items, key=precedence)] == ["range", "a", "b", "z-old"]


# -- the accessor and the mosaic functions ------------------------------------------------


def test_accessor_clip_and_to_raster_reuse_raster_mode(tmp_path: Path):
    result = cas.extract_raster_sync("sample:elevation", K_BOX, tmp_path)
    cube = cas.open_dataset("sample:elevation", bbox=(-96.7, 38.8, -96.3, 39.3))
    with raise_if_dask_computes():
        clipped = cube.cas.clip(K_BOX)
        coarse = cube.cas.clip(K_BOX, target_resolution=0.0025, resampling="average")
    np.testing.assert_array_equal(clipped.values, _read(result.path)[0][0])
    assert clipped.rio.transform().almost_equals(Affine(*result.transform))
    path = clipped.cas.to_raster(tmp_path / "accessor.tif")
    np.testing.assert_array_equal(_read(path)[0], _read(result.path)[0])
    coarse_result = cas.extract_raster_sync(
        "sample:elevation", K_BOX, tmp_path, target_resolution=0.0025, resampling="average",
        filename="coarse.tif",
    )  # fmt: skip
    np.testing.assert_array_equal(coarse.values, _read(coarse_result.path)[0][0])
    store = coarse.cas.to_raster(tmp_path / "coarse.zarr")
    np.testing.assert_array_equal(xr.open_zarr(store, mask_and_scale=False)["elevation"], coarse)
    with pytest.raises(FileExistsError):
        coarse.cas.to_raster(store)
    with pytest.raises(TypeError, match="select a variable"):
        cube.to_dataset().cas.clip(K_BOX)
    classes = cas.open_dataset("sample:land_cover", bbox=U_BOX)
    with pytest.raises(ValueError, match="categorical"):
        classes.cas.clip(U_BOX, target_resolution=0.01, resampling="bilinear")


def _cube(
    values: np.ndarray, *, ascending: bool = False, nodata: float | None = None
) -> xr.DataArray:
    rows, cols = values.shape
    y = 10.0 - np.arange(rows) - 0.5
    da = xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": np.arange(cols) + 0.5})
    if ascending:
        da = da.isel(y=slice(None, None, -1))
    da = da.rio.write_crs(UTM)
    return da if nodata is None else da.rio.write_nodata(nodata, encoded=False)


def test_clip_pads_outside_with_nodata_and_flips_ascending_grids():
    values = np.arange(100, dtype="float32").reshape(10, 10)
    for ascending in (False, True):
        out = mosaic.clip(
            _cube(values, ascending=ascending, nodata=-1.0), (-1.5, 7.2, 2.2, 11.0), bbox_crs=UTM
        )
        assert out.rio.transform() == Affine(1, 0, -2, 0, -1, 11) and out.attrs["nodata"] == -1.0
        expected = np.full((4, 5), -1.0, dtype="float32")
        expected[1:, 2:] = values[:3, :3]
        np.testing.assert_array_equal(out.values, expected)
    with pytest.raises(ValueError, match="does not intersect"):
        mosaic.clip(_cube(values), (20.0, 20.0, 30.0, 30.0), bbox_crs=UTM)


def test_nan_and_nodata_become_one_value():
    values = np.ones((4, 4), dtype="float32")
    values[0, 0] = np.nan
    values[1, 1] = -9.0
    out = mosaic.clip(_cube(values, nodata=-9.0), (0.0, 6.0, 4.0, 10.0), bbox_crs=UTM)
    assert int((out.values == -9.0).sum()) == 2 and not np.isnan(out.values).any()
    floats = mosaic.clip(_cube(values), (0.0, 6.0, 4.0, 10.0), bbox_crs=UTM, target_resolution=2.0)
    assert math.isnan(floats.attrs["nodata"])  # float data without nodata: NaN
    with pytest.raises(ValueError, match="does not fit"):
        mosaic.nodata_of(_cube(np.zeros((2, 2), "uint8")), 300)


def test_write_raster_infers_the_format(tmp_path: Path):
    da = _cube(np.arange(16, dtype="int16").reshape(4, 4), nodata=-1)
    with pytest.raises(ValueError, match="cannot tell the format"):
        mosaic.write_raster(da, tmp_path / "x.nc")
    tif = mosaic.write_raster(da, tmp_path / "x.tif", tags={"source": "test"})
    data, profile = _read(tif)
    assert profile["nodata"] == -1 and profile["dtype"] == "int16"
    np.testing.assert_array_equal(data[0], da.values)
    assert rioxarray.open_rasterio(tif).rio.crs.to_string() == UTM
