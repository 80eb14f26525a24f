"""Opened datasets are kept across calls (``cas_xr.sources._opened``).

A second call on another box of the same dataset opens nothing (counted: NetCDF files
opened, GeoTIFFs described, COG readers set up); a file rewritten or replaced, another
provider definition or new settings open it anew; the numbers are those of a fresh open
(to 1e-12) and of exactextract on the same cells.
"""

from __future__ import annotations

import gc
import os
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine
from exactextract import exact_extract

import cas_xr as cas
from cas_xr.sources import _local_geotiff, _stac_tiles
from cas_xr.sources._local import LocalSource
from cas_xr.sources._opened import (
    MISSING,
    OPENED,
    OpenedCache,
    file_stamp,
    forget_opened,
    frozen,
)
from cas_xr.testing import make_cog, serve_folder

# 200 x 100 cells of 0.002 degree over lon 10.0..10.4, lat 50.0..50.2
GRID = Affine(0.002, 0.0, 10.0, 0.0, -0.002, 50.2)
ROWS, COLS = 100, 200
VALUES = 100.0 + np.random.default_rng(7).random((ROWS, COLS)) * 50
LAT = 50.2 - 0.002 * (np.arange(ROWS) + 0.5)
LON = 10.0 + 0.002 * (np.arange(COLS) + 0.5)


def _square(lon: float, lat: float, side: float = 0.05) -> dict[str, Any]:
    ring = [[lon, lat], [lon + side, lat], [lon + side, lat + side], [lon, lat + side], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _cells(box: tuple[float, float, float, float], step: float = 0.002) -> tuple[slice, slice]:
    """The rows and columns of the grid a box (off the cell edges) covers."""
    x0, y0, x1, y1 = box
    rows = slice(int(np.floor((50.2 - y1) / step)), int(np.ceil((50.2 - y0) / step)))
    return rows, slice(int(np.floor((x0 - 10.0) / step)), int(np.ceil((x1 - 10.0) / step)))


#: two boxes of one dataset, apart, off the cell edges
SQUARES = [_square(10.0213, 50.0311), _square(10.2517, 50.1093, side=0.0731)]


def _netcdf(path: Path, values: np.ndarray = VALUES) -> Path:
    """A CF NetCDF file on lat/lon with a grid_mapping variable."""
    ds = xr.Dataset({"h": (("lat", "lon"), values)}, coords={"lat": LAT, "lon": LON})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": rasterio.crs.CRS.from_epsg(4326).to_wkt()})
    ds["h"].attrs["grid_mapping"] = "crs"
    ds["h"].encoding["_FillValue"] = -9999.0
    ds.to_netcdf(path, engine="h5netcdf")
    return path


_PROVIDER = """\
slug: mine
protocol: local
endpoint: {folder}
license: CC0-1.0
datasets:
  - name: h
    path: {file}
    array: h
    resolution_m: 200
    variables:
      - {{name: h, units: m, nodata_value: -9999}}
"""


def _provider(tmp_path: Path, file: str, name: str = "provider.yaml") -> Path:
    path = tmp_path / name
    path.write_text(_PROVIDER.format(folder=tmp_path, file=file), encoding="utf-8")
    return path


def _counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[Any]:
    """Count the calls of ``owner.name`` (the real function still runs)."""
    calls: list[Any] = []
    original: Callable[..., Any] = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def _means(dataset: str, squares: list[dict[str, Any]]) -> list[float]:
    out = []
    for square in squares:
        (result,) = cas.extract_sync({"geometry": square, "dataset_ids": [dataset]}).results
        assert not result.cached and result.value is not None
        out.append(float(result.value))  # type: ignore[arg-type]
    return out


def _exactextract(path: Path, squares: list[dict[str, Any]]) -> list[float]:
    features = [{"type": "Feature", "properties": {}, "geometry": s} for s in squares]
    return [f["properties"]["mean"] for f in exact_extract(str(path), features, "mean")]


def test_a_netcdf_file_is_opened_once_for_calls_on_other_boxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _netcdf(tmp_path / "h.nc")
    cog = make_cog(tmp_path / "h.tif", VALUES, transform=GRID, crs="EPSG:4326", nodata=-9999.0)
    cas.configure(provider_files=[_provider(tmp_path, "h.nc")], result_cache_ttl_s=0)
    opens = _counted(monkeypatch, xr, "open_dataset")
    kept = _means("mine:h", SQUARES)
    assert len(opens) == 1  # the second box is cut from the file opened for the first
    again = _means("mine:h", SQUARES[::-1])[::-1]
    assert len(opens) == 1
    forget_opened()
    fresh = _means("mine:h", SQUARES)
    assert len(opens) == 2
    np.testing.assert_allclose(kept, fresh, rtol=0, atol=1e-12)
    np.testing.assert_allclose(again, fresh, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kept, _exactextract(cog, SQUARES), rtol=0, atol=1e-9)


def test_a_replaced_or_rewritten_file_is_opened_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _netcdf(tmp_path / "h.nc")
    cas.configure(provider_files=[_provider(tmp_path, "h.nc")], result_cache_ttl_s=0)
    opens = _counted(monkeypatch, xr, "open_dataset")
    (before,) = _means("mine:h", SQUARES[:1])
    os.replace(_netcdf(tmp_path / "new.nc", VALUES + 100), path)  # as atomic writers do
    (after,) = _means("mine:h", SQUARES[:1])
    assert len(opens) == 2
    assert after == pytest.approx(before + 100, abs=1e-9)
    # a GeoTIFF written again in place, on another grid: described anew
    tif = make_cog(tmp_path / "h.tif", VALUES, transform=GRID, crs="EPSG:4326")
    described = _counted(monkeypatch, _local_geotiff, "_describe")
    box = (10.0213, 50.0311, 10.0713, 50.0811)
    first = LocalSource(str(tif)).open(bbox=box)
    assert LocalSource(str(tif)).open(bbox=box).shape == first.shape
    assert len(described) == 1
    coarse = Affine(0.004, 0.0, 10.0, 0.0, -0.004, 50.2)
    make_cog(tif, VALUES[::2, ::2], transform=coarse, crs="EPSG:4326")
    second = LocalSource(str(tif)).open(bbox=box)
    assert len(described) == 2
    assert second.rio.resolution() == (0.004, -0.004)
    np.testing.assert_array_equal(second.values, VALUES[::2, ::2][_cells(box, 0.004)])


def test_settings_and_provider_changes_take_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _netcdf(tmp_path / "h.nc")
    _netcdf(tmp_path / "double.nc", VALUES * 2)
    cas.configure(provider_files=[_provider(tmp_path, "h.nc")], result_cache_ttl_s=0)
    opens = _counted(monkeypatch, xr, "open_dataset")
    box = (10.0113, 50.0113, 10.3517, 50.1917)  # 171 x 90 cells
    cas.configure(chunk_size=64)
    assert max(cas.open_dataset("mine:h", bbox=box).chunks[1]) == 64
    cas.configure(chunk_size=128)
    assert max(cas.open_dataset("mine:h", bbox=box).chunks[1]) == 128
    assert len(opens) == 2  # each configure() lets go of what was opened before
    (single,) = _means("mine:h", SQUARES[:1])
    cas.configure(provider_files=[_provider(tmp_path, "double.nc", "other.yaml")])
    (double,) = _means("mine:h", SQUARES[:1])
    assert double == pytest.approx(2 * single, abs=1e-9)
    # a provider definition changed without configure() (discover() reads it again)
    _provider(tmp_path, "h.nc", "other.yaml")
    cas.discover()
    assert _means("mine:h", SQUARES[:1]) == pytest.approx([single], abs=1e-12)


def test_a_stac_layers_cog_readers_are_set_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cas.configure(result_cache_ttl_s=0)
    # both on the eastern Kansas tile (lon -96.55..-96.30)
    squares = [_square(-96.5123, 38.9137, 0.11), _square(-96.4471, 39.0519, 0.13)]
    readers = _counted(monkeypatch, _stac_tiles, "cog_reader")
    kept = _means("sample:elevation", squares)
    assert len(readers) == 1  # the one tile under both squares, set up for the first
    forget_opened()
    fresh = _means("sample:elevation", squares[::-1])[::-1]
    assert len(readers) == 2
    np.testing.assert_allclose(kept, fresh, rtol=0, atol=1e-12)


def test_a_remote_geotiff_is_kept_for_the_metadata_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_cog(tmp_path / "h.tif", VALUES, transform=GRID, crs="EPSG:4326", blocksize=64)
    opened = _counted(monkeypatch, _local_geotiff, "_open")
    box = (10.0213, 50.0311, 10.0713, 50.0811)
    with serve_folder(tmp_path) as url:
        source = LocalSource(url + "h.tif")
        first = source.open(bbox=box).values
        np.testing.assert_array_equal(source.open(bbox=box).values, first)
        assert len(opened) == 1
        cas.configure(metadata_cache_ttl_s=0)  # remote data are not kept: opened each call
        source.open(bbox=box)
        source.open(bbox=box)
        assert len(opened) == 3
    np.testing.assert_array_equal(first, VALUES[_cells(box)])


def test_layers_cut_from_a_kept_open_pickle_and_compute_as_fresh_ones(tmp_path: Path) -> None:
    source = LocalSource(str(_netcdf(tmp_path / "h.nc")))
    boxes = [(10.0213, 50.0311, 10.0713, 50.0811), (10.2517, 50.1093, 10.3248, 50.1824)]
    kept = [source.open(bbox=b, chunks=16) for b in boxes]
    assert len(OPENED) == 1
    shipped = [pickle.loads(pickle.dumps(da)) for da in kept]
    forget_opened()
    fresh = [source.open(bbox=b, chunks=16) for b in boxes]
    for a, b, c in zip(kept, shipped, fresh, strict=True):
        xr.testing.assert_identical(a.compute(), c.compute())
        xr.testing.assert_identical(b.compute(), c.compute())


def _open_files(folder: Path) -> list[str]:
    """This process's file descriptors on files under ``folder``."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_kept_opens_are_bounded_and_let_go_of_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OPENED, "max_entries", 3)
    box = (10.0213, 50.0311, 10.0713, 50.0811)
    paths = [_netcdf(tmp_path / f"h{k}.nc", VALUES + k) for k in range(7)]
    for k, path in enumerate(paths):
        da = LocalSource(str(path)).open(bbox=box)
        assert float(da.max()) == pytest.approx(VALUES[_cells(box)].max() + k)
        del da
    gc.collect()
    assert len(OPENED) == 3
    still_open = _open_files(tmp_path)
    assert len(still_open) <= 3, still_open
    assert set(still_open) <= {str(p) for p in paths[-3:]}
    forget_opened()
    gc.collect()
    assert _open_files(tmp_path) == []


def test_concurrent_calls_share_one_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = LocalSource(str(_netcdf(tmp_path / "h.nc")))
    opens = _counted(monkeypatch, xr, "open_dataset")
    boxes = [(10.0113 + 0.02 * k, 50.0213, 10.0531 + 0.02 * k, 50.0911) for k in range(8)]
    got: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(boxes))

    def call(k: int) -> None:
        barrier.wait()
        got[k] = source.open(bbox=boxes[k]).values

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(boxes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(opens) <= len(boxes)
    done = len(opens)
    source.open(bbox=boxes[0])
    assert len(opens) == done and len(OPENED) == 1
    for k, box in enumerate(boxes):
        np.testing.assert_array_equal(got[k], VALUES[_cells(box)])


def test_the_cache_keeps_an_entry_while_its_stamp_and_lifetime_hold() -> None:
    now = [0.0]
    cache = OpenedCache(2, clock=lambda: now[0])
    cache.put("a", 1, "A", ttl_s=None)
    cache.put("b", 1, "B", ttl_s=10)
    assert cache.get("a", 1) == "A" and cache.get("b", 1) == "B"
    assert cache.get("a", 2) is MISSING  # another stamp: not found
    now[0] = 10.0
    assert cache.get("b", 1) is MISSING  # expired
    cache.put("c", 1, None, ttl_s=None)  # a None is kept too (nothing to read by tile)
    assert cache.get("c", 1) is None
    cache.put("d", 1, "D", ttl_s=0)  # a lifetime of 0 keeps nothing
    assert len(cache) == 2 and cache.get("d", 1) is MISSING
    cas.configure(progress=False)  # any settings change empties it
    assert cache.get("a", 1) is MISSING and len(cache) == 0


def test_a_stamp_follows_a_file_and_a_zarr_stores_metadata(tmp_path: Path) -> None:
    assert file_stamp(str(tmp_path / "nope.nc")) is None
    path = _netcdf(tmp_path / "h.nc")
    stamp = file_stamp(str(path))
    assert stamp == file_stamp(str(path))
    store = tmp_path / "h.zarr"
    ds = xr.Dataset({"h": (("lat", "lon"), VALUES)}, coords={"lat": LAT, "lon": LON})
    ds.to_zarr(store, zarr_format=2)
    before = file_stamp(str(store))
    ds.isel(lat=slice(0, 50)).to_zarr(store, zarr_format=2, mode="w")  # another shape
    assert file_stamp(str(store)) != before


def test_a_box_cut_from_a_kept_open_is_labelled_as_rioxarray_labels_it(tmp_path: Path) -> None:
    path = _netcdf(tmp_path / "h.nc")
    tif = make_cog(tmp_path / "h.tif", VALUES, transform=GRID, crs="EPSG:4326", nodata=-9999.0)
    box = (10.0213, 50.0311, 10.0713, 50.0811)
    rows, cols = _cells(box)
    with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False, decode_coords="all") as ds:
        full = ds["h"].rename({"lat": "y", "lon": "x"})
        window = full.rio.transform(recalc=True) * Affine.translation(cols.start, rows.start)
        netcdf = (
            full.isel(y=rows, x=cols)
            .rio.write_crs(full.rio.crs)
            .rio.write_transform(window)
            .rio.write_nodata(-9999.0, encoded=False)
            .load()
        )
    geotiff = xr.DataArray(
        VALUES[rows, cols],
        dims=("y", "x"),
        coords={
            "y": GRID.f + GRID.e * (np.arange(rows.start, rows.stop) + 0.5),
            "x": GRID.c + GRID.a * (np.arange(cols.start, cols.stop) + 0.5),
        },
    )
    geotiff = (
        geotiff.rio.write_crs("EPSG:4326")
        .rio.write_transform(GRID * Affine.translation(cols.start, rows.start))
        .rio.write_nodata(-9999.0, encoded=False)
    )
    for expected, source in ((netcdf, LocalSource(str(path))), (geotiff, LocalSource(str(tif)))):
        expected.attrs["nodata"] = -9999.0
        for _ in range(2):  # opened, then cut from what was kept
            ours = source.open(bbox=box)
            assert ours.encoding["grid_mapping"] == expected.encoding["grid_mapping"]
            ours = ours.compute()
            del ours.attrs["cas_provenance"]
            xr.testing.assert_identical(ours.rename(expected.name), expected)


def test_a_source_is_keyed_by_its_fields() -> None:
    one = LocalSource("a.nc", nodata=float("nan"), storage_options={"anon": True, "x": [1]})
    same = LocalSource("a.nc", nodata=float("nan"), storage_options={"x": [1], "anon": True})
    assert frozen(one) == frozen(same) and hash(frozen(one)) == hash(frozen(same))
    assert frozen(one) != frozen(LocalSource("a.nc", nodata=float("nan"), array="b"))
    assert frozen(one) != frozen(LocalSource("a.nc", nodata=0.0, storage_options={"anon": True}))
